"""What training does with the findings: ``strict`` stops, ``fix`` repairs what is safe and skips
the rest. The readers already clipped and dropped what the box rule says; this module applies
the decode, duplicate, tiny-box and leakage actions to the records."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from yolotl.data.findings import Finding
from yolotl.data.health.report import HealthReport
from yolotl.data.records import DatasetSplit
from yolotl.errors import ConfigError, DatasetError

__all__ = ["POLICIES", "apply_fix", "check_policy", "strict_error"]

POLICIES = ("strict", "fix")


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`POLICIES`, else ConfigError listing them."""
    if policy not in POLICIES:
        raise ConfigError(
            f"data policy {policy!r} is not known; use one of {list(POLICIES)} (data.checks.policy=fix "
            f"repairs what is safe and skips the rest, data.checks.policy=strict stops on any problem)."
        )
    return policy


def strict_error(report: HealthReport) -> DatasetError | None:
    """The DatasetError ``policy="strict"`` raises for ``report`` (None if it has no error or
    warning): the table, then how to switch to ``data.checks.policy=fix``."""
    problems = report.problems()
    if not problems:
        return None
    files = sorted({f.file for f in problems})
    return DatasetError(
        f"the dataset check found {len(problems)} problems (errors or warnings) in {len(files)} "
        f"files and data.checks.policy=strict stops on any.\n{report.table()}\n"
        f"Fix those files (yolotl-check-data with the same data options lists every finding), "
        f"or train with data.checks.policy=fix (DetectionDataModule(checks={{'policy': 'fix'}}), the default): it "
        f"clips and drops bad boxes, skips unusable images and writes every action to "
        f"data_health.json and skipped.csv in the run folder."
    )


def apply_fix(split: DatasetSplit, findings: Iterable[Finding]) -> DatasetSplit:
    """A copy of ``split`` without the images and boxes that ``findings`` of this split target.

    Only findings with an ``index`` act (the reader already applied its own); an image that
    loses every box stays as a background image.
    """
    skip: set[int] = set()
    drop: dict[int, set[int]] = {}
    for finding in findings:
        if finding.split != split.name or finding.index is None:
            continue
        if finding.action == "skipped image":
            skip.add(finding.index)
        elif finding.action == "dropped box" and finding.box is not None:
            drop.setdefault(finding.index, set()).add(finding.box)
    records = []
    for index, record in enumerate(split.records):
        if index in skip:
            continue
        if index in drop:
            keep = np.array([j not in drop[index] for j in range(record.num_objects)], dtype=bool)
            record = record.select(keep)
        records.append(record)
    return DatasetSplit(split.name, split.root, records, split.class_names, split.findings)
