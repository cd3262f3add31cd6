"""Helpers shared by the format readers: root checks, split aliases, the box rule, image sizes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from yolotl.data.records import DefectLog
from yolotl.errors import ConfigError, DatasetError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Names one split goes by in different exports (Roboflow writes "valid", torchvision "val").
_ALIAS_GROUPS = (("val", "valid", "validation"), ("test", "testing"), ("train", "training"))

# Coordinates within this many pixels outside the image are rounding noise, not a defect.
_CLIP_TOLERANCE = 1e-2
# A box must be at least 1 px wide and high; the epsilon keeps a float 0.9999999 px box.
_MIN_SIDE = 1.0 - 1e-3
# EXIF orientations that swap width and height (90/270 degree rotations, transposes).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


class SplitNotFoundError(DatasetError):
    """The requested split does not exist in the dataset (the message lists those that do)."""


def split_aliases(split: str) -> list[str]:
    """The split name first, then its known aliases ('val' -> ['val', 'valid', 'validation'])."""
    for group in _ALIAS_GROUPS:
        if split.lower() in group:
            return [split] + [name for name in group if name != split]
    return [split]


def check_root(root: str | Path) -> Path:
    """Return ``root`` as a Path, or raise DatasetError if the folder does not exist."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(
            f"Dataset folder {path} does not exist (or is not a folder); "
            f"pass data.root=<folder> pointing at the dataset."
        )
    return path


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, after EXIF orientation, without decoding pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(
            f"Cannot read the image header of {path} ({exc}); replace or remove the file."
        ) from exc
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)


def sanitize_boxes(
    boxes: np.ndarray,
    labels: np.ndarray,
    width: int,
    height: int,
    log: DefectLog,
    file: str | Path,
    box_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the box rule: drop non-finite boxes, clip to the image, drop boxes under 1 px.

    Every drop and every clip is logged to ``log`` against ``file``; ``box_names`` (for example
    ``"line 17"``) says where each box came from in that file. Returns float32 xyxy boxes and
    int64 labels.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    keep = np.ones(len(boxes), dtype=bool)
    out = boxes.copy()
    for i, box in enumerate(boxes):
        name = box_names[i] if box_names is not None else f"box {i}"
        if not np.all(np.isfinite(box)):
            log.add("dropped_non_finite_box", file, f"{name}: {box.tolist()} has NaN or inf")
            keep[i] = False
            continue
        clipped = np.clip(box, 0.0, [width, height, width, height])
        if np.abs(clipped - box).max() > _CLIP_TOLERANCE:
            log.add("clipped_box", file, f"{name}: {_fmt(box)} clipped to {_fmt(clipped)}")
        if clipped[2] - clipped[0] < _MIN_SIDE or clipped[3] - clipped[1] < _MIN_SIDE:
            log.add("dropped_degenerate_box", file,
                    f"{name}: {_fmt(box)} is under 1 px wide or high after clipping")
            keep[i] = False
            continue
        out[i] = clipped
    return out[keep].astype(np.float32), labels[keep]


def _fmt(box: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def check_class_names(class_names: list[str] | None) -> list[str] | None:
    """Validate a user-given class list: strings, no duplicates. Returns a copy or None."""
    if class_names is None:
        return None
    names = [str(name) for name in class_names]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"class_names has duplicates {duplicates}; list each class once.")
    if not names:
        raise ConfigError("class_names is empty; pass at least one class name or None.")
    return names


def require_images(count: int, split: str, where: Path) -> None:
    """Raise DatasetError if a split turned out to hold no images."""
    if count == 0:
        raise DatasetError(
            f"Split '{split}' at {where} has zero images; add images or choose another split."
        )
