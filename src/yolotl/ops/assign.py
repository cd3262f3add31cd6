"""Task-aligned assignment of anchors to ground-truth boxes (TOOD, Feng et al. 2021).

For each ground truth ``g`` and anchor ``a`` the alignment metric is
``t = s^alpha * u^beta``: ``s`` the predicted probability of ``g``'s class at ``a``, ``u`` the
IoU of ``a``'s predicted box with ``g``. Candidates are anchors whose point lies strictly
inside ``g``; each ``g`` keeps its ``topk`` candidates by ``t``; an anchor kept by several
ground truths goes to the one its predicted box overlaps most. The soft class target of a
positive is ``t / max_t(g) * max_u(g)``, both maxima over ``g``'s positives.

All boxes are ``xyxy`` in input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou


@dataclass
class Assignment:
    """Per-anchor targets. Background anchors have label ``-1``, index ``-1``, zero box/scores."""

    fg_mask: Tensor  # [B, A] bool, True for anchors assigned to a ground truth
    target_labels: Tensor  # [B, A] int64 class id, -1 for background
    target_boxes: Tensor  # [B, A, 4] xyxy input pixels, zeros for background
    target_scores: Tensor  # [B, A, C] float, one-hot * normalised alignment
    gt_index: Tensor  # [B, A] int64 index into the M (padded) ground truths, -1 for background


def points_in_boxes(points: Tensor, boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """Which points lie strictly inside which boxes.

    points ``[A, 2]`` (x, y), boxes ``[B, M, 4]`` xyxy -> ``[B, M, A]`` bool.
    """
    x, y = points[:, 0], points[:, 1]  # [A]
    x1, y1, x2, y2 = (side[..., None] for side in boxes.unbind(-1))  # [B, M, 1] each
    inside = torch.stack((x - x1, y - y1, x2 - x, y2 - y), dim=-1)  # [B, M, A, 4]
    return inside.amin(dim=-1) > eps


class TaskAlignedAssigner:
    """Callable TOOD assigner; holds numbers only, no parameters, runs under ``no_grad``."""

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    def __repr__(self) -> str:
        return f"TaskAlignedAssigner(topk={self.topk}, alpha={self.alpha}, beta={self.beta})"

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: Tensor,
        pred_boxes: Tensor,
        anchor_points: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> Assignment:
        """Assign anchors to ground truths.

        Args:
            pred_scores: ``[B, A, C]`` class probabilities (sigmoid), detached.
            pred_boxes: ``[B, A, 4]`` predicted xyxy boxes, detached.
            anchor_points: ``[A, 2]`` anchor points ``(x, y)``.
            gt_labels: ``[B, M]`` int64 class ids (any value where padded).
            gt_boxes: ``[B, M, 4]`` xyxy boxes (any value where padded).
            gt_mask: ``[B, M]`` bool, False for padding.
        """
        num_classes = pred_scores.shape[-1]
        if gt_boxes.shape[1] == 0 or not bool(gt_mask.any()):
            return _background(pred_scores, pred_boxes)
        pred_scores, pred_boxes, gt_boxes = pred_scores.float(), pred_boxes.float(), gt_boxes.float()
        gt_labels = gt_labels.long().clamp(0, num_classes - 1)

        candidates = points_in_boxes(anchor_points.float(), gt_boxes) & gt_mask[..., None]  # [B, M, A]
        ious = torch.where(candidates, box_iou(gt_boxes, pred_boxes).clamp(0, 1), 0.0)  # [B, M, A]
        align = self._alignment(pred_scores, gt_labels, ious) * candidates  # [B, M, A]
        positives = self._select_topk(align, candidates)  # [B, M, A]
        fg_mask, gt_index = _resolve_conflicts(positives, ious)  # [B, A] each
        positives = F.one_hot(gt_index, gt_boxes.shape[1]).transpose(1, 2).bool() & fg_mask[:, None]

        labels = torch.gather(gt_labels, 1, gt_index)  # [B, A]
        boxes = torch.gather(gt_boxes, 1, gt_index[..., None].expand(-1, -1, 4))  # [B, A, 4]
        norm_align = _normalised_alignment(align * positives, ious * positives, self.eps)  # [B, A]
        scores = F.one_hot(labels, num_classes).to(pred_scores.dtype) * (norm_align * fg_mask)[..., None]
        return Assignment(
            fg_mask=fg_mask,
            target_labels=torch.where(fg_mask, labels, -1),
            target_boxes=boxes * fg_mask[..., None],
            target_scores=scores,
            gt_index=torch.where(fg_mask, gt_index, -1),
        )

    def _alignment(self, pred_scores: Tensor, gt_labels: Tensor, ious: Tensor) -> Tensor:
        """``s^alpha * u^beta`` for every (gt, anchor) pair: ``[B, M, A]``."""
        num_anchors = pred_scores.shape[1]
        index = gt_labels[..., None].expand(-1, -1, num_anchors)  # [B, M, A]
        class_scores = torch.gather(pred_scores.transpose(1, 2), 1, index)  # [B, M, A]
        return class_scores.clamp(min=0).pow(self.alpha) * ious.pow(self.beta)

    def _select_topk(self, align: Tensor, candidates: Tensor) -> Tensor:
        """Per ground truth, its ``topk`` candidates by alignment: ``[B, M, A]`` bool.

        Non-candidates rank below every candidate, so a gt with fewer than ``topk``
        candidates keeps them all and nothing else.
        """
        k = min(self.topk, align.shape[-1])
        ranked = torch.where(candidates, align, -1.0)
        top_index = ranked.topk(k, dim=-1).indices  # [B, M, k]
        chosen = torch.zeros_like(candidates).scatter_(-1, top_index, True)
        return chosen & candidates


def _resolve_conflicts(positives: Tensor, ious: Tensor) -> tuple[Tensor, Tensor]:
    """Each anchor keeps the claiming gt with the highest IoU.

    positives, ious ``[B, M, A]`` -> fg_mask ``[B, A]`` bool, gt_index ``[B, A]`` int64.
    """
    fg_mask = positives.any(dim=1)  # [B, A]
    gt_index = torch.where(positives, ious, -1.0).argmax(dim=1)  # [B, A]
    return fg_mask, gt_index


def _normalised_alignment(pos_align: Tensor, pos_ious: Tensor, eps: float) -> Tensor:
    """TOOD soft target ``t / max_t(g) * max_u(g)`` per anchor.

    pos_align, pos_ious ``[B, M, A]`` (zero off positives) -> ``[B, A]``.
    """
    max_align = pos_align.amax(dim=-1, keepdim=True)  # [B, M, 1]
    max_iou = pos_ious.amax(dim=-1, keepdim=True)  # [B, M, 1]
    return (pos_align / (max_align + eps) * max_iou).amax(dim=1)


def _background(pred_scores: Tensor, pred_boxes: Tensor) -> Assignment:
    """An all-background assignment shaped like the predictions."""
    batch, num_anchors, _ = pred_scores.shape
    device = pred_scores.device
    return Assignment(
        fg_mask=torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
        target_labels=torch.full((batch, num_anchors), -1, dtype=torch.long, device=device),
        target_boxes=torch.zeros_like(pred_boxes, dtype=torch.float32),
        target_scores=torch.zeros_like(pred_scores, dtype=torch.float32),
        gt_index=torch.full((batch, num_anchors), -1, dtype=torch.long, device=device),
    )
