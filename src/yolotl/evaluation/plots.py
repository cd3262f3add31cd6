"""PNG plots of the evaluation report, drawn with matplotlib's object-oriented API.

Every function builds its own :class:`~matplotlib.figure.Figure` (never ``pyplot``: no global
state, no backend switch, safe headless and in notebooks), writes one PNG and returns its path.
The figures are not registered anywhere, so they are freed once the function returns.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torchvision.ops import box_convert

from yolotl.evaluation.curves import ConfidenceCurves
from yolotl.evaluation.mask_rle import decode_masks

__all__ = [
    "plot_confidence_curves",
    "plot_confusion_matrix",
    "plot_heat_map",
    "plot_pr_curves",
    "plot_prediction_grid",
    "plot_training_curves",
]

DPI = 130
MAX_LEGEND_CLASSES = 20  # above this, per-class lines are drawn thin and grey without legend entries
ALL_CLASSES_COLOR = "black"
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
CURVE_LABELS = {"f1": "F1", "precision": "Precision", "recall": "Recall"}


def plot_pr_curves(
    path: str | Path,
    pr: np.ndarray,
    class_names: Sequence[str],
    ap50: dict[str, float] | None = None,
) -> Path:
    """Precision-recall curve per class at IoU 0.5 (``pr`` ``[K, 101]``, NaN rows skipped) and their mean.

    The legend gives each class's AP50 (from ``ap50`` when given, else the mean of its row) and the
    mean curve's mAP50.
    """
    pr = np.asarray(pr, dtype=np.float64).reshape(-1, len(RECALL_POINTS))
    fig, ax = _figure((7.5, 6))
    colors = _class_colors(len(pr))
    many = len(pr) > MAX_LEGEND_CLASSES
    first = _first_with_data(pr)
    for k, row in enumerate(pr):
        if np.isnan(row).all():
            continue
        name = _name(class_names, k)
        ap = (ap50 or {}).get(name, float(np.nanmean(row)))
        legend = f"{name}  {ap:.3f}" if not many else (_each_class(len(pr)) if k == first else None)
        ax.plot(RECALL_POINTS, row, lw=0.8 if many else 1.2, color="0.7" if many else colors[k], label=legend)
    with_data = pr[~np.isnan(pr).all(axis=1)]
    if len(with_data):
        mean = np.nanmean(with_data, axis=0)
        ax.plot(RECALL_POINTS, mean, lw=3, color=ALL_CLASSES_COLOR, label=f"all classes  {mean.mean():.3f} mAP50")
    else:
        _no_data(ax, "no ground truth in any class")
    _style_unit_axes(ax, "Recall", "Precision", "Precision-recall curves (IoU 0.50)")
    _legend(ax, "AP50")
    return _save(fig, path)


def plot_confidence_curves(
    path: str | Path,
    curves: ConfidenceCurves,
    class_names: Sequence[str],
    kind: Literal["f1", "precision", "recall"] = "f1",
) -> Path:
    """``kind`` (F1, precision or recall) against the confidence threshold, per class and for all classes.

    The all-classes curve is bold; its best-F1 operating point is marked (with a dotted line at
    that confidence) on every kind, so the three plots read together.
    """
    values = getattr(curves, kind)
    label = CURVE_LABELS[kind]
    fig, ax = _figure((7.5, 6))
    num_classes = len(values) - 1
    colors = _class_colors(num_classes)
    many = num_classes > MAX_LEGEND_CLASSES
    first = _first_with_data(values[:-1])
    for c in range(num_classes):
        if not np.isnan(values[c]).all():
            legend = _curve_label(curves, class_names, c, kind) if not many else (
                _each_class(num_classes) if c == first else None)
            ax.plot(curves.thresholds, values[c], lw=0.8 if many else 1.2, color="0.7" if many else colors[c],
                    label=legend)
    ax.plot(curves.thresholds, values[-1], lw=3, color=ALL_CLASSES_COLOR, label="all classes")
    best = curves.best(-1)
    if not math.isnan(best["f1"]):
        confidence, value = best["confidence"], best[kind]
        ax.axvline(confidence, color=ALL_CLASSES_COLOR, ls=":", lw=1)
        detail = "" if kind == "f1" else f", {label} {value:.3f}"
        ax.scatter([confidence], [value], s=60, color="tab:red", zorder=5,
                   label=f"best F1 {best['f1']:.3f} at {confidence:.2f}{detail}")
    _style_unit_axes(ax, "Confidence threshold", label, f"{label}-confidence curve (IoU {curves.iou_threshold:.2f})")
    _legend(ax, "class  best F1" if kind == "f1" and not many else "class")
    return _save(fig, path)


def plot_confusion_matrix(
    path: str | Path,
    matrix: np.ndarray,
    class_names: Sequence[str],
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Heat map of a ``[C + 1, C + 1]`` matrix from :func:`~yolotl.evaluation.curves.confusion_matrix`.

    Rows are predicted, columns true classes, the last of each "background". Cells show counts;
    with ``normalize`` the colour (and a percentage) is the share of the true class's column, so
    each column reads "where did the objects of this class go". Empty cells are left blank, and
    above 30 classes the cells are not annotated (the counts are in the CSV).
    """
    matrix = np.asarray(matrix)
    names = [_name(class_names, i) for i in range(len(matrix) - 1)] + ["background"]
    values = _column_fractions(matrix) if normalize else None
    return plot_heat_map(path, matrix, names, values, ("True", "Predicted"), title, "fraction of the true class")


