"""Confidence curves, confusion matrix and COCO PR curves on hand-made boxes with exact expected numbers."""

import numpy as np
import pytest
import torch

from yolotl.evaluation.curves import (
    confidence_curves,
    confusion_matrix,
    confusion_summary,
    pr_curves_from_coco,
)

NAN = np.nan


def _pred(boxes, scores, labels):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


A, B, C, FAR = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]


def _curve_case():
    """Class 0: two objects, one found twice (a duplicate) and one at 0.35; class 1: one object, missed."""
    predictions = [_pred([A, A, B, FAR], [0.9, 0.8, 0.35, 0.6], [0, 0, 0, 1])]
    targets = [_target([A, B, C], [0, 0, 1])]
    return predictions, targets


def test_confidence_curves_exact_counts():
    predictions, targets = _curve_case()
    curves = confidence_curves(predictions, targets, num_classes=2, thresholds=np.array([0.0, 0.5, 0.85, 0.95]))
    # kept (class 0): 3, 2, 1, 0 with 2, 1, 1, 0 true positives of 2 objects; F1 = 2 TP / (kept + gt)
    np.testing.assert_allclose(curves.precision[0], [2 / 3, 1 / 2, 1, NAN])
    np.testing.assert_allclose(curves.recall[0], [1, 0.5, 0.5, 0])
    np.testing.assert_allclose(curves.f1[0], [4 / 5, 2 / 4, 2 / 3, 0])
    # class 1: one false positive at 0.6, its object missed
    np.testing.assert_allclose(curves.precision[1], [0, 0, NAN, NAN])
    np.testing.assert_allclose(curves.recall[1], [0, 0, 0, 0])
    np.testing.assert_allclose(curves.f1[1], [0, 0, 0, 0])
    # all classes: summed counts (kept 4, 3, 1, 0; TP 2, 1, 1, 0; 3 objects)
    np.testing.assert_allclose(curves.precision[2], [1 / 2, 1 / 3, 1, NAN])
    np.testing.assert_allclose(curves.recall[2], [2 / 3, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(curves.f1[2], [4 / 7, 2 / 6, 2 / 4, 0])
    assert curves.num_gt.tolist() == [2, 1, 3]


def test_best_operating_point_and_empty_class():
    predictions, targets = _curve_case()
    curves = confidence_curves(predictions, targets, num_classes=3, thresholds=np.array([0.0, 0.5, 0.85, 0.95]))
    assert curves.best(0) == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "confidence": 0.0})
    assert curves.best(-1)["f1"] == pytest.approx(4 / 7)
    assert np.isnan(curves.f1[2]).all() and np.isnan(curves.recall[2]).all()  # no object, no prediction
    assert np.isnan(curves.best(2)["f1"])
    assert curves.num_gt.tolist() == [2, 1, 0, 3]


def test_score_equal_to_threshold_is_kept_like_the_confusion_matrix():
    predictions, targets = _curve_case()
    curves = confidence_curves(predictions, targets, num_classes=2, thresholds=np.array([0.35]))
    assert curves.precision[0, 0] == pytest.approx(2 / 3)  # the 0.35 detection counts
    matrix = confusion_matrix(predictions, targets, num_classes=2, score_threshold=0.35)
    assert np.trace(matrix[:2, :2]) == 2


def test_default_thresholds_and_numpy_inputs():
    predictions = [{"boxes": np.array([A], dtype=np.float32), "scores": np.array([0.42]), "labels": np.array([0])}]
    targets = [{"boxes": np.array([A], dtype=np.float32), "labels": np.array([0])}]
    curves = confidence_curves(predictions, targets, num_classes=1)
    assert curves.thresholds.shape == (101,) and curves.f1.shape == (2, 101)
    assert curves.f1[0, :43].tolist() == [1.0] * 43  # thresholds 0.00 .. 0.42 keep it
    assert curves.f1[0, 43:].tolist() == [0.0] * 58


def test_no_images_gives_undefined_curves():
    curves = confidence_curves([], [], num_classes=2, thresholds=np.array([0.5]))
    assert np.isnan(curves.f1).all() and curves.num_gt.tolist() == [0, 0, 0]


def _matrix_case():
    """Correct, confused, duplicate, background and below-threshold detections; a missed object; empty images."""
    predictions = [
        _pred([A, B, A, FAR, C], [0.9, 0.8, 0.7, 0.6, 0.1], [0, 0, 0, 1, 2]),
        _pred([], [], []),  # empty image
        _pred([], [], []),  # an object nobody found
        _pred([A], [0.5], [1]),  # a detection on an image without objects
    ]
    targets = [
        _target([A, B, C], [0, 1, 2]),
        _target([], []),
        _target([A], [2]),
        _target([], []),
    ]
    return predictions, targets


