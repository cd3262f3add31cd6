"""One finding of the health check: what was found where, and (for the fix policy) what it targets."""

from __future__ import annotations

from dataclasses import dataclass

from yolotl.data.catalogue import kind_info
from yolotl.data.records import Defect

__all__ = ["DATASET_SCOPE", "Finding", "from_defect"]

# The "split" of findings that belong to no split (a VOC JPEGImages file no XML refers to).
DATASET_SCOPE = "dataset"


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


def from_defect(split: str, defect: Defect) -> Finding:
    """A reader's log entry as a finding (the reader already applied its action)."""
    return Finding(split, defect.kind, defect.file, defect.detail)

