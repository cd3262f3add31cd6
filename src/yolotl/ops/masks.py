"""Instance masks of a prototype head (YOLACT): ``mask = sigmoid(coefficients @ prototypes)``, cropped
to the detection's box; the per-positive mask loss and the post-processing to boolean masks.

Prototypes are at stride 4 of the network input; boxes are xyxy in input pixels unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

PROTO_STRIDE = 4  # prototypes are P3 (stride 8) upsampled twice


def flatten_coefficients(coef_maps: Sequence[Tensor]) -> Tensor:
    """Per-level ``[B, P, H_l, W_l]`` coefficient maps -> ``[B, A, P]``, anchors in :func:`flatten_levels` order."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in coef_maps], dim=1)


def box_region(boxes: Tensor, height: int, width: int) -> Tensor:
    """Pixels whose centre lies inside each box: ``[N, 4]`` xyxy (in this grid's pixels) -> ``[N, H, W]`` bool."""
    x1, y1, x2, y2 = (side[:, None, None] for side in boxes.unbind(-1))  # [N, 1, 1] each
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)


def mask_logits(coefficients: Tensor, protos: Tensor) -> Tensor:
    """``[N, P]`` coefficients of one image's detections and its ``[P, h, w]`` prototypes -> ``[N, h, w]`` logits."""
    return (coefficients @ protos.flatten(1)).view(-1, *protos.shape[-2:])


def downsample_masks(masks: Tensor, size: Sequence[int]) -> Tensor:
    """Input-size ``[N, H, W]`` 0/1 masks -> ``[N, h, w]`` float 0/1 at the prototypes' size: area
    average, then more than half covered (the stride-4 target of YOLACT / YOLOv8-seg)."""
    if not len(masks):
        return masks.new_zeros((0, *size), dtype=torch.float32)
    area = F.interpolate(masks[None].float(), size=tuple(size), mode="area")[0]
    return (area > 0.5).float()


def mask_loss(coefficients: Tensor, protos: Tensor, gt_masks: Tensor, boxes: Tensor) -> Tensor:
    """BCE of one image's positives inside their ground-truth box, per positive divided by the box area
    (YOLACT, YOLOv8-seg), so small and large objects weigh alike.

    Args:
        coefficients: ``[N, P]`` predicted coefficients of the positives.
        protos: ``[P, h, w]`` the image's prototypes.
        gt_masks: ``[N, h, w]`` float 0/1 target of each positive, at the prototypes' size.
        boxes: ``[N, 4]`` each positive's ground-truth box, xyxy in prototype pixels.

    Returns:
        ``[N]`` losses.
    """
    logits = mask_logits(coefficients, protos.float())  # [N, h, w]
    bce = F.binary_cross_entropy_with_logits(logits, gt_masks, reduction="none")
    inside = box_region(boxes, *protos.shape[-2:])
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1.0)
    return (bce * inside).sum(dim=(1, 2)) / area


def process_masks(coefficients: Tensor, protos: Tensor, boxes: Tensor, size: Sequence[int]) -> Tensor:
    """Boolean masks of one image's detections at the input size: ``sigmoid(coefficients @ protos)``
    upsampled bilinearly to ``size``, cropped to each box, above 0.5.

    ``[K, P]`` coefficients, ``[P, h, w]`` prototypes, ``[K, 4]`` boxes (input pixels) -> ``[K, H, W]`` bool.
    """
    height, width = int(size[0]), int(size[1])
    if not len(coefficients):
        return torch.zeros((0, height, width), dtype=torch.bool, device=protos.device)
    logits = mask_logits(coefficients.float(), protos.float())  # [K, h, w]
    logits = F.interpolate(logits[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return (logits > 0) & box_region(boxes.float(), height, width)  # sigmoid > 0.5 <=> logit > 0


def scale_masks_to_original(masks: Tensor, scale: float, pad: tuple[float, float],
                            orig_size: tuple[int, int]) -> Tensor:
    """Undo a letterbox for masks: ``[K, S, S]`` bool in input pixels -> ``[K, h, w]`` bool in original
    pixels (the image's part of the input, resized bilinearly, above one half)."""
    height, width = orig_size
    if not len(masks):
        return torch.zeros((0, height, width), dtype=torch.bool, device=masks.device)
    pad_x, pad_y = pad
    x0, y0 = int(round(pad_x)), int(round(pad_y))
    x1 = min(masks.shape[-1], x0 + max(1, int(round(width * scale))))
    y1 = min(masks.shape[-2], y0 + max(1, int(round(height * scale))))
    region = masks[:, y0:y1, x0:x1].float()[None]
    return F.interpolate(region, size=(height, width), mode="bilinear", align_corners=False)[0] > 0.5
