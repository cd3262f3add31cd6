"""Instance masks of a whole split, kept as COCO run-length encodings (RLE).

An evaluation keeps every detection down to a score of 0.001 (up to 300 per image): as boolean
arrays at the original size that is gigabytes, as RLE a few kilobytes per image. Masks are encoded
as soon as ``predict()`` returns them and decoded one image at a time for scoring and drawing. The
RLE dicts are JSON-ready (``counts`` a str), as COCO results and ground truth files carry them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from yolotl.data.dataset import object_masks
from yolotl.data.records import ImageRecord

RLE = dict[str, Any]  # {"size": [h, w], "counts": str}


def encode_masks(masks: torch.Tensor | np.ndarray) -> list[RLE]:
    """bool ``[K, H, W]`` -> K compressed RLEs, ``counts`` decoded to str (JSON-ready)."""
    array = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if not len(array):
        return []
    encoded = mask_utils.encode(np.asfortranarray(array.astype(np.uint8).transpose(1, 2, 0)))
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in encoded]


def decode_masks(rles: Sequence[RLE], height: int, width: int) -> torch.Tensor:
    """K RLEs -> bool ``[K, height, width]`` (an image without masks gives ``[0, height, width]``)."""
    if not len(rles):
        return torch.zeros((0, height, width), dtype=torch.bool)
    decoded = mask_utils.decode([{"size": rle["size"], "counts": rle["counts"]} for rle in rles])  # [H, W, K]
    return torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1))).bool()


def mask_areas(rles: Sequence[RLE]) -> list[float]:
    """Pixel count of each RLE."""
    if not rles:
        return []
    return [float(a) for a in mask_utils.area([{"size": r["size"], "counts": r["counts"]} for r in rles])]


def record_masks(record: ImageRecord, boxes: np.ndarray, height: int, width: int) -> list[RLE]:
    """A record's objects as RLEs in the frame of its decoded image (``height`` x ``width``), rasterised
    as training does (:func:`yolotl.data.dataset.object_masks`: a box-only object fills its box)."""
    return encode_masks(object_masks(record, boxes, height, width).transpose(2, 0, 1))
