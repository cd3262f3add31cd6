"""Curves and tables behind the evaluation report: confidence sweeps, confusion matrix, COCO PR curves.

Pure computations (numpy and torch, no plotting), so they are unit-tested on hand-made boxes and
reusable in notebooks. Inputs follow torchmetrics: ``predictions`` is one dict per image with
``boxes`` float ``[N, 4]`` xyxy, ``scores`` float ``[N]`` and ``labels`` int ``[N]``; ``targets``
one dict per image with ``boxes``, ``labels`` and optionally ``iscrowd`` (ground truth to ignore:
a prediction matched to it counts nowhere and it is never missed; see
:mod:`yolotl.evaluation.matching`). Torch tensors or numpy arrays are accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from yolotl.evaluation.matching import crowd_flags, greedy_match
from yolotl.evaluation.pr_f1 import match_predictions

__all__ = ["ConfidenceCurves", "confidence_curves", "confusion_matrix", "confusion_summary", "pr_curves_from_coco"]

Detections = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class ConfidenceCurves:
    """Precision, recall and F1 against the confidence threshold (a threshold keeps scores >= t).

    Rows ``0..C-1`` are the classes, the last row all classes micro-averaged (summed counts).
    ``precision`` is NaN where no prediction is kept, ``recall`` where a class has no ground
    truth and ``f1`` (``2 TP / (kept + ground truth)``) only where both are absent.
    """

    thresholds: np.ndarray  # [T]
    precision: np.ndarray  # [C + 1, T]
    recall: np.ndarray  # [C + 1, T]
    f1: np.ndarray  # [C + 1, T]
    num_gt: np.ndarray  # [C + 1] ground-truth instances per class, then in all
    iou_threshold: float = 0.5  # the matching IoU the curves were computed at

    def best(self, row: int = -1) -> dict[str, float]:
        """The operating point of ``row`` with the highest F1 (the lowest threshold on ties); NaNs if none."""
        f1 = self.f1[row]
        if np.isnan(f1).all():
            return {"precision": np.nan, "recall": np.nan, "f1": np.nan, "confidence": np.nan}
        index = int(np.nanargmax(f1))
        return {
            "precision": float(self.precision[row, index]),
            "recall": float(self.recall[row, index]),
            "f1": float(f1[index]),
            "confidence": float(self.thresholds[index]),
        }


def confidence_curves(
    predictions: Detections,
    targets: Detections,
    num_classes: int,
    iou_threshold: float = 0.5,
    thresholds: np.ndarray | None = None,
) -> ConfidenceCurves:
    """Sweep the confidence threshold (default ``np.linspace(0, 1, 101)``) per class and overall.

    Predictions are matched to ground truth once, with :func:`match_predictions` (greedy by score,
    class-aware, IoU >= ``iou_threshold``), so every threshold sees the same true positives.
    Predictions whose label is outside ``[0, num_classes)``, and those on ``iscrowd`` ground
    truth, count in no row; ``iscrowd`` ground truth is not counted in ``num_gt``.
    """
    _check_aligned(predictions, targets)
    thresholds = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    scores, labels, is_tp = _matched_predictions(predictions, targets, iou_threshold)
    gt_labels = np.concatenate([_scored_labels(t) for t in targets]) if targets else np.zeros(0, dtype=np.int64)
    num_gt = np.bincount(gt_labels[(gt_labels >= 0) & (gt_labels < num_classes)], minlength=num_classes)
    kept = np.zeros((num_classes, len(thresholds)))
    tp = np.zeros((num_classes, len(thresholds)))
    for c in range(num_classes):
        kept[c], tp[c] = _counts_above(scores[labels == c], is_tp[labels == c], thresholds)
    kept = np.vstack([kept, kept.sum(0)])
    tp = np.vstack([tp, tp.sum(0)])
    num_gt = np.append(num_gt, num_gt.sum()).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(kept > 0, tp / kept, np.nan)
        recall = np.where(num_gt[:, None] > 0, tp / num_gt[:, None], np.nan)
        total = kept + num_gt[:, None]
        f1 = np.where(total > 0, 2 * tp / total, np.nan)
    return ConfidenceCurves(thresholds, precision, recall, f1, num_gt.astype(np.int64), iou_threshold)


def confusion_matrix(
    predictions: Detections,
    targets: Detections,
    num_classes: int,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Detection confusion matrix ``[C + 1, C + 1]`` (int64) at one score threshold.

    Convention: rows are the predicted class, columns the true class, index ``C`` is background.
    ``M[p, g]`` counts predictions of class ``p`` matched to a ground-truth box of class ``g``
    (the diagonal holds the true positives); ``M[p, C]`` predictions matching no ground truth
    (false positives: background detections and duplicates); ``M[C, g]`` ground-truth boxes no
    prediction matched (missed objects, false negatives); ``M[C, C]`` is always 0. Predictions
    matched to ``iscrowd`` ground truth, and that ground truth, are in no cell.

    Matching, per image, on predictions with score >= ``score_threshold``, each ground-truth box
    used at most once, IoU >= ``iou_threshold``, greedy by descending score: first class-aware
    (so the diagonal equals the true positives of :func:`confidence_curves` at this threshold and
    a correct detection is never displaced by a confused one), then class-agnostic among the
    predictions and ground truth still unmatched, which gives the confusions ``p != g``.
    """
    _check_aligned(predictions, targets)
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pred, target in zip(predictions, targets):
        scores = _tensor(pred["scores"]).float().reshape(-1)
        keep = scores >= score_threshold
        boxes, scores, labels = _boxes(pred["boxes"])[keep], scores[keep], _tensor(pred["labels"]).long()[keep]
        gt_labels, crowd = _tensor(target["labels"]).long().reshape(-1), crowd_flags(target).cpu()
        gt_index = greedy_match(boxes, scores, labels, _boxes(target["boxes"]), gt_labels, iou_threshold,
                                then_class_agnostic=True, gt_crowd=crowd).numpy()
        gt_labels, crowd = gt_labels.numpy(), crowd.numpy()
        matched = gt_index >= 0
        on_crowd = np.zeros(len(gt_index), dtype=bool)
        on_crowd[matched] = crowd[gt_index[matched]]
        hit = gt_index[~on_crowd]
        rows = _clip(labels.numpy()[~on_crowd], num_classes)
        cols = np.full(len(rows), num_classes)
        cols[hit >= 0] = _clip(gt_labels[hit[hit >= 0]], num_classes)
        np.add.at(matrix, (rows, cols), 1)
        missed = np.setdiff1d(np.flatnonzero(~crowd), gt_index[matched])
        np.add.at(matrix, (num_classes, _clip(gt_labels[missed], num_classes)), 1)
    return matrix


