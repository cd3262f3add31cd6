"""Semantic segmentation ops: the ignore value, logits to input or original pixels, the loss.

Class maps are int64 ``[B, H, W]`` (or ``[H, W]``): a class index per pixel, or :data:`IGNORE_INDEX` where
a pixel trains nothing and is scored nowhere (VOC's object boundaries, letterbox padding, crowd regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from yolotl.constants import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "SemanticLoss", "dice_loss", "semantic_loss", "unletterbox_logits", "upsample_logits"]


def upsample_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """``[B, C, h, w]`` logits resized (bilinear) to ``size`` (H, W): class scores between cells are
    blended before the argmax, which keeps boundaries smooth where nearest would give blocks."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def unletterbox_logits(logits: Tensor, input_size: int, scale: float, pad: Sequence[float],
                       original_size: Sequence[int]) -> Tensor:
    """``[C, h, w]`` logits of one letterboxed ``input_size`` square -> ``[C, H0, W0]`` in the original
    image's pixels: resized to the input size, the padding cropped off, resized to the original size."""
    full = upsample_logits(logits[None], (input_size, input_size))[0]
    height, width = (int(v) for v in original_size)
    pad_x, pad_y = float(pad[0]), float(pad[1])
    x0, y0 = int(round(pad_x)), int(round(pad_y))
    x1 = min(input_size, max(x0 + 1, int(round(pad_x + width * scale))))
    y1 = min(input_size, max(y0 + 1, int(round(pad_y + height * scale))))
    return upsample_logits(full[None, :, y0:y1, x0:x1], (height, width))[0]


@dataclass
class SemanticLoss:
    """``total`` carries gradients; ``ce`` and ``dice`` are detached, unweighted terms for logging."""

    total: Tensor
    ce: Tensor
    dice: Tensor


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """1 - soft Dice, averaged over the classes present in ``target`` (a class absent from the batch has no
    overlap to learn and would only push its probabilities down, which cross-entropy does already)."""
    num_classes = logits.shape[1]
    valid = target != ignore_index
    probs = logits.float().softmax(1) * valid[:, None]
    onehot = F.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    onehot = onehot * valid[:, None]
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    dice = (2 * intersection + 1.0) / (cardinality + 1.0)
    return (1 - dice[present]).mean()


def semantic_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX,
                  class_weights: Tensor | None = None, dice_weight: float = 0.0) -> SemanticLoss:
    """Cross-entropy (``class_weights`` ``[C]`` per class, ignored pixels left out) plus ``dice_weight`` x
    soft Dice, on ``logits`` ``[B, C, h, w]`` resized to ``target``'s ``[B, H, W]``.

    A batch with no labelled pixel gives a zero loss that still carries gradients (every parameter in the
    graph), instead of cross-entropy's NaN."""
    logits = upsample_logits(logits, target.shape[-2:])
    if not bool((target != ignore_index).any()):
        zero = logits.sum() * 0.0
        return SemanticLoss(zero, zero.detach(), zero.detach())
    weight = class_weights.to(logits.device, torch.float32) if class_weights is not None else None
    ce = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)
    dice = dice_loss(logits, target, ignore_index) if dice_weight > 0 else ce.new_zeros(())
    return SemanticLoss(ce + dice_weight * dice, ce.detach(), dice.detach())
