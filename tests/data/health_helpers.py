"""Shared assertions of the health tests: one bad input seen three ways (the report, the strict
policy, the fix policy with its counts and skipped.csv row)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from yolotl.data import DetectionDataModule, check_dataset
from yolotl.data.catalogue import kind_info
from yolotl.errors import DatasetError

CSV_ACTIONS = ("skipped image", "dropped box", "fixed")
BOX = "1 0.5 0.5 0.2 0.5"  # on a 100x80 image: [40, 20, 60, 60]


def datamodule(root: Path, fmt: str, policy: str, masks: bool | str = False,
               **kwargs) -> DetectionDataModule:  # kwargs: ReadSettings fields
    """A small DataModule over ``root`` (nothing is loaded until a dataloader is asked for)."""
    return DetectionDataModule(str(root), format=fmt, image_size=64, batch_size=2, reading=kwargs or None,
                               loader={"num_workers": 0}, checks={"policy": policy}, masks=masks)


def check_case(root: Path, fmt: str, kind: str, file_part: str, run_dir: Path, count: int = 1,
               masks: bool | str = False, **kwargs) -> DetectionDataModule:
    """Assert ``count`` findings of ``kind`` naming ``file_part``: in ``check_dataset``; as a
    DatasetError naming the file under ``policy="strict"`` (unless the kind is info); counted
    under ``policy="fix"`` with one skipped.csv row each (when fix changes data) and listed in
    data_health.json. Returns the fix DataModule, set up."""
    report = check_dataset(root, fmt, class_names=kwargs.get("class_names"))
    found = report.of_kind(kind)
    assert len(found) == count and all(file_part in f.file for f in found), report.table()
    assert kind in report.table() and file_part in report.table()
    info = kind_info(kind)
    strict = datamodule(root, fmt, "strict", masks, **kwargs)
    if info.severity == "info":
        strict.setup()  # information never stops training
    else:
        with pytest.raises(DatasetError) as err:
            strict.setup()
        assert kind in str(err.value) and file_part in str(err.value)
        assert "data.checks.policy=fix" in str(err.value)
    fixed = datamodule(root, fmt, "fix", masks, **kwargs)
    fixed.setup()
    assert fixed.health.totals().get(kind) == count, fixed.health.table()
    paths = fixed.write_health(run_dir)
    with paths["csv"].open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] == kind and file_part in r["file"]]
    assert len(rows) == (count if info.action in CSV_ACTIONS else 0)
    saved = json.loads(paths["json"].read_text())
    assert sum(f["kind"] == kind for f in saved["findings"]) == count
    return fixed


def train_names(dm: DetectionDataModule, role: str = "train") -> list[str]:
    """Image file names of a split after the policy."""
    return [r.image_path.name for r in dm.split(role).records]
