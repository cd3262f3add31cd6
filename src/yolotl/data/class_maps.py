"""Semantic class maps of records: a semantic record's PNG mask read as class indices, or an instance
record's objects rasterised into one (background 0, object label + 1, crowd regions ignored), and the
per-class pixel counts the DataModule's class statistics are built from.

Class maps are uint8 ``[H, W]`` here (what albumentations moves as a ``mask``); the dataset hands
them on as int64. :data:`~yolotl.constants.IGNORE_INDEX` marks pixels that train nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from yolotl.constants import IGNORE_INDEX
from yolotl.data.records import ImageRecord
from yolotl.errors import DatasetError

__all__ = ["class_map", "mask_class_counts", "object_mask", "objects_class_map", "read_class_map"]

# PIL modes whose pixel values are class indices as they are (P: the palette index, never its colour).
_INDEX_MODES = ("L", "P", "1")
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16/32-bit single channel: fine while values fit in 8 bits


def read_class_map(path: str | Path) -> np.ndarray:
    """uint8 ``[H, W]`` class indices of a PNG mask (mode L or P; a palette image gives its indices).

    A 16-bit single-channel mask whose values stay under 256 is read too; a colour (RGB) mask, or
    one with larger values, is a DatasetError naming the file: its colours are not class indices."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            values = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"Cannot read the mask {path} ({type(exc).__name__}: {exc}); replace the "
                           f"file or remove its image.") from exc
    if mode in _INDEX_MODES:
        return np.ascontiguousarray(values, dtype=np.uint8)
    if mode in _WIDE_MODES and values.ndim == 2 and values.size and 0 <= values.min() and values.max() <= 255:
        return values.astype(np.uint8)
    raise DatasetError(
        f"The mask {path} is a mode-{mode} image{' with values over 255' if mode in _WIDE_MODES else ''}; "
        f"a semantic mask holds one class index per pixel: save it as an 8-bit single-channel (L) or "
        f"palette (P) PNG whose pixel values are the class indices."
    )


def class_map(record: ImageRecord, height: int, width: int, boxes: np.ndarray,
              image_size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[height, width]`` class map of ``record`` in a ``height`` x ``width`` frame of its image.

    A semantic record's mask is read and must be the size of the decoded original image
    ``image_size`` (height, width): another size is a DatasetError naming both files (the health
    check takes such images out before training). It is then resized to the frame (exact nearest
    neighbour). An instance record's objects are rasterised (:func:`objects_class_map`; ``boxes``
    xyxy in the frame fill objects without an outline)."""
    if record.semantic_mask is None:
        return objects_class_map(record, boxes, height, width)
    mask = read_class_map(record.semantic_mask)
    if mask.shape != tuple(image_size):
        raise DatasetError(
            f"The mask {record.semantic_mask} is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{record.image_path} decodes as {image_size[1]}x{image_size[0]}; a mask must have its "
            f"image's size. Fix or remove the pair (yolotl-check-data lists such pairs)."
        )
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return mask


def object_mask(record: ImageRecord, index: int, box: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``[height, width]`` mask (1 inside) of object ``index`` of ``record`` in a ``height`` x
    ``width`` frame of its image: its outline rasterised, else its ``box`` (xyxy in that frame) filled."""
    segment = record.segments[index] if record.segments is not None else None
    if segment is not None:
        return segment.rasterise(height, width, record.height, record.width)
    mask = np.zeros((height, width), dtype=np.uint8)
    x1, y1, x2, y2 = np.round(box).astype(int)
    mask[max(y1, 0):y2, max(x1, 0):x2] = 1
    return mask


def objects_class_map(record: ImageRecord, boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``[height, width]`` class map of an instance record's objects: background 0, each object
    its label + 1, crowd regions :data:`IGNORE_INDEX`.

    Crowd regions are drawn first, then the objects from the largest (outline or box area) to the
    smallest, so a small object on a larger one stays visible and an annotated object inside a crowd
    region keeps its class."""
    out = np.zeros((height, width), dtype=np.uint8)
    count = record.num_objects
    if not count:
        return out
    if int(record.labels.max()) + 1 >= IGNORE_INDEX:
        raise DatasetError(f"{record.label_file or record.image_path}: class index "
                           f"{int(record.labels.max())} does not fit a class map (at most "
                           f"{IGNORE_INDEX - 1} object classes beside the background).")
    areas = [_area(record, j) for j in range(count)]
    order = sorted(range(count), key=lambda j: (not record.crowd[j], -areas[j]))
    for j in order:
        value = IGNORE_INDEX if record.crowd[j] else int(record.labels[j]) + 1
        out[object_mask(record, j, boxes[j], height, width).astype(bool)] = value
    return out


def _area(record: ImageRecord, index: int) -> float:
    """An object's area in original pixels: its outline's, else its box's."""
    segment = record.segments[index] if record.segments is not None else None
    if segment is not None:
        return segment.area()
    x1, y1, x2, y2 = record.boxes[index]
    return float(max(0.0, x2 - x1) * max(0.0, y2 - y1))


def mask_class_counts(record: ImageRecord) -> np.ndarray:
    """int64 ``[256]``: how many pixels of ``record``'s class map (at the original image size) hold
    each value (:data:`IGNORE_INDEX` included; the caller keeps the classes it knows)."""
    if record.semantic_mask is not None:
        values = read_class_map(record.semantic_mask)
    else:
        values = objects_class_map(record, record.boxes, record.height, record.width)
    return np.bincount(values.reshape(-1), minlength=256).astype(np.int64)
