"""Identical images inside a split and across splits, by the hash of their decoded pixels.

Across splits an identical image is leakage: the model is scored on what it trained on. The copy
in the earlier split is the one reported (and skipped by the fix policy): train before val before
test, so the evaluation splits stay whole. Inside a split the first copy is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from yolotl.data.formats._common import split_aliases
from yolotl.data.findings import Finding
from yolotl.data.health.images import ImageInfo
from yolotl.data.records import ImageRecord

__all__ = ["duplicate_image_findings", "split_rank"]

_ROLE_RANK = {"train": 0, "val": 1, "test": 2}


def split_rank(name: str) -> int:
    """How much a split is kept when it shares an image: test 2, val 1, train (and others) 0."""
    for alias in split_aliases(name.lower()):
        if alias in _ROLE_RANK:
            return _ROLE_RANK[alias]
    return 0


def duplicate_image_findings(
    splits: Mapping[str, Sequence[ImageRecord]],
    infos: Mapping[Path, ImageInfo],
    rank: Mapping[str, int] | None = None,
) -> list[Finding]:
    """``leaked_image`` for copies of an image kept in a later split, ``duplicate_image`` for
    further copies inside the split that keeps it. ``rank`` (default :func:`split_rank`) orders
    the splits; among equals the first listed keeps its copy."""
    rank = dict(rank) if rank is not None else {name: split_rank(name) for name in splits}
    groups: dict[str, list[tuple[str, int, ImageRecord]]] = {}
    for split, records in splits.items():
        for index, record in enumerate(records):
            info = infos.get(record.image_path)
            if info is not None and info.digest:
                groups.setdefault(info.digest, []).append((split, index, record))
    findings = []
    for members in groups.values():
        if len(members) < 2:
            continue
        keep_split, keep_index, keep = max(members, key=lambda m: rank[m[0]])  # first of the best
        for split, index, record in members:
            if (split, index) == (keep_split, keep_index):
                continue
            leaked = split != keep_split
            kind = "leaked_image" if leaked else "duplicate_image"
            where = f" in {keep_split}" if leaked else " (first copy kept)"
            findings.append(Finding(split, kind, str(record.image_path),
                                    f"same pixels as {keep.image_path}{where}", index))
    return findings
