"""Per-object instance outlines as a reader found them (polygons or a COCO RLE), and the few
geometric facts the checks and the dataset need: bounding box, area, self-intersection and a
raster in a given frame.

Segments are kept as read and rasterised only when a sample is built (at the size of the decoded
image that sample starts from), so a dataset's masks never sit in memory at full size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["Segment", "masks_to_boxes", "polygon_area", "self_intersects"]

_BLOCK = 256  # segments compared at once in the self-intersection test (bounds its memory)


@dataclass(frozen=True, eq=False)
class Segment:
    """One object's outline in its image's original pixels: ``polygons`` (float64 ``[K, 2]`` x, y
    each; several for an object in pieces) or ``rle`` (a COCO RLE dict, ``size`` ``[h, w]`` and
    ``counts`` compressed (str/bytes) or uncompressed (list of ints), as read)."""

    polygons: tuple[np.ndarray, ...] = ()
    rle: dict[str, Any] | None = None

    def _rle(self) -> dict[str, Any]:
        """The RLE in pycocotools' compressed form (uncompressed counts are encoded)."""
        assert self.rle is not None
        if isinstance(self.rle["counts"], list):
            height, width = self.rle["size"]
            return mask_utils.frPyObjects(self.rle, height, width)
        return self.rle

    def bbox(self) -> np.ndarray:
        """xyxy float64 ``[4]`` of the outline in original pixels (zeros for an empty one)."""
        if self.rle is not None:
            x, y, w, h = mask_utils.toBbox(self._rle())
            return np.array([x, y, x + w, y + h], dtype=np.float64)
        points = np.concatenate(self.polygons) if self.polygons else np.zeros((1, 2))
        return np.concatenate([points.min(0), points.max(0)])

    def area(self) -> float:
        """Pixel count of an RLE; the summed absolute shoelace area of the polygons."""
        if self.rle is not None:
            return float(mask_utils.area(self._rle()))
        return sum(polygon_area(polygon) for polygon in self.polygons)

    def rasterise(self, height: int, width: int, orig_height: int, orig_width: int) -> np.ndarray:
        """uint8 ``[height, width]`` mask (1 inside) of this outline, scaled from the original
        ``orig_height`` x ``orig_width`` frame; what lies outside the frame is clipped.

        Polygons are scaled to the frame and rasterised as COCO does (``pycocotools``, the raster
        COCO mask AP scores against): a pixel is inside when its centre is (pixel ``i`` spans
        ``[i, i + 1)``, so a square on whole pixels fills exactly its pixels), and several polygons
        give their union. An RLE is decoded at its own size and resized to the frame with exact
        nearest neighbour (each output pixel takes the input pixel under its centre)."""
        if self.rle is not None:
            mask = mask_utils.decode(self._rle())
            if mask.shape != (height, width):
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
            return np.ascontiguousarray(mask, dtype=np.uint8)
        scale = np.array([width / orig_width, height / orig_height])
        # pycocotools reads a polygon of 4 coordinates as a box: fewer than 3 vertices fill nothing.
        scaled = [polygon * scale for polygon in self.polygons if len(polygon) >= 3]
        mask = np.zeros((height, width), dtype=np.uint8)
        if not scaled:
            return mask
        # Rasterised in the window of its box only (the decode costs its area), shifted by whole
        # pixels: the same pixels as in the full frame (each window edge has a margin of a pixel
        # or is the frame's own edge, where pycocotools clips).
        points = np.concatenate(scaled)
        x0, y0 = np.maximum(np.floor(points.min(0)).astype(int), 0)
        x1 = min(int(np.ceil(points[:, 0].max())) + 1, width)
        y1 = min(int(np.ceil(points[:, 1].max())) + 1, height)
        if x1 <= x0 or y1 <= y0:
            return mask  # wholly outside the frame
        offset = np.array([x0, y0], dtype=np.float64)
        rles = mask_utils.frPyObjects([(polygon - offset).reshape(-1) for polygon in scaled],
                                      y1 - y0, x1 - x0)
        mask[y0:y1, x0:x1] = mask_utils.decode(rles[0] if len(rles) == 1 else mask_utils.merge(rles))
        return mask


def polygon_area(polygon: np.ndarray) -> float:
    """Absolute shoelace area of a ``[K, 2]`` polygon (0 for under 3 points)."""
    if len(polygon) < 3:
        return 0.0
    x, y = polygon[:, 0], polygon[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def self_intersects(polygon: np.ndarray) -> bool:
    """True if two non-adjacent edges of the closed polygon ``[K, 2]`` properly cross.

    An exact O(K^2) segment test, vectorised in blocks; touching edges (collinear or meeting at a
    vertex) do not count, so a polygon that only grazes itself passes."""
    count = len(polygon)
    if count < 4:
        return False
    start, end = polygon, np.roll(polygon, -1, axis=0)
    index = np.arange(count)
    for first in range(0, count, _BLOCK):
        rows = index[first:first + _BLOCK]
        p, r = start[rows, None, :], (end - start)[rows, None, :]
        q, s = start[None, :, :], (end - start)[None, :, :]
        d1 = _cross(r, q - p)
        d2 = _cross(r, q + s - p)
        d3 = _cross(s, p - q)
        d4 = _cross(s, p + r - q)
        crossing = (d1 * d2 < 0) & (d3 * d4 < 0)
        gap = np.abs(rows[:, None] - index[None, :])
        crossing &= (gap > 1) & (gap < count - 1)  # neighbours share a vertex
        if crossing.any():
            return True
    return False


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def masks_to_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """xyxy float32 ``[N, 4]`` pixel-edge boxes of ``[H, W, N]`` masks, and bool ``[N]``: which are
    non-empty (an empty mask's box is zeros)."""
    count = masks.shape[2]
    boxes = np.zeros((count, 4), dtype=np.float32)
    rows, cols = masks.any(axis=1), masks.any(axis=0)  # [H, N], [W, N]
    present = rows.any(axis=0)
    for j in np.flatnonzero(present):
        ys, xs = np.flatnonzero(rows[:, j]), np.flatnonzero(cols[:, j])
        boxes[j] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes, present
