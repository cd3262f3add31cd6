"""Detection loss of the anchor-free YOLO head: CIoU box loss, BCE class loss, DFL.

Normalisation: every term is a sum divided by ``S = max(sum(target_scores), 1)``, the total
soft-target mass of the batch (roughly "number of positives, weighted by their quality"):

- ``box = sum_fg w_a * CIoU_loss_a / S`` and ``dfl = sum_fg w_a * DFL_a / S``, with
  ``w_a = sum_c target_scores[a, c]`` (the positive's TOOD soft score);
- ``cls = sum_{a, c} BCE(logit, target_score) / S`` over all anchors and classes;
- ``total = box_weight * box + cls_weight * cls + dfl_weight * dfl``.

With ``reg_max = 1`` (distances regressed directly, no distribution) the ``dfl`` term is instead the L1
distance between ``log(1 + d)`` of the predicted and target sides (``d`` in stride units): like DFL it
pulls each side towards its target even when the boxes do not overlap yet, and its scale does not grow
with the object's size.

A segmenting head (mask coefficients and prototypes given) adds ``mask_weight * mask``: per positive
anchor, the BCE of its mask inside its ground-truth box divided by the box area, averaged over the
positives (YOLOv8-seg's normalisation; see :mod:`yolotl.ops.masks`). Crowd objects (``iscrowd``)
get no mask term.

``total`` is NOT multiplied by the batch size: it is a per-target average, so its scale and
its gradients do not change with the batch size or the number of objects per image.
(Recipes that multiply by the batch size need their learning rate scaled by it when used
with plain SGD; Adam-type optimisers are insensitive to the constant.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss

from yolotl.ops.assign import Assignment, TaskAlignedAssigner
from yolotl.ops.boxes import (
    box_to_distance,
    distance_to_box,
    distribution_to_distance,
    flatten_levels,
    make_anchor_points,
)
from yolotl.ops.masks import PROTO_STRIDE, downsample_masks, flatten_coefficients, mask_loss

# Added to predicted distances (stride units) before CIoU, so a box collapsed to a point by
# extreme logits still has a positive width and height (CIoU divides by them).
_MIN_DISTANCE = 1e-4


@dataclass
class LossOutput:
    """``total`` carries gradients; the others are detached scalars for logging."""

    total: Tensor  # [] weighted sum, for backward
    box: Tensor  # [] CIoU term (unweighted)
    cls: Tensor  # [] BCE term (unweighted)
    dfl: Tensor  # [] distribution focal term (unweighted)
    num_foreground: Tensor  # [] number of positive anchors in the batch
    mask: Tensor | None = None  # [] mask BCE term (unweighted); None for a detection head


def dfl_loss(box_logits: Tensor, target_ltrb: Tensor) -> Tensor:
    """Distribution focal loss (GFL): ``[N, 4, R]`` logits, ``[N, 4]`` targets -> ``[N]``.

    A target distance ``y`` between bins ``i = floor(y)`` and ``i + 1`` gives the soft label
    ``(i + 1 - y)`` on bin ``i`` and ``(y - i)`` on bin ``i + 1``; the loss is the
    cross-entropy to that label, averaged over the 4 sides. Targets are in stride units and
    should lie in ``[0, R - 1]`` (see :func:`box_to_distance`).
    """
    num_bins = box_logits.shape[-1]
    target = target_ltrb.to(box_logits.dtype)
    left = target.floor().long()  # [N, 4]
    weight_right = target - left  # [N, 4]
    weight_left = 1.0 - weight_right
    log_probs = box_logits.log_softmax(dim=-1)  # [N, 4, R]
    log_left = log_probs.gather(-1, left.clamp(0, num_bins - 1)[..., None]).squeeze(-1)
    log_right = log_probs.gather(-1, (left + 1).clamp(0, num_bins - 1)[..., None]).squeeze(-1)
    return -(weight_left * log_left + weight_right * log_right).mean(dim=-1)


def box_loss(pred_boxes: Tensor, target_boxes: Tensor) -> Tensor:
    """CIoU loss per box pair (torchvision): ``[N, 4]`` xyxy, ``[N, 4]`` xyxy -> ``[N]``."""
    return complete_box_iou_loss(pred_boxes, target_boxes, reduction="none")


def pad_targets(
    targets: Sequence[dict[str, Tensor]], device: torch.device | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """List of per-image targets -> padded ``labels [B, M]``, ``boxes [B, M, 4]``, ``mask [B, M]``.

    ``M`` is the largest number of boxes in an image (0 when the batch has none).
    """
    max_boxes = max((len(t["labels"]) for t in targets), default=0)
    labels = torch.zeros(len(targets), max_boxes, dtype=torch.long, device=device)
    boxes = torch.zeros(len(targets), max_boxes, 4, dtype=torch.float32, device=device)
    mask = torch.zeros(len(targets), max_boxes, dtype=torch.bool, device=device)
    for i, target in enumerate(targets):
        count = len(target["labels"])
        labels[i, :count] = target["labels"].to(device=device, dtype=torch.long)
        boxes[i, :count] = target["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4)
        mask[i, :count] = True
    return labels, boxes, mask


class DetectionLoss(nn.Module):
    """Assign anchors with TOOD, then ``box_weight * CIoU + cls_weight * BCE + dfl_weight * DFL``.

    Holds only numbers and the assigner (no parameters; ``class_weights``, if set, is a
    non-persistent buffer). See the module docstring for the normalisation.

    ``class_weights`` (``[C]``, see :meth:`set_class_weights`) multiplies the positive term of
    each class's BCE (``pos_weight``): a rare class's missed objects cost more, while its
    negatives (the background, by far the most anchors) keep weight 1.
    """

    def __init__(
        self,
        num_classes: int,
        reg_max: int = 16,
        box_weight: float = 7.5,
        cls_weight: float = 0.5,
        dfl_weight: float = 1.5,
        assigner: TaskAlignedAssigner | None = None,
        mask_weight: float = 7.5,
    ) -> None:
        super().__init__()
        if num_classes < 1 or reg_max < 1:
            raise ValueError(f"need num_classes >= 1 and reg_max >= 1, got {num_classes}, {reg_max}")
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.box_weight = box_weight
        self.cls_weight = cls_weight
        self.dfl_weight = dfl_weight
        self.mask_weight = mask_weight
        self.assigner = assigner if assigner is not None else TaskAlignedAssigner()
        self._anchor_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self.register_buffer("class_weights", None, persistent=False)
        self.register_buffer("class_keep", None, persistent=False)

    def set_ignored_classes(self, classes: Sequence[int] | None) -> None:
        """Class channels left out of the BCE (None: none). For classes the training images do not
        label, e.g. a detector's old classes while it learns new ones on new images: without this,
        every unlabelled old object would be taught as background."""
        if not classes:
            self.class_keep = None
            return
        keep = torch.ones(self.num_classes, dtype=torch.float32)
        keep[torch.as_tensor(list(classes), dtype=torch.long)] = 0.0
        self.class_keep = keep

    def set_class_weights(self, weights: Sequence[float] | Tensor | None) -> None:
        """Per-class weights of the positive BCE term (None: all 1)."""
        if weights is None:
            self.class_weights = None
            return
        tensor = torch.as_tensor(weights, dtype=torch.float32).flatten()
        if tensor.numel() != self.num_classes or not bool((tensor > 0).all()) or not tensor.isfinite().all():
            raise ValueError(f"class_weights needs {self.num_classes} positive finite numbers, got {tensor.tolist()}")
        self.class_weights = tensor

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, reg_max={self.reg_max}, box_weight={self.box_weight}, "
            f"cls_weight={self.cls_weight}, dfl_weight={self.dfl_weight}, mask_weight={self.mask_weight}, "
            f"assigner={self.assigner}"
        )

    def anchors(
        self, feature_sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """Anchor points ``[A, 2]`` and strides ``[A, 1]``, cached per sizes/strides/device."""
        key = (tuple(feature_sizes), tuple(int(s) for s in strides), str(device))
        if key not in self._anchor_cache:
            if len(self._anchor_cache) >= 16:  # multi-scale training: keep the cache bounded
                self._anchor_cache.clear()
            self._anchor_cache[key] = make_anchor_points(feature_sizes, strides, device=device)
        return self._anchor_cache[key]

    def forward(
        self,
        box_maps: Sequence[Tensor],
        cls_maps: Sequence[Tensor],
        strides: Sequence[int],
        targets: Sequence[dict[str, Tensor]],
        coef_maps: Sequence[Tensor] | None = None,
        protos: Tensor | None = None,
    ) -> LossOutput:
        """Loss of raw head outputs against ``targets`` (``boxes`` xyxy input pixels, ``labels`` int64;
        with ``coef_maps`` and ``protos``, a segmenting head's, also ``masks`` uint8 [N, H, W] at the
        input size and optionally ``iscrowd``)."""
        box_logits, cls_logits = flatten_levels(box_maps, cls_maps)  # [B, A, 4, R], [B, A, C]
        box_logits, cls_logits = box_logits.float(), cls_logits.float()
        self._check_shapes(box_logits, cls_logits, targets)
        sizes = [tuple(m.shape[-2:]) for m in box_maps]
        points, stride_tensor = self.anchors(sizes, strides, box_logits.device)  # [A, 2], [A, 1]

        pred_ltrb = distribution_to_distance(box_logits)  # [B, A, 4] stride units
        pred_boxes = distance_to_box(points, pred_ltrb * stride_tensor)  # [B, A, 4] pixels
        gt_labels, gt_boxes, gt_mask = pad_targets(targets, box_logits.device)
        self._check_labels(gt_labels, gt_mask)
        assignment = self.assigner(
            cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes, gt_mask
        )

        score_sum = assignment.target_scores.sum().clamp(min=1.0)
        pos_weight = None if self.class_weights is None else self.class_weights.to(cls_logits.device)
        if self.class_keep is None:
            cls = F.binary_cross_entropy_with_logits(
                cls_logits, assignment.target_scores, pos_weight=pos_weight, reduction="sum"
            )
        else:
            cls = (F.binary_cross_entropy_with_logits(
                cls_logits, assignment.target_scores, pos_weight=pos_weight, reduction="none"
            ) * self.class_keep.to(cls_logits.device)).sum()
        cls = cls / score_sum
        box, dfl = self._box_terms(box_logits, pred_ltrb, points, stride_tensor, assignment, score_sum)
        total = self.box_weight * box + self.cls_weight * cls + self.dfl_weight * dfl
        mask = None
        if protos is not None and coef_maps is not None:
            mask = self._mask_term(flatten_coefficients(coef_maps), protos, assignment, targets)
            total = total + self.mask_weight * mask
        return LossOutput(
            total=total,
            box=box.detach(),
            cls=cls.detach(),
            dfl=dfl.detach(),
            num_foreground=assignment.fg_mask.sum().detach(),
            mask=None if mask is None else mask.detach(),
        )

    def _mask_term(self, coefficients: Tensor, protos: Tensor, assignment: Assignment,
                   targets: Sequence[dict[str, Tensor]]) -> Tensor:
        """Mean over the positives not assigned to a crowd object of :func:`mask_loss` (``coefficients``
        ``[B, A, P]``, ``protos`` ``[B, P, h, w]``). With none, a zero that still touches both inputs."""
        if any("masks" not in t and len(t["labels"]) for t in targets):  # images without objects may lack them
            raise ValueError("a segmenting detector needs targets with instance masks: load the data with "
                             "DetectionDataModule(masks=True) (model.detector.task=segment sets it)")
        size = protos.shape[-2:]
        total = (coefficients.sum() + protos.sum()).float() * 0.0
        count = 0
        for image, target in enumerate(targets):
            anchors = assignment.fg_mask[image].nonzero(as_tuple=True)[0]  # [N]
            gt_index = assignment.gt_index[image, anchors]  # [N]
            crowd = target.get("iscrowd")
            if crowd is not None and len(anchors):
                keep = ~crowd.to(gt_index.device).bool()[gt_index]
                anchors, gt_index = anchors[keep], gt_index[keep]
            if not len(anchors):
                continue
            gt_masks = downsample_masks(target["masks"].to(protos.device), size)[gt_index]  # [N, h, w]
            boxes = assignment.target_boxes[image, anchors] / PROTO_STRIDE  # [N, 4] prototype pixels
            total = total + mask_loss(coefficients[image, anchors].float(), protos[image], gt_masks, boxes).sum()
            count += len(anchors)
        return total / max(count, 1)

    def _box_terms(
        self,
        box_logits: Tensor,
        pred_ltrb: Tensor,
        points: Tensor,
        stride_tensor: Tensor,
        assignment: Assignment,
        score_sum: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """CIoU and DFL over positives, weighted by their soft score, divided by ``score_sum``.

        Computed in stride units (CIoU is scale invariant). With no positives both are
        zeros that still touch ``box_logits``, so every head parameter gets a gradient.
        """
        fg = assignment.fg_mask  # [B, A]
        batch_index, anchor_index = fg.nonzero(as_tuple=True)  # [N] each
        weight = assignment.target_scores[fg].sum(dim=-1)  # [N]
        anchor_pts = points[anchor_index] / stride_tensor[anchor_index]  # [N, 2] stride units
        target_boxes = assignment.target_boxes[fg] / stride_tensor[anchor_index]  # [N, 4]

        pred_boxes = distance_to_box(anchor_pts, pred_ltrb[fg] + _MIN_DISTANCE)  # [N, 4]
        box = (box_loss(pred_boxes, target_boxes) * weight).sum() / score_sum
        if self.reg_max == 1:  # direct regression: L1 of log(1 + distance), see the module docstring
            target_ltrb = box_to_distance(anchor_pts, target_boxes, max_distance=float("inf"))  # [N, 4]
            per_box = (pred_ltrb[fg].log1p() - target_ltrb.log1p()).abs().mean(dim=-1)  # [N]
        else:
            target_ltrb = box_to_distance(anchor_pts, target_boxes, max_distance=self.reg_max - 1)  # [N, 4]
            per_box = dfl_loss(box_logits[batch_index, anchor_index], target_ltrb)  # [N]
        return box, (per_box * weight).sum() / score_sum

    def _check_shapes(
        self, box_logits: Tensor, cls_logits: Tensor, targets: Sequence[dict[str, Tensor]]
    ) -> None:
        if box_logits.shape[-1] != self.reg_max:
            raise ValueError(
                f"box maps carry {box_logits.shape[-1]} bins per side, loss expects reg_max={self.reg_max}"
            )
        if cls_logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"class maps have {cls_logits.shape[-1]} channels, loss expects {self.num_classes} classes"
            )
        if len(targets) != box_logits.shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {box_logits.shape[0]} images")

    def _check_labels(self, gt_labels: Tensor, gt_mask: Tensor) -> None:
        valid = gt_labels[gt_mask]
        if valid.numel() and (bool(valid.min() < 0) or bool(valid.max() >= self.num_classes)):
            raise ValueError(
                f"target labels must lie in [0, {self.num_classes - 1}], got "
                f"[{int(valid.min())}, {int(valid.max())}]: check the dataset's class list"
            )


class OneToOneLoss(nn.Module):
    """An NMS-free head's loss: its predictions trained one-to-one, its auxiliary maps one-to-many.

    ``one_to_one`` assigns each object to its single best anchor (a ``TaskAlignedAssigner(topk=1)``, the same
    alignment metric as the one-to-many assigner, so the anchor it picks is one the other branch also
    favours); the branch then learns to score one box per object, which is what lets inference skip NMS.
    ``one_to_many`` (``topk=10``, a plain head's loss) trains the auxiliary branches, whose denser
    supervision reaches the shared neck and backbone. ``total`` is the sum; the logged terms are sums too.
    """

    def __init__(self, one_to_one: DetectionLoss, one_to_many: DetectionLoss) -> None:
        super().__init__()
        self.one_to_one = one_to_one
        self.one_to_many = one_to_many

    def set_class_weights(self, weights: Sequence[float] | Tensor | None) -> None:
        self.one_to_one.set_class_weights(weights)
        self.one_to_many.set_class_weights(weights)

    def set_ignored_classes(self, classes: Sequence[int] | None) -> None:
        self.one_to_one.set_ignored_classes(classes)
        self.one_to_many.set_ignored_classes(classes)

    def forward(
        self,
        box_maps: Sequence[Tensor],
        cls_maps: Sequence[Tensor],
        strides: Sequence[int],
        targets: Sequence[dict[str, Tensor]],
        aux_box_maps: Sequence[Tensor],
        aux_cls_maps: Sequence[Tensor],
    ) -> LossOutput:
        """Loss of the one-to-one maps (the predictions) plus that of the one-to-many ``aux_*`` maps."""
        one = self.one_to_one(box_maps, cls_maps, strides, targets)
        many = self.one_to_many(aux_box_maps, aux_cls_maps, strides, targets)
        return LossOutput(total=one.total + many.total, box=one.box + many.box, cls=one.cls + many.cls,
                          dfl=one.dfl + many.dfl, num_foreground=one.num_foreground)