def test_confusion_matrix_hand_case():
    predictions, targets = _matrix_case()
    matrix = confusion_matrix(predictions, targets, num_classes=3, score_threshold=0.25)
    expected = [
        [1, 1, 0, 1],  # predicted 0: correct on A, confused with the class-1 B, duplicate on A
        [0, 0, 0, 2],  # predicted 1: two background detections
        [0, 0, 0, 0],  # predicted 2: its only detection is below the threshold
        [0, 0, 2, 0],  # missed: the class-2 object C and the one of the third image
    ]
    assert matrix.tolist() == expected and matrix.dtype == np.int64


def test_confusion_matrix_prefers_the_correct_class_over_a_higher_scored_confusion():
    # a class-1 box scores higher with IoU 0.9, but the class-0 box takes the object: confusions come second
    predictions = [_pred([[0, 0, 10, 9], A], [0.9, 0.8], [1, 0])]
    matrix = confusion_matrix(predictions, [_target([A], [0])], num_classes=2)
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_confusion_matrix_iou_threshold_is_inclusive():
    predictions = [_pred([[0, 0, 10, 5]], [0.9], [0])]  # IoU with A is exactly 0.5
    assert confusion_matrix(predictions, [_target([A], [0])], 1, iou_threshold=0.5).tolist() == [[1, 0], [0, 0]]
    assert confusion_matrix(predictions, [_target([A], [0])], 1, iou_threshold=0.51).tolist() == [[0, 1], [1, 0]]


def test_confusion_summary_matches_the_hand_matrix_and_the_curves():
    predictions, targets = _matrix_case()
    matrix = confusion_matrix(predictions, targets, num_classes=3, score_threshold=0.25)
    # all: 1 TP of 5 kept predictions and 4 objects; class 0: 1 TP of 3 predictions and 1 object
    assert confusion_summary(matrix) == pytest.approx({"precision": 1 / 5, "recall": 1 / 4, "f1": 2 / 9})
    assert confusion_summary(matrix, 0) == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 2 / 4})
    assert np.isnan(confusion_summary(matrix, 2)["precision"])  # no class-2 prediction kept
    curves = confidence_curves(predictions, targets, num_classes=3, thresholds=np.array([0.25]))
    assert curves.precision[-1, 0] == pytest.approx(1 / 5) and curves.recall[-1, 0] == pytest.approx(1 / 4)


def test_pr_curves_from_coco_takes_iou_50_area_all_last_max_dets():
    precision = np.full((10, 101, 2, 4, 3), 0.25)  # every other slice: must not be picked
    curve = np.linspace(1.0, 0.0, 101)
    precision[0, :, 0, 0, 2] = curve
    precision[0, :, 1, 0, 2] = -1.0  # class without ground truth
    result = pr_curves_from_coco(torch.tensor(precision))
    assert result.shape == (2, 101)
    np.testing.assert_allclose(result[0], curve)
    assert np.isnan(result[1]).all()
    assert result[0].mean() == pytest.approx(0.5)  # the row mean is the class's AP50
    np.testing.assert_allclose(pr_curves_from_coco(precision), result)  # numpy works too


def test_pr_curves_from_coco_rejects_other_shapes():
    with pytest.raises(ValueError, match="T, R, K, A, M"):
        pr_curves_from_coco(np.zeros((101, 3)))


def test_predictions_and_targets_must_be_aligned():
    predictions, targets = _matrix_case()
    with pytest.raises(ValueError, match="one each per image"):
        confusion_matrix(predictions, targets[:2], num_classes=3)
    with pytest.raises(ValueError, match="one each per image"):
        confidence_curves(predictions[:1], targets, num_classes=3)


def test_crowd_ground_truth_and_predictions_on_it_count_nowhere():
    """C is a crowd region (class 1): a class-1 prediction on it is neither a true nor a false
    positive, and C is never missed; a class-0 prediction on it is an ordinary false positive."""
    crowd = _target([A, C], [0, 1]) | {"iscrowd": torch.tensor([False, True])}
    on_crowd = _pred([A, C, C, FAR], [0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1])
    without = _pred([A, C, FAR], [0.9, 0.7, 0.6], [0, 0, 1])
    matrix = confusion_matrix([on_crowd], [crowd], num_classes=2, score_threshold=0.5)
    np.testing.assert_array_equal(matrix, [[1, 0, 1], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(matrix, confusion_matrix([without], [crowd], num_classes=2, score_threshold=0.5))
    ordinary = confusion_matrix([on_crowd], [_target([A, C], [0, 1])], num_classes=2, score_threshold=0.5)
    np.testing.assert_array_equal(ordinary, [[1, 0, 1], [0, 1, 1], [0, 0, 0]])

    curves = confidence_curves([on_crowd], [crowd], num_classes=2)
    assert curves.num_gt.tolist() == [1, 0, 1]
    same = confidence_curves([without], [crowd], num_classes=2)
    for name in ("precision", "recall", "f1"):
        np.testing.assert_array_equal(getattr(curves, name), getattr(same, name))
    at_half = int(np.searchsorted(curves.thresholds, 0.5))
    assert curves.precision[-1, at_half] == pytest.approx(1 / 3) and curves.recall[-1, at_half] == 1.0
