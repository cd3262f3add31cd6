"""Greedy IoU matching of one image's predictions to its ground truth: the one matcher evaluation uses.

Predictions are visited by descending score; each takes the free
ground-truth box it overlaps most, if that IoU is at least ``iou_threshold``. Each ground-truth
box is used at most once. The best-F1 metric, the confidence curves and the confusion matrix all
match with :func:`greedy_match`.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou


def greedy_match(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    iou_threshold: float = 0.5,
    then_class_agnostic: bool = False,
    stable: bool = True,
) -> torch.Tensor:
    """Index of the ground-truth box each prediction matched (-1: none), int64 ``[K]`` on ``scores``' device.

    Args:
        boxes: ``[K, 4]`` xyxy predictions; scores ``[K]``; labels ``[K]``.
        gt_boxes: ``[G, 4]`` xyxy ground truth; gt_labels ``[G]``.
        iou_threshold: the least IoU of a match.
        then_class_agnostic: after the class-aware pass (a prediction only matches ground truth of
            its own class), a second pass matches the predictions still unmatched to the ground
            truth still free, whatever their classes (the confusions of a confusion matrix).
        stable: visit equal scores in input order; ``False`` keeps ``torch.argsort``'s default
            order for ties (what :func:`~yolotl.evaluation.pr_f1.match_predictions` has always used).
    """
    if len(scores) == 0 or len(gt_labels) == 0:
        return torch.full((len(scores),), -1, dtype=torch.long, device=scores.device)
    iou = box_iou(boxes, gt_boxes)  # [K, G]
    order = torch.argsort(scores, descending=True, stable=stable).tolist()
    matched = [-1] * len(order)
    taken = torch.zeros(len(gt_labels), dtype=torch.bool, device=iou.device)
    _assign(iou.masked_fill(labels[:, None] != gt_labels[None, :], 0.0), order, iou_threshold, matched, taken)
    if then_class_agnostic:
        _assign(iou, order, iou_threshold, matched, taken)
    return torch.tensor(matched, dtype=torch.long, device=scores.device)


def _assign(iou: torch.Tensor, order: list[int], iou_threshold: float, matched: list[int],
            taken: torch.Tensor) -> None:
    """Give each still unmatched prediction, in ``order``, its best free ground truth (in place)."""
    for i in order:
        if matched[i] >= 0:
            continue
        candidates = iou[i].masked_fill(taken, 0.0)
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            taken[best] = True
            matched[i] = best
