"""The terminal table of a :class:`~yolotl.data.health.report.HealthReport`: one column per split,
one row per finding kind, per-class instance counts, then a few example files per kind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from yolotl.data.catalogue import KINDS, SEVERITIES, kind_info
from yolotl.data.findings import DATASET_SCOPE

if TYPE_CHECKING:
    from yolotl.data.health.report import HealthReport

__all__ = ["render"]

_CATALOGUE_ORDER = {name: i for i, name in enumerate(KINDS)}
_MAX_DETAIL = 160


def render(report: HealthReport, examples: int = 3) -> str:
    """The whole table as text (no colour, fits 100 columns for three splits)."""
    columns = list(report.splits)
    if any(f.split == DATASET_SCOPE for f in report.findings) and DATASET_SCOPE not in columns:
        columns.append(DATASET_SCOPE)
    lines = [_header(report), ""]
    lines += _grid(["", *columns, "severity", "fix does"], _stat_rows(report, columns)
                   + _kind_rows(report, columns))
    lines += ["", *_class_rows(report)]
    lines += _examples(report, examples)
    return "\n".join(lines)


def _header(report: HealthReport) -> str:
    names = ", ".join(report.class_names)
    problems = report.problems()
    errors = sum(f.severity == "error" for f in problems)
    counts = {None: "what data.checks.policy=fix would train on", "fix": "after data.checks.policy=fix",
              "strict": "as read (data.checks.policy=strict changes nothing)"}.get(report.policy, "")
    return (f"Data health of {report.root} ({report.format}, {len(report.class_names)} classes: "
            f"{names}), checked in {report.seconds:.1f} s\n"
            f"{errors} errors, {len(problems) - errors} warnings, "
            f"{len(report.findings) - len(problems)} info findings; image and box counts: {counts}")


def _stat_rows(report: HealthReport, columns: Sequence[str]) -> list[list[str]]:
    rows = []
    held = [report.stats[c] for c in columns if c in report.stats]
    semantic = any(stats.masks for stats in held)
    only_masks = semantic and all(stats.masks == stats.images and not stats.boxes for stats in held)
    for label, attr in (("images", "images"), ("boxes", "boxes"), ("masks", "masks"),
                        ("background images", "background_images")):
        if (attr == "masks" and not semantic) or (attr == "boxes" and only_masks):
            continue  # class maps only: no boxes to count
        rows.append([label, *[str(getattr(report.stats[c], attr)) if c in report.stats else ""
                              for c in columns], "", ""])
    return rows


def _kind_rows(report: HealthReport, columns: Sequence[str]) -> list[list[str]]:
    counts = report.counts()
    kinds = sorted({f.kind for f in report.findings}, key=_kind_order)
    if not kinds:
        return [["(no findings)", *["" for _ in columns], "", ""]]
    rows = [["-"] * (len(columns) + 3)]
    for kind in kinds:
        info = kind_info(kind)
        cells = [str(counts.get(c, {}).get(kind, 0) or ".") for c in columns]
        rows.append([kind, *cells, info.severity, info.action])
    return rows


def _kind_order(kind: str) -> tuple[int, int, str]:
    info = kind_info(kind)
    return SEVERITIES.index(info.severity), _CATALOGUE_ORDER.get(kind, len(KINDS)), kind


def _class_rows(report: HealthReport) -> list[str]:
    """Instances (images) per class; for semantic data, labelled pixels (images)."""
    splits = [s for s in report.splits if s in report.stats]
    semantic = any(report.stats[s].masks for s in splits)

    def count(split: str, name: str) -> int:
        stats = report.stats[split]
        return stats.pixels.get(name, 0) if semantic else stats.instances[name]

    rows = [[name, *[f"{count(s, name)} ({report.stats[s].images_per_class[name]})" for s in splits]]
            for name in report.class_names]
    title = "pixels (images) per class" if semantic else "instances (images) per class"
    return _grid([title, *splits], rows)


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned counts, left-aligned trailing text columns."""
    widths = [max(len(row[i]) for row in [header, *rows] if row[0] != "-")
              for i in range(len(header))]
    text_from = len(header) - 2 if header[-1] == "fix does" else len(header)
    lines = []
    for row in [header, *rows]:
        if row[0] == "-":
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
            continue
        cells = [cell.ljust(w) if i == 0 or i >= text_from else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _examples(report: HealthReport, examples: int) -> list[str]:
    if examples <= 0 or not report.findings:
        return []
    lines = ["", f"examples (at most {examples} per kind; the JSON lists every finding)"]
    for kind in sorted({f.kind for f in report.findings}, key=_kind_order):
        found = report.of_kind(kind)
        lines.append(f"{kind} ({len(found)})")
        for finding in found[:examples]:
            detail = finding.detail if len(finding.detail) <= _MAX_DETAIL else (
                finding.detail[:_MAX_DETAIL - 3] + "...")
            where = _short(finding.file, report.root)  # a finding about the whole dataset: none
            lines.append(f"  {finding.split}: {where + ': ' if where != '.' else ''}{detail}")
    return lines


def _short(file: str, root: str) -> str:
    """``file`` relative to the dataset root when it lies inside it."""
    try:
        return str(Path(file).relative_to(Path(root)))
    except ValueError:
        return file
