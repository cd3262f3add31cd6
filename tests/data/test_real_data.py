"""The shared real datasets (BCCD: VOC, Aquarium: Roboflow YOLO) read with their known defects."""

from __future__ import annotations

import pytest

from yolotl.data import read_voc_split, read_yolo_split

from .helpers import shared_datasets

DATASETS = shared_datasets()
pytestmark = pytest.mark.real_data("bccd", "aquarium")


def _files(split, kind: str) -> list[str]:
    return sorted(row["file"].rsplit("/", 1)[-1] for row in split.findings.to_rows()
                  if row["kind"] == kind)


def test_bccd_splits_and_zero_area_boxes() -> None:
    names = ["RBC", "WBC", "Platelets"]
    splits = {s: read_voc_split(DATASETS / "bccd", s, class_names=names)
              for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 205, "val": 87, "test": 72}
    assert all(d.class_names == names for d in splits.values())
    assert {s: d.num_boxes for s, d in splits.items()} == {"train": 2804, "val": 1137,
                                                           "test": 945}
    # DEFECTS.md says both zero-area boxes are in test; ImageSets/Main puts 00343 in train
    # and 00338 in val. Either way both are dropped and logged.
    dropped = [f for d in splits.values() for f in _files(d, "dropped_degenerate_box")]
    assert sorted(dropped) == ["BloodImage_00338.xml", "BloodImage_00343.xml"]
    assert sum(len(d.findings) for d in splits.values()) == 2
    assert "BloodImage_00343.xml" in splits["train"].findings.summary()


def test_aquarium_relative_paths_and_defects() -> None:
    root = DATASETS / "aquarium"
    splits = {s: read_yolo_split(root, s) for s in ("train", "valid", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 448, "valid": 127, "test": 63}
    assert splits["train"].class_names[4] == "shark" and len(splits["train"].class_names) == 7
    assert all(d.findings.counts()["resolved_path"] == 1 for d in splits.values())
    test = splits["test"]
    assert _files(test, "dropped_degenerate_box") == [
        "IMG_2423_jpeg_jpg.rf.1c0901882e71d5ebd26f036f4e22da65.txt",
        "IMG_2570_jpeg_jpg.rf.ed40900b657a5b23d92cb2d296ad2dbc.txt"]
    assert test.num_boxes == 584 - 2
    train = splits["train"]
    assert _files(train, "background_image") == [
        "IMG_3133_jpeg_jpg.rf.f439b9d382fd153b96f0a88cdf169172.txt"]
    assert train.num_boxes == 3324  # the 1x1 px box is kept
    assert "dropped_degenerate_box" not in train.findings.counts()
    assert splits["valid"].num_boxes == 909
