"""Helpers for the data tests: tiny images, VOC XML text, the shared datasets folder."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """Write a small random RGB image (format from the suffix) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def voc_xml(filename: str | None, objects: list[tuple[str, tuple[float, ...], int]],
            size: tuple[int, int] | None = (100, 80)) -> str:
    """A VOC annotation; objects are (name, (xmin, ymin, xmax, ymax), difficult)."""
    parts = ["<annotation>", "<folder>JPEGImages</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    parts.append("<path>/home/somebody/elsewhere/wrong.jpg</path>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                     f"<depth>3</depth></size>")
    for name, box, difficult in objects:
        coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult>"
                     f"<bndbox>{coords}</bndbox></object>")
    parts.append("</annotation>")
    return "\n".join(parts)


def shared_datasets() -> Path:
    """The shared real datasets folder: $YOLOTL_SHARED_DATASETS or <repo>/../shared/datasets."""
    default = REPO_ROOT.parent / "shared" / "datasets"
    return Path(os.environ.get("YOLOTL_SHARED_DATASETS", default))
