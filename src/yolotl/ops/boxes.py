"""Anchor points and the distance <-> box conversions of an anchor-free YOLO head.

Box formats used in this module:

- ``xyxy``: ``(x1, y1, x2, y2)``, absolute pixels of the network input unless stated.
- ``ltrb``: distances from an anchor point to the box's left, top, right and bottom sides,
  all non-negative for a point inside the box.
- A box *distribution*: ``R`` logits per side (``reg_max`` bins, values ``0 .. R-1``); the
  expected value of its softmax is that side's distance in units of the level's stride
  (Generalized Focal Loss, Li et al. 2020). With ``R = 1`` the one value per side is the distance
  itself, made positive by a softplus (direct regression: no distribution).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def make_anchor_points(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    offset: float = 0.5,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Anchor point centres of every feature-map cell, all levels concatenated.

    Cell ``(i, j)`` of a level with stride ``s`` has its point at ``((j + offset) * s,
    (i + offset) * s)`` in input pixels. Levels come in the given order, cells row-major
    within a level: the order of :func:`flatten_levels`.

    Returns:
        points: ``[A, 2]`` ``(x, y)`` in input pixels.
        stride_tensor: ``[A, 1]`` the stride of each point's level.
    """
    if len(feature_sizes) != len(strides):
        raise ValueError(f"got {len(feature_sizes)} feature sizes but {len(strides)} strides")
    points, point_strides = [], []
    for (height, width), stride in zip(feature_sizes, strides):
        ys = (torch.arange(height, device=device, dtype=dtype) + offset) * stride  # [H]
        xs = (torch.arange(width, device=device, dtype=dtype) + offset) * stride  # [W]
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
        points.append(torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2))  # [H*W, 2]
        point_strides.append(torch.full((height * width, 1), float(stride), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def flatten_levels(box_maps: Sequence[Tensor], cls_maps: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Turn per-level head maps into per-anchor rows, in the order of :func:`make_anchor_points`.

    Args:
        box_maps: per level ``[B, 4*R, H, W]``, channel ``side * R + bin``, sides l, t, r, b.
        cls_maps: per level ``[B, C, H, W]`` raw class logits.

    Returns:
        box_logits ``[B, A, 4, R]`` and cls_logits ``[B, A, C]``.
    """
    if len(box_maps) != len(cls_maps):
        raise ValueError(f"got {len(box_maps)} box maps but {len(cls_maps)} class maps")
    box_rows, cls_rows = [], []
    for box_map, cls_map in zip(box_maps, cls_maps):
        batch, channels, height, width = box_map.shape
        if channels % 4:
            raise ValueError(f"box map has {channels} channels, not a multiple of 4 (4 sides * R bins)")
        bins = channels // 4
        box = box_map.reshape(batch, 4, bins, height * width).permute(0, 3, 1, 2)  # [B, HW, 4, R]
        box_rows.append(box)
        cls_rows.append(cls_map.flatten(2).transpose(1, 2))  # [B, HW, C]
    return torch.cat(box_rows, dim=1), torch.cat(cls_rows, dim=1)


def distribution_to_distance(box_logits: Tensor) -> Tensor:
    """Expected value of the softmax over ``R`` bins: ``[..., 4, R]`` logits -> ``[..., 4]``.

    The result is in stride units, in ``[0, R - 1]``. An elementwise sum rather than a
    matmul, so autocast does not drop it to half precision. With ``R = 1`` (no distribution), the
    softplus of the single value: any distance above 0.
    """
    if box_logits.shape[-1] == 1:
        return F.softplus(box_logits.squeeze(-1))
    bins = torch.arange(box_logits.shape[-1], device=box_logits.device, dtype=box_logits.dtype)
    return (box_logits.softmax(dim=-1) * bins).sum(dim=-1)


def distance_to_box(points: Tensor, ltrb: Tensor) -> Tensor:
    """``ltrb`` distances from ``points`` -> ``xyxy`` boxes (same units as the inputs).

    Args:
        points: ``[A, 2]`` or ``[B, A, 2]`` ``(x, y)``; broadcast against ``ltrb``.
        ltrb: ``[..., A, 4]``.
    """
    left_top, right_bottom = ltrb[..., :2], ltrb[..., 2:]
    return torch.cat((points - left_top, points + right_bottom), dim=-1)


def box_to_distance(points: Tensor, boxes: Tensor, max_distance: float) -> Tensor:
    """``xyxy`` boxes -> ``ltrb`` distances from ``points``, clamped to ``[0, max_distance - 0.01]``.

    The clamp keeps a distance strictly below the last bin (``max_distance = R - 1`` in
    stride units), so both bins that bracket it exist for the distribution focal loss.

    Args:
        points: ``[..., 2]`` ``(x, y)``; boxes: ``[..., 4]`` xyxy, same units and broadcastable.
    """
    ltrb = torch.cat((points - boxes[..., :2], boxes[..., 2:] - points), dim=-1)
    return ltrb.clamp(min=0.0, max=max_distance - 0.01)


def decode_boxes(box_logits: Tensor, points: Tensor, stride_tensor: Tensor) -> Tensor:
    """Box distributions -> ``xyxy`` boxes in input pixels.

    Args:
        box_logits: ``[B, A, 4, R]``.
        points: ``[A, 2]`` anchor points in input pixels.
        stride_tensor: ``[A, 1]`` stride of each anchor's level.

    Returns:
        ``[B, A, 4]`` xyxy boxes in input pixels.
    """
    ltrb = distribution_to_distance(box_logits) * stride_tensor  # [B, A, 4] pixels
    return distance_to_box(points, ltrb)