def confusion_summary(matrix: np.ndarray, class_index: int | None = None) -> dict[str, float]:
    """Precision, recall and F1 of one class of a :func:`confusion_matrix`, or micro-averaged over all.

    True positives are the diagonal (background excluded), predictions the class rows, ground
    truth the class columns: the same numbers as :func:`confidence_curves` at that threshold.
    Undefined values (no prediction, no ground truth) are NaN.
    """
    matrix = np.asarray(matrix)
    if class_index is None:
        tp = float(np.trace(matrix[:-1, :-1]))
        predicted, actual = float(matrix[:-1].sum()), float(matrix[:, :-1].sum())
    else:
        tp = float(matrix[class_index, class_index])
        predicted, actual = float(matrix[class_index].sum()), float(matrix[:, class_index].sum())
    return {
        "precision": tp / predicted if predicted else float("nan"),
        "recall": tp / actual if actual else float("nan"),
        "f1": 2 * tp / (predicted + actual) if predicted + actual else float("nan"),
    }


def pr_curves_from_coco(precision: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-class precision at the 101 COCO recall points ``np.linspace(0, 1, 101)``: ``[K, 101]``.

    ``precision`` is COCOeval's array ``[T=10, R=101, K, A=4, M=3]`` (torchmetrics
    ``MeanAveragePrecision(extended_summary=True)`` returns it under ``"precision"``); the curve
    is taken at IoU 0.5, area "all" and the largest max-detections setting. COCO's ``-1`` ("no
    ground truth for this class") becomes NaN. The mean of a row is that class's AP50. ``K``
    follows the ``classes`` of the same torchmetrics result (sorted ids seen in preds or targets).
    """
    array = precision.detach().cpu().numpy() if isinstance(precision, torch.Tensor) else np.asarray(precision)
    if array.ndim != 5:
        raise ValueError(f"Expected COCO precision of shape [T, R, K, A, M], got {array.shape}.")
    curves = array[0, :, :, 0, -1].T.astype(np.float64)  # [K, R]
    curves[curves < 0] = np.nan
    return curves


def _matched_predictions(
    predictions: Detections, targets: Detections, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and true-positive flags of every prediction not ignored, all images concatenated."""
    scores = [np.zeros(0, dtype=np.float32)]
    labels, flags = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=bool)]
    for pred, target in zip(predictions, targets):
        pred_scores, pred_labels = _tensor(pred["scores"]).float(), _tensor(pred["labels"]).long()
        is_tp, ignored = match_predictions(
            _boxes(pred["boxes"]), pred_scores, pred_labels,
            _boxes(target["boxes"]), _tensor(target["labels"]).long(), iou_threshold, crowd_flags(target).cpu(),
        )
        scores.append(pred_scores[~ignored].numpy())
        labels.append(pred_labels[~ignored].numpy())
        flags.append(is_tp[~ignored].numpy())
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(flags)


def _counts_above(scores: np.ndarray, is_tp: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number of kept predictions and of kept true positives at each threshold (score >= t).

    Compared in float32, like the scores, so a score of exactly ``t`` is kept as in
    :func:`confusion_matrix` (float64 0.35 is above float32 0.35).
    """
    order = np.argsort(-scores, kind="stable")
    cum_tp = np.concatenate([[0], np.cumsum(is_tp[order])])
    ascending = scores[order][::-1].astype(np.float32)
    kept = len(scores) - np.searchsorted(ascending, thresholds.astype(np.float32), side="left")
    return kept.astype(np.float64), cum_tp[kept].astype(np.float64)


def _check_aligned(predictions: Detections, targets: Detections) -> None:
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction dicts for {len(targets)} target dicts: "
                         "need one each per image.")


def _clip(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels outside ``[0, num_classes)`` are counted as background rather than crashing."""
    return np.where((labels >= 0) & (labels < num_classes), labels, num_classes)


def _tensor(value: Any) -> torch.Tensor:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _boxes(value: Any) -> torch.Tensor:
    return _tensor(value).float().reshape(-1, 4)


def _scored_labels(target: dict[str, Any]) -> np.ndarray:
    """Labels of the ground truth that counts (``iscrowd`` boxes left out)."""
    return _tensor(target["labels"]).long().reshape(-1).numpy()[~crowd_flags(target).cpu().numpy()]
