"""SemanticMetrics against an independent NumPy count: per-class IoU, mean IoU, pixel accuracy, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from yolotl.evaluation import SemanticMetrics, scores_from_confusion

IGNORE = 255
NAMES = ["background", "road", "car", "person", "sky"]


def _numpy_scores(preds: list[np.ndarray], truths: list[np.ndarray], num_classes: int) -> tuple[np.ndarray, dict]:
    """Confusion matrix (rows truth) by np.bincount over labelled pixels, and IoU = tp / (tp + fp + fn)."""
    pred = np.concatenate([p.ravel() for p in preds])
    truth = np.concatenate([t.ravel() for t in truths])
    keep = truth != IGNORE
    matrix = np.bincount(truth[keep] * num_classes + pred[keep], minlength=num_classes**2).reshape(num_classes, -1)
    scores = {}
    ious = []
    for c in range(num_classes):
        tp = matrix[c, c]
        fp = matrix[:, c].sum() - tp
        fn = matrix[c, :].sum() - tp
        iou = tp / (tp + fp + fn) if tp + fp + fn else math.nan
        scores[f"iou/{NAMES[c]}"] = iou
        if not math.isnan(iou):
            ious.append(iou)
    scores["miou"] = float(np.mean(ious))
    scores["pixel_acc"] = np.trace(matrix) / matrix.sum()
    return matrix, scores


def _assert_scores(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, abs=1e-9), key


def test_random_maps_with_ignored_pixels_over_several_updates_match_numpy():
    rng = np.random.default_rng(0)
    metric = SemanticMetrics(NAMES)
    preds, truths = [], []
    for batch in range(3):
        shape = (2, 17 + batch, 23)
        truth = rng.integers(0, 4, shape)  # "sky" (4) never true ...
        truth[rng.random(shape) < 0.2] = IGNORE
        pred = np.where(rng.random(shape) < 0.6, np.where(truth == IGNORE, 0, truth), rng.integers(0, 5, shape))
        pred[0, 0, :3] = 4  # ... but predicted: IoU 0
        preds.append(pred)
        truths.append(truth)
        metric.update(torch.from_numpy(pred), torch.from_numpy(truth))
    matrix, expected = _numpy_scores(preds, truths, len(NAMES))
    assert torch.equal(metric.confusion_matrix(), torch.from_numpy(matrix))
    scores = metric.compute()
    _assert_scores(scores, expected)
    assert scores["iou/sky"] == 0.0 and 0.0 < scores["miou"] < 1.0


def test_a_class_in_neither_truth_nor_prediction_is_nan_and_left_out_of_the_mean():
    truth = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, IGNORE]]])
    pred = torch.tensor([[[0, 1, 1, 1], [0, 1, 1, 4]]])  # a prediction on an ignored pixel counts nowhere
    metric = SemanticMetrics(NAMES)
    metric.update(pred, truth)
    scores = metric.compute()
    assert math.isnan(scores["iou/car"]) and math.isnan(scores["iou/person"]) and math.isnan(scores["iou/sky"])
    assert scores["iou/background"] == pytest.approx(2 / 3) and scores["iou/road"] == pytest.approx(4 / 5)
    assert scores["miou"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores["pixel_acc"] == pytest.approx(6 / 7)
    _assert_scores(scores, _numpy_scores([pred.numpy()], [truth.numpy()], len(NAMES))[1])


def test_perfect_prediction_scores_one_and_reset_starts_over():
    truth = torch.randint(0, len(NAMES), (2, 8, 8), generator=torch.Generator().manual_seed(1))
    metric = SemanticMetrics(NAMES)
    metric.update(torch.zeros_like(truth), truth)
    assert metric.compute()["miou"] < 1.0
    metric.reset()
    metric.update(truth.clone(), truth)
    scores = metric.compute()
    assert scores["miou"] == 1.0 and scores["pixel_acc"] == 1.0
    assert all(scores[f"iou/{name}"] == 1.0 for name in NAMES)


def test_scores_from_confusion_reads_rows_as_truth():
    matrix = torch.tensor([[5, 1], [0, 0]])  # class 1 predicted once, never true
    scores = scores_from_confusion(matrix, ["a", "b"])
    assert scores == {"miou": pytest.approx(5 / 6 / 2), "pixel_acc": pytest.approx(5 / 6),
                      "iou/a": pytest.approx(5 / 6), "iou/b": 0.0}
    empty = scores_from_confusion(torch.zeros(2, 2, dtype=torch.long), ["a", "b"])
    assert all(math.isnan(value) for value in empty.values())


def test_wrong_shapes_and_values_that_are_no_class_are_refused():
    metric = SemanticMetrics(NAMES)
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="no class"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, 5], [1, IGNORE]]]))
    with pytest.raises(ValueError, match="no class"):
        metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.tensor([[[0, -1], [1, 1]]]))
    with pytest.raises(ValueError, match="predictions hold"):
        metric.update(torch.tensor([[[0, 7], [1, 1]]]), torch.zeros(1, 2, 2, dtype=torch.long))
    # nothing was counted by the refused calls
    metric.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long))
    assert int(metric.confusion_matrix().sum()) == 4
