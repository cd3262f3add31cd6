"""The shared animals_seg dataset (COCO segmentation export) reads as its SOURCES.md and DEFECTS.md
describe it: counts, one polygon per object, a clean train split and the one test polygon that
leaves its image."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from yolotl.data import DetectionDataset
from yolotl.data.formats import read_coco_split
from yolotl.data.health.masks import mask_findings

from .helpers import shared_datasets

ROOT = shared_datasets() / "animals_seg"
pytestmark = pytest.mark.real_data("animals_seg")


def test_animals_seg_train_is_clean_segmentation_data() -> None:
    split = read_coco_split(ROOT, "train")
    assert (len(split), split.num_boxes, len(split.class_names)) == (700, 1043, 7)
    assert all(r.segments is not None and r.num_objects for r in split.records)
    segments = [s for r in split.records for s in r.segments]
    assert all(s.rle is None and len(s.polygons) == 1 and len(s.polygons[0]) >= 3 for s in segments)
    # DEFECTS.md: no polygon under 3 points, no odd count, no zero area, no empty mask.
    assert mask_findings("train", split.records, split.class_names) == []
    # Roboflow's bboxes overshoot the border by under a pixel; the reader clips them (detection rule).
    assert set(split.findings.counts()) == {"clipped_box"}
    _, target = DetectionDataset(split.records[:1], image_size=320, masks=True)[0]
    assert target["masks"].shape == (split.records[0].num_objects, 320, 320)
    assert (target["masks"].flatten(1).sum(1) > 0).all()


def test_animals_seg_test_polygon_outside_its_image() -> None:
    """DEFECTS.md item 1: image id 13 (640x395), annotation 14 reaches y = 640."""
    split = read_coco_split(ROOT, "test")
    findings = mask_findings("test", split.records, split.class_names)
    assert Counter(f.kind for f in findings) == {"clipped_polygon": 1}
    [finding] = findings
    record = split.records[finding.index]
    assert record.image_path.name.startswith("000000065582_jpg") and (record.width, record.height) == (640, 395)
    np.testing.assert_allclose(record.segments[finding.box].bbox()[3], 640.0)
