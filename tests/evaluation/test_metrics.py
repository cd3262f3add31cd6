"""DetectionMetrics: ground truth flagged ``iscrowd`` is ignored, as COCOeval ignores crowd regions."""

from __future__ import annotations

import pytest
import torch

from yolotl.evaluation import DetectionMetrics

OBJECT, IGNORED, ELSEWHERE = [10.0, 10.0, 60.0, 60.0], [100.0, 100.0, 160.0, 150.0], [200.0, 20.0, 250.0, 70.0]
KEYS = ("map", "map_50", "map_75", "precision", "recall", "f1")


def _score(boxes: list[list[float]], scores: list[float], iscrowd: list[bool] | None) -> dict[str, float]:
    target = {"boxes": torch.tensor([OBJECT, IGNORED]), "labels": torch.tensor([0, 0])}
    if iscrowd is not None:
        target["iscrowd"] = torch.tensor(iscrowd)
    pred = {"boxes": torch.tensor(boxes), "scores": torch.tensor(scores),
            "labels": torch.zeros(len(boxes), dtype=torch.long)}
    metric = DetectionMetrics(["thing"])
    metric.update([pred], [target])
    return metric.compute()


def test_a_detection_on_an_ignored_object_changes_nothing():
    """Ranked: the detection on the ignored object (0.9), a false positive (0.7), the object (0.6)."""
    flagged = _score([IGNORED, ELSEWHERE, OBJECT], [0.9, 0.7, 0.6], [False, True])
    without = _score([ELSEWHERE, OBJECT], [0.7, 0.6], [False, True])
    for key in KEYS:
        assert flagged[key] == pytest.approx(without[key]), key
    assert flagged["map_50"] == pytest.approx(0.5)  # the object, found after one false positive
    assert flagged["recall"] == 1.0  # the ignored object is not missed
    ordinary = _score([IGNORED, ELSEWHERE, OBJECT], [0.9, 0.7, 0.6], None)
    assert ordinary["map_50"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=0.01)  # two objects, both found
    missed = _score([ELSEWHERE, OBJECT], [0.7, 0.6], [False, False])
    assert missed["recall"] == 0.5 and missed["map_50"] < flagged["map_50"]


def test_a_detection_inside_a_crowd_region_is_ignored_by_its_area_share():
    """COCO's crowd rule: a small detection inside the region (IoU 0.08) is ignored, not a false positive."""
    inside = [110.0, 110.0, 130.0, 125.0]
    flagged = _score([inside, OBJECT], [0.9, 0.6], [False, True])
    assert flagged["map_50"] == pytest.approx(1.0) and flagged["precision"] == 1.0
