"""Classes with no or few training boxes: named (class and split) by check_dataset's report and in
the DataModule's log, kept by policy=fix, a stop under policy=strict."""

from __future__ import annotations

import logging

import pytest

from yolotl.data import check_dataset
from yolotl.errors import DatasetError

from .health_helpers import datamodule

A, B, C = ("0 0.3 0.3 0.2 0.2", "1 0.6 0.6 0.2 0.2", "2 0.5 0.2 0.1 0.1")


def _missing_in_train(make_yolo):
    """Class 'c' only in val; class 'b' once in train while 'a' has 6 boxes."""
    train = {f"t{i}.jpg": A for i in range(6)} | {"t9.jpg": B}
    return make_yolo({"train": train, "val": {"v1.jpg": C + "\n" + A, "v2.jpg": C}})


def test_the_report_names_the_class_and_the_split(make_yolo) -> None:
    report = check_dataset(_missing_in_train(make_yolo), "yolo")
    [missing] = report.of_kind("class_missing_in_train")
    assert missing.split == "val" and missing.severity == "warning" and missing.action == "kept"
    assert "'c'" in missing.detail and "2 boxes in val" in missing.detail and "none in train" in missing.detail
    [rare] = report.of_kind("rare_class")
    assert rare.split == "train" and "'b'" in rare.detail and "only 1 training box " in rare.detail
    table = report.table()
    assert "class_missing_in_train" in table and "rare_class" in table and "'c'" in table


def test_the_datamodule_warns_once_and_keeps_the_data(make_yolo, caplog, tmp_path) -> None:
    dm = datamodule(_missing_in_train(make_yolo), "yolo", "fix")
    with caplog.at_level(logging.WARNING, logger="yolotl.data"):
        dm.setup("fit")
        dm.setup("fit")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "class_missing_in_train (val)" in w and "'c'" in w]
    assert [w for w in warnings if "rare_class (train)" in w and "'b'" in w]
    assert len(warnings) == 2
    assert dm.split_sizes == {"train": 7, "val": 2}
    assert dm.health.totals() == {"class_missing_in_train": 1, "rare_class": 1}
    saved = dm.write_health(tmp_path / "run")["json"].read_text()
    assert "class_missing_in_train" in saved


def test_strict_stops_on_a_class_missing_from_train(make_yolo) -> None:
    with pytest.raises(DatasetError, match=r"(?s)class_missing_in_train.*'c'.*data\.checks\.policy=fix"):
        datamodule(_missing_in_train(make_yolo), "yolo", "strict").setup("fit")


def test_a_test_split_read_later_is_checked_against_train(make_yolo) -> None:
    root = make_yolo({"train": {"t.jpg": A}, "val": {"v.jpg": A}, "test": {"x.jpg": B}})
    dm = datamodule(root, "yolo", "fix")
    dm.setup("fit")
    assert not dm.health.of_kind("class_missing_in_train")
    dm.setup("test")
    [finding] = dm.health.of_kind("class_missing_in_train")
    assert finding.split == "test" and "'b'" in finding.detail


def test_tiny_datasets_are_not_flagged_rare(make_yolo) -> None:
    report = check_dataset(make_yolo({"train": {"t.jpg": A + "\n" + B}, "val": {"v.jpg": B}}), "yolo")
    assert not report.of_kind("rare_class") and not report.of_kind("class_missing_in_train")