def plot_heat_map(
    path: str | Path,
    matrix: np.ndarray,
    names: Sequence[str],
    fractions: np.ndarray | None,
    axis_labels: tuple[str, str],
    title: str,
    fraction_label: str,
) -> Path:
    """A square count matrix as a heat map: colours are ``fractions`` (with a percentage in each cell) or,
    without them, the counts; ``axis_labels`` name the x and y axes. Above 30 classes cells are not annotated."""
    normalize = fractions is not None
    values = fractions if normalize else matrix.astype(np.float64)
    side = min(max(5.0, 0.55 * len(names) + 2.5), 20.0)
    fig, ax = _figure((side + 1.2, side))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(1.0, float(values.max())))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=fraction_label if normalize else "count")
    if len(names) <= 30:
        _annotate_cells(ax, matrix, values, normalize, vmax=image.get_clim()[1])
    ticks = np.arange(len(names))
    fontsize = 10 if len(names) <= 30 else 6
    ax.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize)
    ax.set_yticks(ticks, names, fontsize=fontsize)
    ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1], title=title)
    return _save(fig, path)


def plot_prediction_grid(
    path: str | Path,
    image_paths: Sequence[str | Path],
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    class_names: Sequence[str],
    score_threshold: float = 0.25,
    max_images: int = 16,
    max_side: int = 480,
) -> Path | None:
    """Ground truth (left) next to predictions with score >= ``score_threshold`` (right), per image.

    The first ``max_images`` images, two pairs a row. Boxes are in original image pixels; images
    are shown downscaled to at most ``max_side`` pixels (the boxes stay exact). Instance masks
    (``segmentation``: RLE per object, as :func:`yolotl.evaluation.evaluator.collect` keeps them) are
    filled in their class colour. Returns ``None`` when there is no image to draw.
    """
    count = min(len(image_paths), len(predictions), len(targets), max_images)
    if count == 0:
        return None
    previews = [_load_preview(image_paths[i], max_side) for i in range(count)]
    pairs_per_row = 1 if count == 1 else 2
    fig, axes = _grid_figure(math.ceil(count / pairs_per_row), 2 * pairs_per_row, _median_aspect(previews))
    colors = _class_colors(len(class_names))
    for i, preview in enumerate(previews):
        column = 2 * (i % pairs_per_row)
        gt_ax, pred_ax = axes[i // pairs_per_row, column], axes[i // pairs_per_row, column + 1]
        gt_boxes, gt_labels = _detections(targets[i])
        _draw_masks(gt_ax, preview, targets[i], None, colors)
        _draw_panel(gt_ax, preview, gt_boxes, gt_labels, None, class_names, colors)
        _panel_title(gt_ax, f"{_short(Path(image_paths[i]).name)}: ground truth ({len(gt_labels)})")
        boxes, labels, scores = _detections(predictions[i], score_threshold)
        _draw_masks(pred_ax, preview, predictions[i], score_threshold, colors)
        _draw_panel(pred_ax, preview, boxes, labels, scores, class_names, colors)
        _panel_title(pred_ax, f"predictions >= {score_threshold:.2f} ({len(labels)})")
    return _save(fig, path)


def plot_training_curves(path: str | Path, metrics_csv: str | Path) -> Path | None:
    """Losses (train and val) and validation metrics per epoch from a Lightning CSVLogger ``metrics.csv``.

    Rows of that file are sparse (each logging call fills some columns); the last value logged in
    an epoch is used. Panels whose columns are absent are skipped; returns ``None`` when none is left.
    """
    history = read_epoch_history(metrics_csv)
    panels = [(title, series) for title, series in _training_panels(history) if series]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, (title, series) in zip(axes, panels):
        for label, points in series:
            epochs = sorted(points)
            ax.plot(epochs, [points[e] for e in epochs], marker="o", ms=3, lw=1.5, label=label)
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle("Training curves")
    return _save(fig, path)


def read_epoch_history(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """Column -> {epoch: last value logged in that epoch} of a CSVLogger file; rows without epoch are skipped."""
    history: dict[str, dict[int, float]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            epoch = _float(row.get("epoch"))
            if epoch is None:
                continue
            for column, text in row.items():
                value = _float(text)
                if column not in ("epoch", "step") and value is not None:
                    history.setdefault(column, {})[int(epoch)] = value
    return history


_TRAINING_PANELS: list[tuple[str, list[tuple[str, tuple[str, ...]]]]] = [
    ("Total loss", [("train", ("train/loss_epoch", "train/loss")), ("val", ("val/loss",))]),
    ("Box loss", [("train", ("train/box",)), ("val", ("val/box",))]),
    ("Classification loss", [("train", ("train/cls",)), ("val", ("val/cls",))]),
    ("DFL loss", [("train", ("train/dfl",)), ("val", ("val/dfl",))]),
    ("Validation mAP", [("mAP50-95", ("val/map",)), ("mAP50", ("val/map_50",)), ("mAP75", ("val/map_75",))]),
    ("Validation best-F1 point", [("precision", ("val/precision",)), ("recall", ("val/recall",)), ("F1", ("val/f1",))]),
    ("Cross-entropy loss", [("train", ("train/ce",)), ("val", ("val/ce",))]),  # semantic segmentation
    ("Dice loss", [("train", ("train/dice",)), ("val", ("val/dice",))]),
    ("Validation mIoU", [("mIoU", ("val/miou",)), ("pixel acc", ("val/pixel_acc",))]),
]


def _curve_label(curves: ConfidenceCurves, class_names: Sequence[str], row: int, kind: str) -> str:
    """The class name, with its best F1 and that confidence on the F1 plot."""
    best = curves.best(row)
    if kind != "f1" or math.isnan(best["f1"]):
        return _name(class_names, row)
    return f"{_name(class_names, row)}  {best['f1']:.3f} at {best['confidence']:.2f}"


def _each_class(num_classes: int) -> str:
    return f"each of {num_classes} classes"


def _first_with_data(rows: np.ndarray) -> int:
    """Index of the first row that is not all NaN (-1 if none): it carries the grey curves' legend entry."""
    has_data = ~np.isnan(rows).all(axis=1)
    return int(has_data.argmax()) if has_data.any() else -1


def _training_panels(history: dict[str, dict[int, float]]) -> list[tuple[str, list[tuple[str, dict[int, float]]]]]:
    """Each panel's (label, epoch -> value) series, using the first alternative column that has data."""
    panels = []
    for title, specs in _TRAINING_PANELS:
        series = []
        for label, columns in specs:
            found = next((history[c] for c in columns if history.get(c)), None)
            if found:
                series.append((label, found))
        panels.append((title, series))
    return panels


def _draw_panel(
    ax: Axes,
    preview: tuple[np.ndarray, tuple[int, int]] | None,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    class_names: Sequence[str],
    colors: list[Any],
) -> None:
    """One image with its boxes (lowest score first, so the best end on top) and class/score tags."""
    if preview is None:
        _no_data(ax, "cannot read image")
        return
    image, (height, width) = preview
    ax.imshow(image, extent=(0, width, height, 0), interpolation="antialiased")
    ax.set(xlim=(0, width), ylim=(height, 0))
    order = np.argsort(scores, kind="stable") if scores is not None else np.arange(len(labels))
    with_tags = len(labels) <= 40  # beyond that the tags hide the image
    xywh = box_convert(torch.as_tensor(np.asarray(boxes)).reshape(-1, 4), "xyxy", "xywh").numpy()
    for i in order:
        x1, y1, w, h = xywh[i]
        color = colors[int(labels[i]) % len(colors)] if colors else "red"
        ax.add_patch(Rectangle((x1, y1), w, h, fill=False, edgecolor=color, lw=1.2))
        if with_tags:
            tag = _name(class_names, int(labels[i])) + (f" {scores[i]:.2f}" if scores is not None else "")
            ax.text(x1, y1, tag, fontsize=5.5, color="white", va="bottom", clip_on=True,
                    bbox={"facecolor": color, "alpha": 0.85, "pad": 0.8, "edgecolor": "none"})


def _draw_masks(
    ax: Axes,
    preview: tuple[np.ndarray, tuple[int, int]] | None,
    detections: dict[str, Any],
    score_threshold: float | None,
    colors: list[Any],
    alpha: float = 0.45,
) -> None:
    """Fill the ``segmentation`` masks (those scoring ``score_threshold`` or more) in class colours, as
    one RGBA layer at the preview's size; nothing without masks."""
    rles = detections.get("segmentation")
    if preview is None or not rles:
        return
    image, (height, width) = preview
    keep = np.ones(len(rles), dtype=bool)
    if score_threshold is not None:
        keep = _numpy(detections["scores"]).reshape(-1) >= score_threshold
    labels = _numpy(detections["labels"]).reshape(-1)[keep]
    masks = decode_masks([r for r, k in zip(rles, keep) if k], height, width).numpy()
    layer = np.zeros((*image.shape[:2], 4), dtype=np.float32)
    for mask, label in zip(masks[::-1], labels[::-1]):  # the best scores end on top
        small = cv2.resize(mask.astype(np.uint8), image.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        color = colors[int(label) % len(colors)] if colors else (1.0, 0.0, 0.0, 1.0)
        layer[small] = (*np.asarray(color, dtype=np.float32)[:3], alpha)
    ax.imshow(layer, extent=(0, width, height, 0), interpolation="nearest", zorder=0.5)  # over the photo, under boxes


def _grid_figure(
    rows: int, cols: int, aspect: float, panel_width: float = 3.2, footer: float = 0.0
) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows x cols`` bare image panels (height/width ``aspect``) with room for one-line titles
    (and ``footer`` inches below them, e.g. for a legend).

    Fixed margins instead of a layout engine: with dozens of panels constrained layout dominates
    the drawing time, and image panels need nothing it computes.
    """
    title_height = 0.28  # inches
    height = rows * (panel_width * aspect + title_height) + footer
    fig = Figure(figsize=(cols * panel_width * 1.03, height))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005 + footer / height, top=1 - title_height / height,
                        wspace=0.03, hspace=title_height / (panel_width * aspect))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _median_aspect(previews: Sequence[tuple[np.ndarray, tuple[int, int]] | None]) -> float:
    """Median height/width of the readable images (3:4 if none), kept within [0.4, 1.6]."""
    ratios = [size[0] / size[1] for _, size in filter(None, previews)]
    return float(np.clip(np.median(ratios), 0.4, 1.6)) if ratios else 0.75


def _panel_title(ax: Axes, text: str) -> None:
    """A title as plain text above the panel (``set_title`` re-lays out every axis on each draw)."""
    ax.text(0.5, 1.01, text, ha="center", va="bottom", fontsize=8, transform=ax.transAxes)


def _load_preview(path: str | Path, max_side: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """RGB image downscaled to at most ``max_side`` pixels and its original ``(height, width)``; None if unreadable."""
    image = _read_rgb(path)
    if image is None:
        return None
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return image, (height, width)


def _read_rgb(path: str | Path) -> np.ndarray | None:
    """Decode like the data pipeline (``cv2.IMREAD_COLOR``, EXIF orientation applied) as RGB; None if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _detections(detections: dict[str, Any], score_threshold: float | None = None) -> tuple[np.ndarray, ...]:
    """Boxes ``[N, 4]`` and labels ``[N]`` (and scores ``[N]`` kept above ``score_threshold`` if given)."""
    boxes = _numpy(detections["boxes"]).reshape(-1, 4).astype(np.float64)
    labels = _numpy(detections["labels"]).reshape(-1).astype(np.int64)
    if score_threshold is None:
        return boxes, labels
    scores = _numpy(detections["scores"]).reshape(-1).astype(np.float64)
    keep = scores >= score_threshold
    return boxes[keep], labels[keep], scores[keep]


def _annotate_cells(ax: Axes, matrix: np.ndarray, values: np.ndarray, normalize: bool, vmax: float) -> None:
    """Count (and share of the column) in every non-empty cell, white on dark cells."""
    fontsize = 9 if len(matrix) <= 10 else 6
    for (row, col), count in np.ndenumerate(matrix):
        if count == 0:
            continue
        text = f"{_count(count)}\n{values[row, col]:.0%}" if normalize else _count(count)
        dark = values[row, col] > 0.55 * vmax
        ax.text(col, row, text, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")


def _count(count: int) -> str:
    """A count as it is up to 99999, then compact (``123k``, ``4.5M``): pixel counts fit their cells."""
    count = int(count)
    if count < 100_000:
        return str(count)
    return f"{count / 1e3:.0f}k" if count < 1_000_000 else f"{count / 1e6:.1f}M"


def _column_fractions(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=0, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _style_unit_axes(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)


def _legend(ax: Axes, title: str) -> None:
    ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title_fontsize=9,
              frameon=False)


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _class_colors(num_classes: int) -> list[Any]:
    """Distinct colours: tab10 / tab20 for few classes, evenly spaced hues of turbo beyond."""
    if num_classes <= 10:
        return [colormaps["tab10"](i) for i in range(10)]
    if num_classes <= 20:
        return [colormaps["tab20"](i) for i in range(20)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, num_classes)]


def _name(class_names: Sequence[str], index: int) -> str:
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def _short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
