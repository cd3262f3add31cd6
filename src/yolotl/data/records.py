"""The records every format reader yields, and the log of what a reader fixed or skipped.

A reader never fixes data silently: each clipped box, dropped box, skipped image or background
image is written to a :class:`DefectLog`, so a user can see (and a CSV can keep) what changed.
What each kind means (severity, what the fix policy does) is in :mod:`yolotl.data.catalogue`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolotl.data.catalogue import kind_info

__all__ = ["Defect", "DefectLog", "DatasetSplit", "ImageRecord"]


@dataclass(frozen=True)
class ImageRecord:
    """One image and its objects, in the image's own pixel frame.

    ``boxes`` is float32 ``[N, 4]`` xyxy in absolute, 0-based continuous pixel coordinates of the
    original image; ``labels`` is int64 ``[N]``; ``width``/``height`` are the original size.
    ``label_file`` is the annotation file the boxes came from (YOLO txt, VOC XML, COCO JSON), so
    a report can name it; None when unknown.
    """

    image_path: Path
    boxes: np.ndarray
    labels: np.ndarray
    width: int
    height: int
    label_file: Path | None = None

    @property
    def num_objects(self) -> int:
        """Number of boxes (0 for a background image)."""
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Defect:
    """One fix or skip: its kind, file, details and the dataset/split (scope) it came from."""

    kind: str
    file: str
    detail: str
    scope: str = ""


_MAX_FILES_SHOWN = 3


class DefectLog:
    """An ordered log of data fixes and skips, each a :class:`Defect`.

    ``scope`` (for example ``"bccd/test"``) is stamped on every entry added here, so logs of
    several splits can be merged and still summarised per split.
    """

    def __init__(self, scope: str = "") -> None:
        self.scope = scope
        self.entries: list[Defect] = []

    def add(self, kind: str, file: str | Path, detail: str = "") -> None:
        """Record one fix or skip of ``kind`` in ``file``."""
        self.entries.append(Defect(kind, str(file), detail, self.scope))

    def merge(self, other: DefectLog) -> DefectLog:
        """Append the entries of ``other`` (keeping their scopes); returns ``self``."""
        self.entries.extend(other.entries)
        return self

    def counts(self) -> dict[str, int]:
        """Number of entries per kind, in order of first appearance."""
        return dict(Counter(entry.kind for entry in self.entries))

    def to_rows(self) -> list[dict[str, str]]:
        """One dict per entry (scope, kind, file, detail), ready for ``csv.DictWriter``."""
        return [
            {"scope": e.scope, "kind": e.kind, "file": e.file, "detail": e.detail}
            for e in self.entries
        ]

    def summary(self) -> str:
        """A short human paragraph: per scope, what was fixed or skipped and in which files."""
        if not self.entries:
            return f"{self.scope or 'dataset'}: no defects found"
        scopes = list(dict.fromkeys(e.scope for e in self.entries))
        parts = []
        for scope in scopes:
            entries = [e for e in self.entries if e.scope == scope]
            parts.append(f"{scope or 'dataset'}: " + "; ".join(_describe_kinds(entries)))
        return ". ".join(parts)

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __iter__(self):  # noqa: ANN204 - iterator of Defect
        return iter(self.entries)

    def __repr__(self) -> str:
        return f"DefectLog(scope={self.scope!r}, counts={self.counts()})"


def _describe_kinds(entries: list[Defect]) -> list[str]:
    """One phrase per defect kind, e.g. 'dropped 2 degenerate boxes (a.xml, b.xml)'."""
    phrases = []
    for kind in dict.fromkeys(e.kind for e in entries):
        of_kind = [e for e in entries if e.kind == kind]
        count = len(of_kind)
        info = kind_info(kind)
        verb, one, many = info.verb, info.one, info.many
        files = list(dict.fromkeys(Path(e.file).name for e in of_kind))
        shown = ", ".join(files[:_MAX_FILES_SHOWN])
        if len(files) > _MAX_FILES_SHOWN:
            shown += f", +{len(files) - _MAX_FILES_SHOWN} more"
        phrases.append(f"{verb} {count} {one if count == 1 else many} ({shown})")
    return phrases


@dataclass
class DatasetSplit:
    """All records of one split of one dataset, with its class names and defect log."""

    name: str
    root: Path
    records: list[ImageRecord]
    class_names: list[str]
    defects: DefectLog = field(default_factory=DefectLog)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_boxes(self) -> int:
        """Total number of boxes kept in this split."""
        return sum(record.num_objects for record in self.records)
