"""HealthReport: the findings of a dataset check with per-split statistics, as JSON, CSV or a table."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolotl.data.catalogue import kind_info
from yolotl.data.findings import Finding
from yolotl.data.records import ImageRecord

if TYPE_CHECKING:
    from yolotl.data.health.semantic import MaskInfo

__all__ = ["PROBLEM_SEVERITIES", "HealthReport", "SplitStats", "summarise"]

# The severities policy="strict" stops on (info never stops training).
PROBLEM_SEVERITIES = ("error", "warning")
# Actions that change what training sees, one skipped.csv row each.
_CSV_ACTIONS = ("skipped image", "dropped box", "fixed")


@dataclass(frozen=True)
class SplitStats:
    """Images, boxes, background images and per-class instances/images of one split; for semantic
    data also the class maps (``masks``) and the labelled ``pixels`` per class.

    A semantic record counts as a background image when its class map holds no class but the
    background, and in ``images_per_class`` for each class its map holds."""

    images: int
    boxes: int
    background_images: int
    instances: dict[str, int]
    images_per_class: dict[str, int]
    masks: int = 0
    pixels: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Sequence[ImageRecord], class_names: Sequence[str],
           masks: Mapping[Path, MaskInfo] | None = None) -> SplitStats:
        """Count ``records`` (labels and class-map values index ``class_names``); ``masks`` are
        the decoded class maps of the semantic records (None: none decoded)."""
        from yolotl.data.health.semantic import background_index

        instances = Counter()
        images = Counter()
        pixels = Counter()
        background = 0
        semantic = 0
        kept = background_index(class_names)
        for record in records:
            path = getattr(record, "semantic_mask", None)
            if path is None:
                labels = record.labels.tolist()
                instances.update(labels)
                images.update(set(labels))
                background += record.num_objects == 0
                continue
            semantic += 1
            info = (masks or {}).get(path)
            if info is None or info.problem is not None:
                continue
            present = [(v, n) for v, n in info.counts if 0 <= v < len(class_names)]
            images.update(v for v, _ in present)
            pixels.update(dict(present))
            background += all(v == kept for v, _ in present)
        return cls(
            images=len(records),
            boxes=sum(record.num_objects for record in records),
            background_images=background,
            instances={name: instances[i] for i, name in enumerate(class_names)},
            images_per_class={name: images[i] for i, name in enumerate(class_names)},
            masks=semantic,
            pixels={name: pixels[i] for i, name in enumerate(class_names)} if semantic else {},
        )


@dataclass
class HealthReport:
    """What a dataset check found. ``stats`` count the data as the fix policy leaves it.

    ``policy`` is None for a check alone (:func:`~yolotl.check_dataset`), else the policy a
    :class:`~yolotl.DetectionDataModule` applied. ``str(report)`` is :meth:`table`.
    """

    root: str
    format: str
    class_names: list[str]
    splits: list[str]
    findings: list[Finding]
    stats: dict[str, SplitStats]
    policy: str | None = None
    seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Findings per split and kind: ``{split: {kind: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for finding in self.findings:
            per_split = out.setdefault(finding.split, {})
            per_split[finding.kind] = per_split.get(finding.kind, 0) + 1
        return out

    def totals(self) -> dict[str, int]:
        """Findings per kind over every split."""
        return dict(Counter(finding.kind for finding in self.findings))

    def actions(self) -> dict[str, int]:
        """Findings per fix action (skipped image, dropped box, fixed, kept, ignored)."""
        return dict(Counter(finding.action for finding in self.findings))

    def problems(self) -> list[Finding]:
        """Findings with severity error or warning: what ``policy="strict"`` stops on."""
        return [f for f in self.findings if f.severity in PROBLEM_SEVERITIES]

    def of_kind(self, kind: str, split: str | None = None) -> list[Finding]:
        """Findings of ``kind`` (in ``split`` if given)."""
        return [f for f in self.findings if f.kind == kind and split in (None, f.split)]

    def summary(self) -> str:
        """One clause: 'skipped 2 images, dropped 3 boxes, fixed 1, kept 7 warnings'."""
        return summarise(self.findings)

    def to_json(self) -> dict[str, Any]:
        """Everything as plain JSON types: stats, counts, the catalogue entries used, findings."""
        kinds = sorted({f.kind for f in self.findings})
        return {
            "root": self.root, "format": self.format, "policy": self.policy,
            "class_names": list(self.class_names), "splits": list(self.splits),
            "seconds": round(self.seconds, 2), "options": dict(self.options),
            "stats": {name: vars(stats) for name, stats in self.stats.items()},
            "counts": self.counts(), "actions": self.actions(),
            "kinds": {k: {"severity": kind_info(k).severity, "action": kind_info(k).action}
                      for k in kinds},
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        return path

    def write_csv(self, path: str | Path) -> Path:
        """One row per skipped image, dropped box and fixed item (split, kind, action, file, detail)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = ["split", "kind", "action", "file", "detail"]
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(f.to_dict() for f in self.findings if f.action in _CSV_ACTIONS)
        return path

    def table(self, examples: int = 3) -> str:
        """The readable terminal table (see :func:`yolotl.data.health.table.render`)."""
        from yolotl.data.health.table import render

        return render(self, examples)

    def __str__(self) -> str:
        return self.table()


def summarise(findings: Sequence[Finding]) -> str:
    """'skipped 2 images, dropped 3 boxes, fixed 1 (kept 7 warnings)': the fix actions counted."""
    actions = Counter(finding.action for finding in findings)
    text = (f"skipped {actions['skipped image']} images, dropped {actions['dropped box']} boxes, "
            f"fixed {actions['fixed']}")
    kept = sum(f.action == "kept" and f.severity == "warning" for f in findings)
    return text + (f" (kept {kept} warnings)" if kept else "")
