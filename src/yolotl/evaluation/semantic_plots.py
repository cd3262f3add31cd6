"""The semantic report's plots: the pixel confusion matrix and overlays of truth and prediction.

Built on the detection report's helpers (:mod:`yolotl.evaluation.plots`): the same heat map, image grid,
class colours and PNG settings, so both reports look alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.patches import Patch

from yolotl.evaluation.plots import (
    _class_colors,
    _grid_figure,
    _name,
    _panel_title,
    _save,
    _short,
    plot_heat_map,
)
from yolotl.evaluation.semantic_eval import OverlaySample
from yolotl.ops.semantic import IGNORE_INDEX

__all__ = ["class_colors", "colorize", "plot_semantic_confusion", "plot_semantic_overlays", "row_fractions"]

CLASS_ALPHA = 0.6  # weight of the class colour over the photo
LEGEND_COLUMNS = 6
LEGEND_ROW = 0.2  # inches per legend row below the panels


def row_fractions(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows without pixels stay 0): where each true class's pixels went."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def plot_semantic_confusion(path: str | Path, matrix: np.ndarray, class_names: Sequence[str],
                            title: str = "Confusion matrix (pixels)") -> Path:
    """Heat map of a ``[C, C]`` pixel matrix, rows truth and columns prediction; colours (and percentages)
    are shares of each true class's row, so each row reads "where did this class's pixels go"."""
    matrix = np.asarray(matrix)
    names = [_name(class_names, i) for i in range(len(matrix))]
    return plot_heat_map(path, matrix, names, row_fractions(matrix), ("Predicted", "True"), title,
                         "fraction of the true class")


def class_colors(num_classes: int) -> np.ndarray:
    """RGB ``[256, 3]`` float lookup table: each class's report colour (the detection report's palette)."""
    palette = _class_colors(num_classes)
    table = np.zeros((256, 3), dtype=np.float32)
    for c in range(min(num_classes, 256)):
        table[c] = np.asarray(palette[c % len(palette)], dtype=np.float32)[:3]
    return table


def colorize(image: np.ndarray, class_map: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``image`` (RGB uint8) with each pixel's class colour laid over it; pixels of ``IGNORE_INDEX`` show the
    photo in light grey, a colour no class has. Returns float RGB in [0, 1]."""
    photo = image.astype(np.float32) / 255.0
    out = (1 - CLASS_ALPHA) * photo + CLASS_ALPHA * table[class_map]
    ignored = class_map == IGNORE_INDEX
    grey = 0.5 * photo.mean(axis=-1, keepdims=True) + 0.5
    out[ignored] = np.broadcast_to(grey, out.shape)[ignored]
    return np.clip(out, 0.0, 1.0)


def plot_semantic_overlays(
    path: str | Path,
    samples: Sequence[OverlaySample],
    class_names: Sequence[str],
    max_side: int = 480,
) -> Path | None:
    """One row per sample: the image, the truth's class colours, the prediction's, with a legend of the
    classes shown. Returns ``None`` when there is no sample."""
    if not samples:
        return None
    table = class_colors(len(class_names))
    shrunk = [_shrink(sample, max_side) for sample in samples]
    shown = sorted({int(v) for _, truth, prediction in shrunk for v in np.union1d(truth, prediction)})
    handles = [Patch(color=table[c], label=_name(class_names, c)) for c in shown if c < len(class_names)]
    if IGNORE_INDEX in shown:
        handles.append(Patch(facecolor="0.85", edgecolor="0.6", label="ignored"))
    columns = min(len(handles), LEGEND_COLUMNS) or 1
    aspect = float(np.clip(np.median([s.image.shape[0] / s.image.shape[1] for s in samples]), 0.4, 1.6))
    fig, axes = _grid_figure(len(samples), 3, aspect, footer=LEGEND_ROW * (math.ceil(len(handles) / columns) + 1))
    for row, (sample, (image, truth, prediction)) in enumerate(zip(samples, shrunk)):
        for ax, picture in zip(axes[row], (image, colorize(image, truth, table), colorize(image, prediction, table))):
            ax.imshow(picture, interpolation="nearest")
        name, accuracy = _short(Path(sample.score.path).name), sample.score.pixel_acc
        _panel_title(axes[row, 0], name if math.isnan(accuracy) else f"{name}  pixel acc {accuracy:.3f}")
        _panel_title(axes[row, 1], "ground truth")
        _panel_title(axes[row, 2], "prediction")
    fig.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    return _save(fig, path)


def _shrink(sample: OverlaySample, max_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample's image (area-averaged) and class maps (nearest) at most ``max_side`` pixels wide or high."""
    height, width = sample.image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return sample.image, sample.truth, sample.prediction
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (cv2.resize(sample.image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(sample.truth, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(sample.prediction, size, interpolation=cv2.INTER_NEAREST))
