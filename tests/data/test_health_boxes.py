"""Bad boxes: reported by the check, stop ``strict``, fixed or dropped by ``fix`` (counted, in
skipped.csv); near duplicates and area outliers are reported and kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolotl.data import ImageRecord
from yolotl.data.health.boxes import area_outliers, box_findings

from .health_helpers import BOX, check_case


def _yolo(make_yolo, label: str):
    return make_yolo({"train": {"good.jpg": BOX, "a.jpg": BOX + "\n" + label}, "val": {"v.jpg": BOX}})


@pytest.mark.parametrize(
    ("label", "kind"),
    [("0 0.5 0.5 0 0", "dropped_degenerate_box"),             # zero area
     ("0 0.5 0.5 -0.1 0.2", "dropped_degenerate_box"),        # negative width
     ("0 nan 0.5 0.1 0.1", "dropped_non_finite_box"),
     ("0 0.5 inf 0.1 0.1", "dropped_non_finite_box"),
     ("0 1.5 0.5 0.2 0.2", "dropped_outside_box"),            # wholly right of the image
     ("0 0.5 -0.5 0.2 0.2", "dropped_outside_box"),           # wholly above it
     ("0 0.5 0.5 0.015 0.2", "tiny_box"),                     # 1.5 px wide on 100 px
     ("1 0.5 0.5 0.2 0.5", "duplicate_box")],                 # the same box again
)
def test_box_dropped_by_fix(make_yolo, tmp_path, label: str, kind: str) -> None:
    root = _yolo(make_yolo, label)
    dm = check_case(root, "yolo", kind, "a.txt", tmp_path / "run")
    record = next(r for r in dm.split("train").records if r.image_path.name == "a.jpg")
    assert record.labels.tolist() == [1]  # the good box stays, the image stays
    np.testing.assert_allclose(record.boxes, [[40, 20, 60, 60]], atol=1e-4)


def test_box_past_the_border_is_clipped(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "2 0.95 0.5 0.2 0.2")
    dm = check_case(root, "yolo", "clipped_box", "a.txt", tmp_path / "run")
    record = next(r for r in dm.split("train").records if r.image_path.name == "a.jpg")
    np.testing.assert_allclose(record.boxes[1], [85, 32, 100, 48], atol=1e-4)


def test_near_duplicate_boxes_are_reported_and_kept(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "1 0.505 0.505 0.2 0.5")  # shifted by half a pixel: IoU ~0.93
    dm = check_case(root, "yolo", "near_duplicate_box", "a.txt", tmp_path / "run")
    assert dm.split("train").num_boxes == 3
    assert "IoU 0.9" in dm.health.of_kind("near_duplicate_box")[0].detail


def _record(boxes, labels, size=(100, 80)) -> ImageRecord:
    return ImageRecord(Path("x.jpg"), np.array(boxes, np.float32).reshape(-1, 4),
                       np.array(labels, np.int64), *size, label_file=Path("x.txt"))


def test_box_findings_on_hand_made_boxes() -> None:
    record = _record([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.5], [0, 0, 10, 10.5],
                      [20, 20, 21.5, 40], [50, 50, 60, 60], [50, 50, 60, 60]],
                     [0, 0, 0, 1, 0, 0, 1])
    found = box_findings("train", [record], ["a", "b"], tiny_box_px=2.0, near_duplicate_iou=0.9)
    by_kind = {}
    for f in found:
        by_kind.setdefault(f.kind, []).append(f)
    assert [f.box for f in by_kind["duplicate_box"]] == [1]  # the copy, not the first
    assert [f.box for f in by_kind["tiny_box"]] == [4]
    # 0~2 (IoU 0.95, same class) is near; 0~3 and 5~6 differ in class; 1 is an exact copy
    assert len(by_kind["near_duplicate_box"]) == 1
    assert "box 0 (a [0, 0, 10, 10])" in by_kind["near_duplicate_box"][0].detail
    assert all(f.file == "x.txt" and f.index == 0 for f in found)
    assert box_findings("t", [record], ["a", "b"], tiny_box_px=0.0, near_duplicate_iou=1.0)[0].kind \
        == "duplicate_box"


def test_area_outlier_finds_a_box_far_larger_than_its_class() -> None:
    rng = np.random.default_rng(0)
    records = []
    for _ in range(30):
        side = rng.uniform(18, 22)
        records.append(_record([[30, 30, 30 + side, 30 + side]], [0], size=(640, 480)))
    records.append(_record([[100, 100, 260, 260]], [0], size=(640, 480)))  # ~60x the median area
    records.append(_record([[0, 0, 4, 4]], [0], size=(640, 480)))  # small but cut by the border
    records.append(_record([[300, 300, 303, 303]], [1], size=(640, 480)))  # a class with 1 box
    found = area_outliers({"train": records[:20], "val": records[20:]}, ["a", "b"], ratio=10)
    assert [(f.split, f.index) for f in found] == [("val", 10)]
    assert "area 25600 px^2 is 60.9x the class median 420 px^2" in found[0].detail
