"""Helpers shared by the format readers: root checks, split aliases, the box rule, image sizes,
and the per-image skip that keeps one bad file from stopping a whole dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from yolotl.data.catalogue import kind_info
from yolotl.data.findings import FindingLog
from yolotl.data.records import ImageRecord
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


_Item = TypeVar("_Item")


class SplitNotFoundError(DatasetError):
    """The requested split does not exist in the dataset (the message lists those that do)."""


class SkippedImage(DatasetError):
    """A problem confined to one image (its label, its annotation file, its pixels).

    Readers raise it while reading one record and :func:`read_each` turns it into a ``kind``
    entry of the split's log and leaves the whole image out, not only the bad line: a partly
    labelled image would teach the model that its unlabelled objects are background.
    """

    def __init__(self, kind: str, file: str | Path, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.file = str(file)


def read_each(
    items: Iterable[_Item], read_one: Callable[[_Item], ImageRecord | None], log: FindingLog
) -> list[ImageRecord]:
    """``read_one`` of every item; an item that raises :class:`SkippedImage` is logged and left out.

    ``read_one`` may also return None for an item it logged and skipped itself. What ``read_one``
    logged before it raised (a difficult object, a dropped box of the skipped image) is taken back:
    only the skip is reported for that image.
    """
    records = []
    for item in items:
        logged = len(log.entries)
        try:
            record = read_one(item)
        except SkippedImage as skip:
            del log.entries[logged:]
            log.add(skip.kind, skip.file, f"{str(skip).rstrip('.')}; image skipped")
            continue
        if record is not None:
            records.append(record)
    return records


def split_aliases(split: str) -> list[str]:
    """The split name first, then its known aliases ('val' -> ['val', 'valid', 'validation'])."""
    for group in _ALIAS_GROUPS:
        if split.lower() in group:
            return [split] + [name for name in group if name != split]
    return [split]


def check_root(root: str | Path) -> Path:
    """Return ``root`` as a Path, or raise DatasetError if the folder does not exist.

    A relative root is relative to the current working folder (Hydra 1.3 does not change it), so
    the message names the path as given, the absolute path it resolved to, the working folder,
    and both fixes: ``YOLOTL_DATASETS`` (the experiment configs' dataset folder) or an absolute
    ``data.root``.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetError(missing_root_message(root))
    return path


def missing_root_message(root: str | Path) -> str:
    """Why the dataset folder ``root`` was not found and the two ways to point at it."""
    given = str(root)
    resolved = Path(root).expanduser().absolute()
    what = "is not a folder" if resolved.exists() else "does not exist"
    cwd = Path.cwd()
    relative = "" if Path(given).expanduser().is_absolute() else (
        f", resolved from the current folder {cwd}; dataset paths are relative to the folder "
        f"you run from")
    return (
        f"Dataset folder '{given}' {what} (looked at {resolved}{relative}). Set "
        f"YOLOTL_DATASETS=<folder holding the datasets> (the experiment configs read "
        f"${{YOLOTL_DATASETS}}/<dataset>, default ../shared/datasets) or pass "
        f"data.root=<absolute path to the dataset>."
    )


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, after EXIF orientation, without decoding pixels.

    Raises :class:`SkippedImage` (``empty_image_file``, ``truncated_image`` or
    ``unreadable_image``) if the header cannot be read.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        kind, detail = image_problem(path, exc)
        raise SkippedImage(kind, path, f"Cannot read the image header of {path} ({detail}); "
                           f"replace or remove the file.") from exc
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)


def image_problem(path: Path, exc: Exception) -> tuple[str, str]:
    """(kind, detail) of an image file PIL could not open or decode."""
    if path.is_file() and path.stat().st_size == 0:
        return "empty_image_file", "the file has zero bytes"
    if "truncated" in str(exc).lower():
        return "truncated_image", f"the data stream ends early: {exc}"
    return "unreadable_image", f"cannot decode it: {type(exc).__name__}: {exc}"


def sanitize_boxes(
    boxes: np.ndarray,
    labels: np.ndarray,
    width: int,
    height: int,
    log: FindingLog,
    file: str | Path,
    box_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the box rule: drop non-finite boxes and boxes wholly outside the image, clip the rest
    to the image, drop boxes under 1 px.

    Every drop and every clip is logged to ``log`` against ``file``; ``box_names`` (for example
    ``"line 17"``) says where each box came from in that file. Returns float32 xyxy boxes, int64
    labels and the bool mask of the input boxes kept (to select per-box flags alike).
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
        if _wholly_outside(box, width, height):
            log.add("dropped_outside_box", file,
                    f"{name}: {_fmt(box)} lies wholly outside the {width}x{height} image")
            keep[i] = False
            continue
        if np.abs(clipped - box).max() > _CLIP_TOLERANCE:
            log.add("clipped_box", file, f"{name}: {_fmt(box)} clipped to {_fmt(clipped)}")
        if clipped[2] - clipped[0] < _MIN_SIDE or clipped[3] - clipped[1] < _MIN_SIDE:
            log.add("dropped_degenerate_box", file,
                    f"{name}: {_fmt(box)} is under 1 px wide or high after clipping")
            keep[i] = False
            continue
        out[i] = clipped
    return out[keep].astype(np.float32), labels[keep], keep


def _wholly_outside(box: np.ndarray, width: int, height: int) -> bool:
    """True for a box with area that does not overlap the image at all (a zero-area box is not)."""
    x1, y1, x2, y2 = box
    has_area = x2 > x1 and y2 > y1
    return bool(has_area and (x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height))


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


def require_images(count: int, split: str, where: Path, log: FindingLog | None = None) -> None:
    """Raise DatasetError if a split turned out to hold no images (naming any that were skipped)."""
    if count:
        return
    skipped = [e for e in (log or []) if kind_info(e.kind).action == "skipped image"]
    why = ""
    if skipped:
        shown = "; ".join(e.detail for e in skipped[:3])
        why = f" ({len(skipped)} skipped: {shown}{'; ...' if len(skipped) > 3 else ''})"
    raise DatasetError(
        f"Split '{split}' at {where} has zero images{why}; add images or choose another split."
    )
