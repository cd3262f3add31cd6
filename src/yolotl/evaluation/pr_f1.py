"""Precision, recall and F1 at the confidence threshold that maximises F1 (IoU 0.5, all classes).

mAP summarises ranking quality; users also need one operating point to ship. This metric matches
predictions to ground truth greedily by score (per image and class, IoU >= 0.5, each ground-truth
box used once), then sweeps the confidence threshold. Ground truth flagged ``iscrowd`` is ignored
as the mAP ignores it: a prediction on it counts neither way and it is not counted as missed
(:mod:`yolotl.evaluation.matching`). A torchmetrics ``Metric``, so it syncs across processes like
the mAP does.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from yolotl.evaluation.matching import crowd_flags, greedy_match


def match_predictions(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    pred_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    iou_threshold: float = 0.5,
    gt_crowd: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """True-positive flags and ignored flags, bool [K] each, for one image's predictions (greedy by
    score, class-aware; :func:`greedy_match`). Ignored: matched to ``gt_crowd`` ground truth, so
    neither a true nor a false positive."""
    gt_index = greedy_match(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, iou_threshold, stable=False,
                            gt_crowd=gt_crowd)
    matched = gt_index >= 0
    ignored = torch.zeros_like(matched)
    if gt_crowd is not None:
        ignored[matched] = gt_crowd.to(gt_index.device, torch.bool)[gt_index[matched]]
    return matched & ~ignored, ignored


def best_f1(scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int) -> dict[str, float]:
    """Sweep thresholds over sorted scores; return the operating point with the highest F1."""
    if num_gt == 0 or len(scores) == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "confidence": 0.0}
    order = torch.argsort(scores, descending=True)
    tp = is_tp[order].float().cumsum(0)
    fp = (~is_tp[order]).float().cumsum(0)
    precision = tp / (tp + fp)
    recall = tp / num_gt
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    best = int(f1.argmax())
    return {
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "f1": float(f1[best]),
        "confidence": float(scores[order][best]),
    }


def at_threshold(scores: torch.Tensor, is_tp: torch.Tensor, num_gt: int, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the predictions scoring at least ``threshold`` (a chosen operating point)."""
    kept = scores >= threshold
    tp = float(is_tp[kept].sum())
    count = int(kept.sum())
    precision = tp / count if count else 0.0
    recall = tp / num_gt if num_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "confidence": float(threshold)}


class PrecisionRecallF1(Metric):
    """Best-F1 operating point over a dataset (micro-averaged over classes)."""

    full_state_update = False

    def __init__(self, iou_threshold: float = 0.5) -> None:
        super().__init__()
        self.iou_threshold = iou_threshold
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("true_positive", default=[], dist_reduce_fx="cat")
        self.add_state("num_gt", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        for pred, target in zip(preds, targets):
            crowd = crowd_flags(target)
            flags, ignored = match_predictions(pred["boxes"], pred["scores"], pred["labels"], target["boxes"],
                                               target["labels"], self.iou_threshold, crowd)
            self.scores.append(pred["scores"].detach().float()[~ignored])
            self.true_positive.append(flags[~ignored])
            self.num_gt += int((~crowd).sum())

    def compute(self) -> dict[str, float]:
        scores = _cat(self.scores)
        flags = _cat(self.true_positive).bool()
        return best_f1(scores, flags, int(self.num_gt))

    def compute_at(self, threshold: float) -> dict[str, float]:
        """The operating point at a chosen confidence ``threshold`` instead of the best-F1 one."""
        return at_threshold(_cat(self.scores), _cat(self.true_positive).bool(), int(self.num_gt), threshold)


def _cat(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    if isinstance(state, torch.Tensor):
        return state
    return torch.cat(state) if state else torch.zeros(0)
