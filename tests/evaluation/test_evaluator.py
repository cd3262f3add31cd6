"""The evaluation path on records: crowd regions and difficult objects reach the metrics flagged."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from yolotl.data import ImageRecord
from yolotl.evaluation.evaluator import collect, score

OBJECT, FLAGGED, ELSEWHERE = [10.0, 10.0, 60.0, 60.0], [100.0, 20.0, 150.0, 70.0], [70.0, 5.0, 95.0, 30.0]


class _Fixed:
    """A predictor that returns the same detections for every image."""

    class_names: Sequence[str] = ["thing"]

    def __init__(self, boxes: list[list[float]], scores: list[float]) -> None:
        self.detections = {"boxes": torch.tensor(boxes), "scores": torch.tensor(scores),
                           "labels": torch.zeros(len(boxes), dtype=torch.long)}

    def predict(self, images: Any, score_threshold: float, iou_threshold: float,
                max_detections: int) -> list[dict[str, torch.Tensor]]:
        return [dict(self.detections) for _ in images]


@pytest.mark.parametrize("flag", ["crowd", "difficult"])
def test_a_detection_on_a_flagged_object_scores_as_if_absent(tmp_path: Path, flag: str) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (160, 80), (90, 90, 90)).save(path)
    record = ImageRecord(path, np.array([OBJECT, FLAGGED], np.float32), np.array([0, 0]), 160, 80,
                         **{flag: np.array([False, True])})
    on_it = score(collect(_Fixed([FLAGGED, ELSEWHERE, OBJECT], [0.9, 0.7, 0.6]), [record]))
    assert on_it.targets[0]["iscrowd"].tolist() == [False, True]
    without = score(collect(_Fixed([ELSEWHERE, OBJECT], [0.7, 0.6]), [record])).metrics
    for key in ("map", "map_50", "precision", "recall", "f1", "instances"):
        assert on_it.metrics[key] == pytest.approx(without[key]), key
    assert on_it.metrics["instances"] == 1.0 and on_it.metrics["map_50"] == pytest.approx(0.5)
    plain = ImageRecord(path, record.boxes, record.labels, 160, 80)
    assert score(collect(_Fixed([FLAGGED, ELSEWHERE, OBJECT], [0.9, 0.7, 0.6]), [plain])).metrics[
        "map_50"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=0.01)
