"""Decoded-image cache: decode each image once, resized to the training size, in RAM or on disk.

Decoding a 1024 px JPEG costs ~10 ms and a mosaic needs four, so on a 2-core machine the
loader would otherwise compete with the training step. Images are stored resized so the
longest side is ``max_side`` (the training size: every pipeline resizes to it anyway), which
also keeps the cache small (a 416 px RGB image is 0.5 MB). The RAM cache is filled in the main
process before the dataloader workers start, so forked workers share it without copying.
The disk cache writes one ``.npz`` per image under ``cache_dir``, keyed by the file's path,
size, modification time and ``max_side``, so a changed image is decoded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from yolotl.errors import ConfigError, DatasetError

__all__ = ["CACHE_MODES", "ImageCache", "cache_root", "decode_resized", "read_image", "shrink"]

_LOG = logging.getLogger("yolotl.data")
CACHE_MODES = ("none", "ram", "disk")


def cache_root() -> Path:
    """yolotl's cache folder: ``$YOLOTL_CACHE``, else ``$XDG_CACHE_HOME/yolotl``, else
    ``~/.cache/yolotl`` (the synthetic dataset's default root lies there too)."""
    if os.environ.get("YOLOTL_CACHE"):
        return Path(os.environ["YOLOTL_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "yolotl"


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image as uint8 RGB ``[H, W, 3]``, EXIF orientation applied.

    ``cv2.IMREAD_COLOR`` turns grayscale, palette, RGBA (alpha dropped) and 16-bit images into
    8-bit 3-channel images and rotates JPEGs by their EXIF orientation tag.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"Cannot read image {path} (missing, empty or not an image); "
                           f"replace the file or remove it from the dataset.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` resized so its longest side is <= ``max_side`` (never enlarged)."""
    height, width = image.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        ratio = max_side / max(height, width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        # INTER_LINEAR like the eval letterbox and predict(): cached and uncached pixels are identical
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image


def decode_resized(path: str | Path, max_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 RGB image (EXIF orientation applied) shrunk so its longest side is <= ``max_side``.

    Returns the image and its decoded (height, width) before resizing. Images smaller than
    ``max_side`` are kept as they are (never enlarged).
    """
    image = read_image(path)  # the one place that decodes for training
    return shrink(image, max_side), image.shape[:2]


class ImageCache:
    """``get(path)`` -> (image resized to ``max_side``, original (height, width)), cached by ``mode``.

    ``mode="none"`` decodes on every call; ``"ram"`` keeps what :meth:`fill` (or a first call)
    decoded; ``"disk"`` reads and writes ``.npz`` files in ``cache_dir``.
    """

    def __init__(self, mode: str = "none", max_side: int | None = None, cache_dir: str | Path | None = None) -> None:
        if mode not in CACHE_MODES:
            raise ConfigError(f"cache='{mode}' is not a cache mode; use one of {list(CACHE_MODES)}.")
        if mode == "disk" and cache_dir is None:
            raise ConfigError("cache='disk' needs cache_dir=<folder> to write the decoded images to.")
        self.mode = mode
        self.max_side = max_side
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._ram: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # original sizes seen (tiny; every mode)

    def get(self, path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
        """The (resized) image and the original decoded (height, width)."""
        key = str(path)
        if self.mode == "ram" and key in self._ram:
            return self._ram[key]
        item = self._from_disk(Path(path)) if self.mode == "disk" else decode_resized(path, self.max_side)
        if self.mode == "ram":
            self._ram[key] = item
        self._sizes[key] = item[1]
        return item

    def put(self, path: str | Path, image: np.ndarray) -> None:
        """Keep ``image`` (uint8 RGB, decoded elsewhere exactly as :func:`read_image` would) for
        ``path`` in the RAM cache, resized as :meth:`get` resizes; a no-op in other modes. The
        health check hands its decode over here, so a checked image is not decoded twice."""
        if self.mode != "ram":
            return
        key = str(path)
        item = (shrink(image, self.max_side), tuple(image.shape[:2]))
        self._ram[key] = item
        self._sizes[key] = item[1]

    def original_size(self, path: str | Path) -> tuple[int, int]:
        """Decoded (height, width) of an image; free after a :meth:`get` of it."""
        size = self._sizes.get(str(path))
        return size if size is not None else self.get(path)[1]

    def fill(self, paths: list[str | Path], threads: int = 2) -> None:
        """Decode every image now (cv2 releases the GIL, so threads help); logs time and size."""
        if self.mode == "none":
            return
        if self.mode == "disk":  # workers read the .npz files themselves; write the missing ones
            todo = list(dict.fromkeys(str(p) for p in paths if not self._disk_path(Path(p)).is_file()))
        else:
            todo = list(dict.fromkeys(str(p) for p in paths if str(p) not in self._ram))
        if not todo:
            return
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            items = list(pool.map(self.get, todo))
        megabytes = sum(image.nbytes for image, _ in items) / 2**20
        _LOG.info("cached %d decoded images (%s, longest side %s): %.0f MB in %.1f s",
                  len(todo), self.mode, self.max_side, megabytes, time.perf_counter() - start)

    def __len__(self) -> int:
        return len(self._ram)

    def _from_disk(self, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
        file = self._disk_path(path)
        if file.is_file():
            try:
                with np.load(file, allow_pickle=False) as data:
                    return data["image"], (int(data["size"][0]), int(data["size"][1]))
            except (OSError, ValueError, KeyError):
                _LOG.warning("disk cache entry %s is unreadable; decoding %s again", file, path)
        image, size = decode_resized(path, self.max_side)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npz")  # one per worker
        np.savez(tmp, image=image, size=np.array(size, dtype=np.int64))
        tmp.replace(file)  # atomic: a worker never reads a half-written file
        return image, size

    def _disk_path(self, path: Path) -> Path:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.max_side}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        assert self.cache_dir is not None
        return self.cache_dir / digest[:2] / f"{digest}.npz"
