"""Frames of one video sequence on both sides of a split: neighbouring frames look almost alike, so
a model scored on frames that sit between its training frames is scored on what it has nearly seen.

File names are grouped into sequences by their stem: ``frame_0123_jpg.rf.<hash>.jpg`` is frame 123
of sequence ``frame`` (Roboflow's ``_jpg.rf.<hash>`` suffix stripped, then the trailing frame
number). A stem whose part before the number has no letter (``2007_000032``, ``000123``) is no
sequence: such names number separate photos as often as frames. Two splits of one sequence are
reported (``sequence_leakage``, kept: only re-splitting fixes it) when they share a frame number or
when frames of the later split lie between frames of the earlier one in two or more separate short runs
(under ``BLOCK_FRAMES`` frames each): contiguous blocks of frames, one or several, are how a sequence is
split properly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from yolotl.data.findings import Finding
from yolotl.data.health.duplicates import split_rank
from yolotl.data.records import ImageRecord

__all__ = ["sequence_frame", "sequence_findings"]

_ROBOFLOW = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp|tiff?|webp|gif)\.rf\.[0-9a-f]{8,}$", re.IGNORECASE)
_NUMBERED = re.compile(r"^(?P<prefix>.*?)[\s_.\-]*(?P<frame>\d+)$")
_LETTER = re.compile(r"[^\W\d_]")
BLOCK_FRAMES = 5  # a run of held-out frames at least this long between training frames is a block, not a leak


def sequence_frame(path: str | Path) -> tuple[str, int, int] | None:
    """(sequence, frame number, digits written) of an image file name, or None if it names none."""
    stem = Path(path).stem
    roboflow = _ROBOFLOW.match(stem)
    if roboflow is not None:
        stem = roboflow["stem"]
    numbered = _NUMBERED.match(stem)
    if numbered is None or not _LETTER.search(numbered["prefix"]):
        return None
    return numbered["prefix"], int(numbered["frame"]), len(numbered["frame"])


@dataclass
class _Frames:
    """The frames of one sequence in one split: images per frame number."""

    images: dict[int, int] = field(default_factory=dict)

    def add(self, frame: int) -> None:
        self.images[frame] = self.images.get(frame, 0) + 1


def sequence_findings(
    splits: Mapping[str, Sequence[ImageRecord]],
    file: str,
    fresh: Sequence[str] | None = None,
    rank: Mapping[str, int] | None = None,
) -> list[Finding]:
    """One ``sequence_leakage`` finding per sequence and pair of splits whose frames interleave,
    in the later split of the pair (``rank``, default train < val < test; among equals the one
    listed later). Only pairs with a ``fresh`` split (default all) are looked at. ``file`` (the
    dataset root) is what the findings name."""
    fresh = set(splits) if fresh is None else set(fresh)
    rank = dict(rank) if rank is not None else {name: split_rank(name) for name in splits}
    frames: dict[str, dict[str, _Frames]] = {}
    digits: dict[str, int] = {}
    for split, records in splits.items():
        for record in records:
            found = sequence_frame(record.image_path)
            if found is not None:
                name, frame, width = found
                frames.setdefault(name, {}).setdefault(split, _Frames()).add(frame)
                digits[name] = max(digits.get(name, 0), width)
    order = sorted(splits, key=lambda s: (rank.get(s, 0), list(splits).index(s)))
    findings = []
    for j, later in enumerate(order):
        for earlier in order[:j]:
            if earlier not in fresh and later not in fresh:
                continue
            for name, per_split in frames.items():
                if earlier in per_split and later in per_split:
                    detail = _interleaving(name, earlier, per_split[earlier], later,
                                           per_split[later], digits[name])
                    if detail is not None:
                        findings.append(Finding(later, "sequence_leakage", file, detail))
    return findings


def _interleaving(name: str, a: str, frames_a: _Frames, b: str, frames_b: _Frames,
                  width: int) -> str | None:
    """The finding's text when ``b``'s frames interleave ``a``'s, else None."""
    in_a, in_b = set(frames_a.images), set(frames_b.images)
    shared = sorted(in_a & in_b)
    timeline = sorted(in_a | in_b)
    runs: list[list[int]] = []  # runs of b-only frames with a frame of a on both sides (short ones kept)
    current: list[int] = []
    seen_a = False
    for frame in timeline:
        if frame in in_a:
            if current and seen_a:
                runs.append(current)
            current, seen_a = [], True
        else:
            current.append(frame)
    runs = [run for run in runs if len(run) < BLOCK_FRAMES]
    if not shared and len(runs) < 2:
        return None

    def fmt(frame: int) -> str:
        return f"{frame:0{width}d}"

    def span(frames: _Frames) -> str:
        count, images = len(frames.images), sum(frames.images.values())
        extra = f" in {images} images" if images != count else ""
        return (f"{count} frame{'s' if count != 1 else ''}{extra} "
                f"({fmt(min(frames.images))}-{fmt(max(frames.images))})")

    parts = []
    if runs:
        between = sum(len(run) for run in runs)
        first = runs[0][0]
        before = max(f for f in in_a if f < first)
        after = min(f for f in in_a if f > runs[0][-1])
        parts.append(f"{between} {b} frame{'s' if between != 1 else ''} lie between {a} frames in "
                     f"{len(runs)} separate runs (e.g. {b} {fmt(first)} between {a} {fmt(before)} "
                     f"and {fmt(after)})")
    if shared:
        shown = ", ".join(fmt(f) for f in shared[:3]) + (", ..." if len(shared) > 3 else "")
        parts.append(f"{len(shared)} frame number{'s are' if len(shared) != 1 else ' is'} in both "
                     f"splits ({shown})")
    return (f"sequence '{name}': " + "; ".join(parts) + f"; {a} has {span(frames_a)}, {b} "
            f"{span(frames_b)}: neighbouring frames look alike, so scores on {b} are optimistic; "
            f"re-split by whole sequences or contiguous blocks of frames")
