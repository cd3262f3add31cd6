"""The one finding type of yolotl's data checks, and the ordered log readers fill.

A reader never fixes data silently: each clipped box, dropped box, skipped image or background
image becomes a :class:`Finding` in the split's :class:`FindingLog`; the health checks
(:mod:`yolotl.data.health`) add theirs as the same type, so a user sees (and ``skipped.csv`` keeps)
everything in one form. What each kind means (severity, what the fix policy does) is in
:mod:`yolotl.data.catalogue`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from yolotl.data.catalogue import kind_info

__all__ = ["DATASET_SCOPE", "Finding", "FindingLog"]

# The "split" of findings that belong to no split (a VOC JPEGImages file no XML refers to).
DATASET_SCOPE = "dataset"

_MAX_FILES_SHOWN = 3


@dataclass(frozen=True)
class Finding:
    """One finding of ``kind`` in ``file`` of ``split``; severity and action come from the catalogue.

    ``index`` (position of the record in its split) and ``box`` (position of the box in that
    record) say what the fix policy skips or drops; they are None for findings the reader already
    acted on and for findings that are only reported.
    """

    split: str
    kind: str
    file: str
    detail: str = ""
    index: int | None = None
    box: int | None = None

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info`` (see :mod:`yolotl.data.catalogue`)."""
        return kind_info(self.kind).severity

    @property
    def action(self) -> str:
        """What ``policy="fix"`` does: skipped image, dropped box, fixed, kept or ignored."""
        return kind_info(self.kind).action

    def to_dict(self) -> dict[str, str]:
        """The finding as JSON/CSV fields: split, kind, severity, action, file, detail."""
        return {"split": self.split, "kind": self.kind, "severity": self.severity,
                "action": self.action, "file": self.file, "detail": self.detail}


class FindingLog:
    """An ordered log of :class:`Finding` s.

    :meth:`add` stamps ``split`` on each new finding; ``dataset`` (the dataset folder's name)
    prefixes the split in :meth:`summary` (``"bccd/test: dropped 2 ..."``). Logs of several
    splits can be merged and are still summarised per split.
    """

    def __init__(self, split: str = "", dataset: str = "") -> None:
        self.split = split
        self.dataset = dataset
        self.entries: list[Finding] = []

    def add(self, kind: str, file: str | Path, detail: str = "", index: int | None = None,
            box: int | None = None) -> None:
        """Record one finding of ``kind`` in ``file`` (of this log's split)."""
        self.entries.append(Finding(self.split, kind, str(file), detail, index, box))

    def extend(self, findings: Iterable[Finding]) -> FindingLog:
        """Append ``findings`` as they are (keeping their splits); returns ``self``."""
        self.entries.extend(findings)
        return self

    def merge(self, other: FindingLog) -> FindingLog:
        """Append the findings of ``other``; returns ``self``."""
        return self.extend(other.entries)

    def counts(self) -> dict[str, int]:
        """Number of findings per kind, in order of first appearance."""
        return dict(Counter(entry.kind for entry in self.entries))

    def to_rows(self) -> list[dict[str, str]]:
        """One :meth:`Finding.to_dict` per finding, ready for ``csv.DictWriter``."""
        return [entry.to_dict() for entry in self.entries]

    def scope(self, split: str | None = None) -> str:
        """``dataset/split`` as the summary names it (this log's split by default)."""
        split = self.split if split is None else split
        return "/".join(part for part in (self.dataset, split) if part)

    def summary(self) -> str:
        """A short human paragraph: per split, what was fixed or skipped and in which files."""
        if not self.entries:
            return f"{self.scope() or 'dataset'}: no defects found"
        parts = []
        for split in dict.fromkeys(e.split for e in self.entries):
            entries = [e for e in self.entries if e.split == split]
            parts.append(f"{self.scope(split) or 'dataset'}: " + "; ".join(_describe_kinds(entries)))
        return ". ".join(parts)

    def __len__(self) -> int:
        return len(self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.entries)

    def __repr__(self) -> str:
        return f"FindingLog(split={self.split!r}, dataset={self.dataset!r}, counts={self.counts()})"


def _describe_kinds(entries: list[Finding]) -> list[str]:
    """One phrase per kind, e.g. 'dropped 2 degenerate boxes (a.xml, b.xml)'."""
    phrases = []
    for kind in dict.fromkeys(e.kind for e in entries):
        of_kind = [e for e in entries if e.kind == kind]
        count = len(of_kind)
        info = kind_info(kind)
        files = list(dict.fromkeys(Path(e.file).name for e in of_kind))
        shown = ", ".join(files[:_MAX_FILES_SHOWN])
        if len(files) > _MAX_FILES_SHOWN:
            shown += f", +{len(files) - _MAX_FILES_SHOWN} more"
        phrases.append(f"{info.verb} {count} {info.one if count == 1 else info.many} ({shown})")
    return phrases
