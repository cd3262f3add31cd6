"""Greedy IoU matching of one image's predictions to its ground truth: the one matcher evaluation uses.

Predictions are visited by descending score; each takes the free
ground-truth box it overlaps most, if that IoU is at least ``iou_threshold``. Each ground-truth
box is used at most once. The best-F1 metric, the confidence curves and the confusion matrix all
match with :func:`greedy_match`.

Ground truth flagged ``iscrowd`` (COCO crowd regions, VOC difficult objects) is matched as COCOeval
matches crowd regions: only by a prediction no ordinary box took, by intersection over the
prediction's area, any number of times; callers then count such a prediction as neither a true
nor a false positive, and the flagged box as nothing to find. For VOC difficult objects this is
a close stand-in for VOC's own rule (a prediction whose best-overlapping box, IoU >= 0.5, is
difficult is ignored): it also ignores a prediction lying mostly inside a larger difficult box, and
gives an ordinary box to a prediction that overlaps a difficult one more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_area, box_iou


def greedy_match(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    iou_threshold: float = 0.5,
    then_class_agnostic: bool = False,
    stable: bool = True,
    gt_crowd: torch.Tensor | None = None,
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
        gt_crowd: bool ``[G]``, ground truth to ignore (see the module notes): a prediction that
            no ordinary box of its class takes matches the crowd box of its class covering the
            largest share of it (at least ``iou_threshold``); crowd boxes are never taken, and
            never matched across classes.
    """
    if len(scores) == 0 or len(gt_labels) == 0:
        return torch.full((len(scores),), -1, dtype=torch.long, device=scores.device)
    crowd = torch.zeros(len(gt_labels), dtype=torch.bool, device=gt_labels.device) if gt_crowd is None \
        else gt_crowd.to(gt_labels.device, torch.bool).reshape(-1)
    iou = box_iou(boxes, gt_boxes)  # [K, G]
    other_class = labels[:, None] != gt_labels[None, :]
    order = torch.argsort(scores, descending=True, stable=stable).tolist()
    matched = [-1] * len(order)
    taken = crowd.clone()  # the ordinary passes never use a crowd box
    _assign(iou.masked_fill(other_class, 0.0), order, iou_threshold, matched, taken)
    if bool(crowd.any()):
        cover = _intersection_over_prediction(boxes, gt_boxes)
        _assign(cover.masked_fill(other_class | ~crowd[None, :], 0.0), order, iou_threshold, matched, None)
    if then_class_agnostic:
        _assign(iou, order, iou_threshold, matched, taken)
    return torch.tensor(matched, dtype=torch.long, device=scores.device)


def crowd_flags(target: Mapping[str, Any]) -> torch.Tensor:
    """A target's ``iscrowd`` as bool ``[G]`` (on the device of its labels), all False when absent.

    The key and its meaning are torchmetrics' ``MeanAveragePrecision`` ones."""
    labels = target["labels"]
    device = labels.device if isinstance(labels, torch.Tensor) else None
    flags = target.get("iscrowd")
    if flags is None:
        return torch.zeros(len(labels), dtype=torch.bool, device=device)
    flags = flags if isinstance(flags, torch.Tensor) else torch.as_tensor(np.asarray(flags))
    return flags.to(device=device, dtype=torch.bool).reshape(-1)


def _intersection_over_prediction(boxes: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """``[K, G]`` intersection area over the prediction's area: COCOeval's overlap with a crowd box."""
    top_left = torch.maximum(boxes[:, None, :2], gt_boxes[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], gt_boxes[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / box_area(boxes).clamp(min=torch.finfo(boxes.dtype).tiny)[:, None]


def _assign(iou: torch.Tensor, order: list[int], iou_threshold: float, matched: list[int],
            taken: torch.Tensor | None) -> None:
    """Give each still unmatched prediction, in ``order``, its best free ground truth (in place).

    ``taken`` None: the ground truth can be matched any number of times (crowd boxes)."""
    for i in order:
        if matched[i] >= 0:
            continue
        candidates = iou[i] if taken is None else iou[i].masked_fill(taken, 0.0)
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            if taken is not None:
                taken[best] = True
            matched[i] = best
