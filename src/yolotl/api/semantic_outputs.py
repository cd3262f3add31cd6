"""What ``yolotl-predict`` writes for a semantic segmenter: a coloured overlay, a PNG label map and the
classes present in each image with their share of its pixels.

The label map is the model's answer itself, for other tools: a single-channel PNG the size of the input
image whose pixel value is the class index (8-bit; 16-bit when a model has more than 256 classes), which
``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` and ``numpy.asarray(PIL.Image.open(path))`` both read back as
indices. The overlay is for people: each class's colour (the one detection drawings use,
:func:`yolotl.data.draw.class_color`) blended into the image, a class named ``background`` left as it is,
and a small legend of the classes present.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from yolotl.data.draw import class_color
from yolotl.errors import DatasetError

__all__ = ["class_shares", "free_stem", "overlay_class_map", "write_label_map"]

LABELS_DIR = "labels"  # the label maps' folder inside the output folder
BACKGROUND = "background"  # a class of this name (any case) is not coloured in the overlay
LEGEND_ROWS = 12  # the most classes the legend lists (the largest first)


def class_shares(class_map: torch.Tensor | np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """The classes present in ``class_map`` (``[H, W]`` class indices), largest first: ``label``,
    ``class_name``, ``pixels`` and ``share`` (of the image's pixels, rounded to 1e-5)."""
    values = np.asarray(class_map).ravel()
    counts = np.bincount(values, minlength=len(class_names)) if values.size else np.zeros(len(class_names), int)
    total = max(1, int(values.size))
    present = [int(i) for i in np.flatnonzero(counts)]
    present.sort(key=lambda i: (-int(counts[i]), i))
    return [
        {"label": i, "class_name": class_names[i] if i < len(class_names) else str(i), "pixels": int(counts[i]),
         "share": round(int(counts[i]) / total, 5)}
        for i in present
    ]


def overlay_class_map(
    image: np.ndarray, class_map: torch.Tensor | np.ndarray, class_names: Sequence[str], alpha: float = 0.5,
    legend: bool = True,
) -> np.ndarray:
    """A copy of ``image`` (HWC uint8 RGB) with each pixel's class colour blended in (``alpha``), a class
    named ``background`` left uncoloured, and (``legend``) the classes present listed top left."""
    labels = np.asarray(class_map)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"class map {labels.shape} is not the image's size {image.shape[:2]}")
    palette = np.array([class_color(i) for i in range(max(len(class_names), int(labels.max(initial=0)) + 1))],
                       dtype=np.float32)
    tinted = np.array([not _is_background(name) for name in class_names] + [True] * (len(palette) - len(class_names)))
    canvas = image.astype(np.float32)
    mask = tinted[labels]
    canvas[mask] = canvas[mask] * (1 - alpha) + palette[labels[mask]] * alpha
    canvas = np.ascontiguousarray(canvas.round().clip(0, 255).astype(np.uint8))
    if legend:
        _draw_legend(canvas, [row for row in class_shares(labels, class_names) if tinted[row["label"]]])
    return canvas


def write_label_map(path: str | Path, class_map: torch.Tensor | np.ndarray) -> Path:
    """Write ``class_map`` (``[H, W]`` class indices) as a single-channel PNG at ``path``: 8-bit, or 16-bit
    when an index exceeds 255."""
    path = Path(path)
    labels = np.asarray(class_map)
    dtype = np.uint8 if labels.size == 0 or int(labels.max()) <= 255 else np.uint16
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), labels.astype(dtype)):
        raise DatasetError(f"cannot write the label map {path}; check that the output folder is writable")
    return path


def free_stem(out: Path, stem: str) -> str:
    """``stem``, numbered (``stem_1``, ...) when ``out/<stem>.jpg`` or ``out/labels/<stem>.png`` exists, so
    two sources with one name (a glob over folders) keep an overlay and a label map each, named alike."""
    name, index = stem, 1
    while (out / f"{name}.jpg").exists() or (out / LABELS_DIR / f"{name}.png").exists():
        name, index = f"{stem}_{index}", index + 1
    return name


def _is_background(name: str) -> bool:
    return str(name).strip().lower() == BACKGROUND


def _draw_legend(canvas: np.ndarray, rows: list[dict[str, Any]]) -> None:
    """A swatch, the class name and its share for up to :data:`LEGEND_ROWS` classes, top left, in place."""
    if not rows:
        return
    scale = max(0.35, max(canvas.shape[:2]) / 1400)
    (_, text_h), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    line = text_h + base + 4
    shown = rows[:LEGEND_ROWS]
    texts = [f"{row['class_name']} {100 * row['share']:.1f}%" for row in shown]
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in texts) + line + 8
    height = line * len(shown) + 4
    box = canvas[:height, :width]
    box[:] = (box.astype(np.float32) * 0.4).astype(np.uint8)  # darkened, so white text reads on any photo
    for k, (row, text) in enumerate(zip(shown, texts)):
        top = 2 + k * line
        cv2.rectangle(canvas, (4, top + 2), (line, top + line - 2), class_color(row["label"]), -1)
        cv2.putText(canvas, text, (line + 4, top + text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
