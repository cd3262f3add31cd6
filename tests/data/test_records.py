"""Finding, FindingLog, DatasetSplit and ImageRecord."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from yolotl.data import DatasetSplit, Finding, FindingLog, ImageRecord


def _record(n: int) -> ImageRecord:
    return ImageRecord(Path("x.jpg"), np.zeros((n, 4), np.float32), np.zeros(n, np.int64), 10, 10)


def test_finding_log_counts_rows_and_truthiness() -> None:
    log = FindingLog("test", dataset="bccd")
    assert not log and len(log) == 0
    log.add("dropped_degenerate_box", "a/BloodImage_00338.xml", "box 3")
    log.add("dropped_degenerate_box", "a/BloodImage_00343.xml", "box 7")
    log.add("background_image", "b/empty.txt", "label file is empty")
    assert log and len(log) == 3
    assert log.counts() == {"dropped_degenerate_box": 2, "background_image": 1}
    rows = log.to_rows()
    assert rows[0] == {"split": "test", "kind": "dropped_degenerate_box", "severity": "warning",
                       "action": "dropped box", "file": "a/BloodImage_00338.xml", "detail": "box 3"}
    assert log.entries[0] == Finding("test", "dropped_degenerate_box", "a/BloodImage_00338.xml",
                                     "box 3")  # the one finding type, as the health check makes


def test_summary_names_scope_counts_and_files() -> None:
    log = FindingLog("test", dataset="bccd")
    log.add("dropped_degenerate_box", "a/BloodImage_00338.xml", "")
    log.add("dropped_degenerate_box", "a/BloodImage_00343.xml", "")
    log.add("background_image", "b/empty.txt", "")
    text = log.summary()
    assert text.startswith("bccd/test: dropped 2 ")
    assert "BloodImage_00338.xml, BloodImage_00343.xml" in text
    assert "kept 1 image without objects as background (empty.txt)" in text
    assert FindingLog("y", dataset="x").summary() == "x/y: no defects found"


def test_summary_truncates_long_file_lists() -> None:
    log = FindingLog("train", dataset="d")
    for i in range(5):
        log.add("clipped_box", f"f{i}.txt")
    assert "+2 more" in log.summary()


def test_merge_keeps_splits() -> None:
    train, test = FindingLog("train", dataset="d"), FindingLog("test", dataset="d")
    train.add("clipped_box", "t.txt")
    test.add("background_image", "e.txt")
    merged = FindingLog(dataset="d").merge(train).merge(test)
    assert len(merged) == 2
    assert [row["split"] for row in merged.to_rows()] == ["train", "test"]
    assert "d/train: clipped 1" in merged.summary() and "d/test: kept 1" in merged.summary()


def test_unknown_kind_still_summarised() -> None:
    log = FindingLog("x", dataset="d")
    log.add("something_new", "f.txt", "detail")
    assert "something new" in log.summary()


def test_records_are_frozen_and_split_counts() -> None:
    record = _record(2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.width = 3  # type: ignore[misc]
    split = DatasetSplit("train", Path("."), [record, _record(0)], ["a"], FindingLog())
    assert len(split) == 2 and split.num_boxes == 2 and record.num_objects == 2


def test_object_flags_default_to_none_and_follow_selections() -> None:
    assert _record(2).crowd.tolist() == [False, False] and _record(2).ignored.tolist() == [False, False]
    boxes = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6]], np.float32)
    record = ImageRecord(Path("x.jpg"), boxes, np.array([0, 1, 2]), 10, 10,
                         crowd=np.array([False, True, False]), difficult=np.array([0, 0, 1]))
    assert record.ignored.tolist() == [False, True, True]
    training = record.for_training()  # the crowd region goes, the difficult object stays
    assert training.labels.tolist() == [0, 2] and training.difficult.tolist() == [False, True]
    assert not training.crowd.any() and training.for_training() is training
    picked = record.select(np.array([False, True, True]))
    assert picked.boxes.tolist() == boxes[1:].tolist() and picked.ignored.tolist() == [True, True]
    with pytest.raises(ValueError, match="crowd has 1 flags for 3 boxes"):
        ImageRecord(Path("x.jpg"), boxes, np.array([0, 1, 2]), 10, 10, crowd=np.array([True]))
