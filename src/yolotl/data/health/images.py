"""Decode every image once: unreadable, truncated or empty files, pixel modes, EXIF orientation,
the size the pixels really have, and a content hash for finding identical images.

Decoding is the check: a header can be fine while the data stream is cut short, and only a full
``load()`` (with PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` left at its default, False) notices.
Files are decoded in a thread pool; PIL releases the GIL while decoding and hashlib while hashing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from yolotl.data.formats._common import image_problem
from yolotl.data.findings import Finding
from yolotl.data.records import ImageRecord

__all__ = ["ImageInfo", "PixelSink", "decode_threads", "image_findings", "inspect_image", "inspect_images",
           "mode_kind"]

_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_MAX_THREADS = 8
# Decodes PIL and OpenCV agree on bit for bit (lossless formats, 8-bit modes, no EXIF rotation),
# so a checked image can fill the training cache: (format, mode) pairs.
_EXACT_FORMATS = frozenset({"PNG", "BMP"})
_EXACT_MODES = frozenset({"RGB", "RGBA", "L"})

# Called with (path, uint8 RGB [H, W, 3]) for an image decoded exactly as training decodes it.
PixelSink = Callable[[Path, np.ndarray], None]


@dataclass(frozen=True)
class ImageInfo:
    """What decoding one file found. ``problem`` is a finding kind when it did not decode.

    ``width``/``height`` are after EXIF orientation; ``digest`` hashes the decoded pixels (with
    mode, size and orientation), so byte-identical files and the same pixels in another
    container (PNG, BMP, TIFF) get the same digest.
    """

    path: Path
    problem: str | None = None
    detail: str = ""
    mode: str = ""
    raw_mode: str = ""
    orientation: int = 1
    width: int = 0
    height: int = 0
    digest: str = ""


def inspect_image(path: Path, pixels: PixelSink | None = None) -> ImageInfo:
    """Decode ``path`` fully and describe it (never raises for a bad file).

    ``pixels``, if given, receives the decoded image as uint8 RGB when this decode is bit-identical
    to the training decode (:func:`yolotl.data.cache.read_image`: 8-bit RGB, RGBA or grayscale
    PNG or BMP without EXIF rotation), so a cache can keep it instead of decoding the file again.
    """
    rgb = None
    try:
        with Image.open(path) as image:
            raw_mode = _raw_mode(image)
            image.load()
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)
            width, height = image.size
            digest = hashlib.sha256(f"{image.mode} {image.size} {orientation}|".encode())
            digest.update(image.tobytes())
            mode = image.mode
            if pixels is not None and _decodes_exactly(image, raw_mode, orientation):
                rgb = np.array(image if mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ...)
        return ImageInfo(path, *image_problem(path, exc))
    if rgb is not None and pixels is not None:
        pixels(path, rgb)
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(path, None, "", mode, raw_mode, orientation, width, height,
                     digest.hexdigest())


def _decodes_exactly(image: Image.Image, raw_mode: str, orientation: int) -> bool:
    """Whether PIL's RGB of ``image`` equals OpenCV's ``IMREAD_COLOR`` decode bit for bit."""
    return (image.format in _EXACT_FORMATS and image.mode in _EXACT_MODES
            and ";16" not in raw_mode and orientation == 1)


def _raw_mode(image: Image.Image) -> str:
    """The file's own pixel layout before conversion (PIL opens 16-bit RGB PNGs as 8-bit RGB)."""
    tile = getattr(image, "tile", None) or []
    return str(tile[0][3]) if tile and len(tile[0]) > 3 else ""


def inspect_images(
    paths: Iterable[Path], threads: int | None = None, pixels: PixelSink | None = None
) -> dict[Path, ImageInfo]:
    """:func:`inspect_image` of every distinct path, decoded in a thread pool (``pixels`` as there;
    it may be called from several threads)."""
    unique = list(dict.fromkeys(paths))
    threads = decode_threads(threads)
    if threads <= 1 or len(unique) < 2:
        return {path: inspect_image(path, pixels) for path in unique}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(unique, pool.map(lambda path: inspect_image(path, pixels), unique)))


def decode_threads(threads: int | None = None) -> int:
    """``threads``, or for None one per core this process may use (at most 8)."""
    if threads is not None:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(_MAX_THREADS, cores or 1)


def mode_kind(mode: str, raw_mode: str = "") -> str | None:
    """The finding kind of a pixel mode that is converted to 8-bit RGB when read, or None for RGB."""
    if mode in ("I", "F") or mode.startswith("I;16") or ";16" in raw_mode:
        return "high_bit_depth_image"
    if mode in ("P", "PA"):
        return "palette_image"
    if mode in ("RGBA", "RGBa", "LA", "La"):
        return "alpha_image"
    if mode in ("L", "1"):
        return "grayscale_image"
    return None if mode == "RGB" else "other_mode_image"


def image_findings(
    split: str, records: Sequence[ImageRecord], infos: dict[Path, ImageInfo]
) -> list[Finding]:
    """Findings of each record's decoded image: unusable file, mode, EXIF rotation, stale size."""
    findings = []
    for index, record in enumerate(records):
        info = infos[record.image_path]
        file = str(record.image_path)
        if info.problem is not None:
            findings.append(Finding(split, info.problem, file, info.detail, index=index))
            continue
        kind = mode_kind(info.mode, info.raw_mode)
        if kind is not None:
            raw = f" (stored as {info.raw_mode})" if ";16" in info.raw_mode else ""
            findings.append(Finding(split, kind, file, f"mode {info.mode}{raw}; read as 8-bit RGB"))
        if info.orientation != 1:
            findings.append(Finding(split, "exif_rotated_image", file,
                                    f"EXIF orientation {info.orientation}; rotated when read"))
        if (info.width, info.height) != (record.width, record.height):
            findings.append(Finding(
                split, "size_mismatch", str(record.label_file or file),
                f"annotated {record.width}x{record.height}, image is {info.width}x{info.height}; "
                f"boxes rescaled to the image"))
    return findings
