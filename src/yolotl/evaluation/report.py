"""The evaluation report: PNG plots and a ``report.md`` that ties them together.

``write_report`` takes the detections of a whole split (keep them down to a low score such as
0.001: the curves need the low-confidence tail), the metrics dict of
:class:`~yolotl.evaluation.metrics.DetectionMetrics` and optionally COCO's precision array and the
training run folder, and writes everything into one folder that reads well on GitHub or locally.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolotl.evaluation.curves import (
    ConfidenceCurves,
    confidence_curves,
    confusion_matrix,
    confusion_summary,
    pr_curves_from_coco,
)
from yolotl.evaluation.matching import crowd_flags
from yolotl.evaluation.plots import (
    plot_confidence_curves,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_prediction_grid,
    plot_training_curves,
)

__all__ = ["write_report"]

_SUMMARY_ROWS = [
    ("mAP50-95", "map"),
    ("mAP50", "map_50"),
    ("mAP75", "map_75"),
    ("mAP50-95 small", "map_small"),
    ("mAP50-95 medium", "map_medium"),
    ("mAP50-95 large", "map_large"),
    ("mask mAP50-95", "mask_map"),
    ("mask mAP50", "mask_map_50"),
    ("mask mAP75", "mask_map_75"),
]
_OPERATING_KEYS = ("precision", "recall", "f1", "confidence")
MISSING = "–"  # shown for absent values, NaN and COCO's -1 ("no data")


@dataclass
class _Section:
    """One ``##`` section of the report: its title and Markdown lines (text and image links)."""

    title: str
    lines: list[str] = field(default_factory=list)


def write_report(
    out_dir: str | Path,
    *,
    class_names: Sequence[str],
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    image_paths: Sequence[str | Path],
    metrics: dict[str, float],
    coco_precision: torch.Tensor | np.ndarray | None = None,
    coco_classes: Sequence[int] | torch.Tensor | None = None,
    mask_precision: torch.Tensor | np.ndarray | None = None,
    mask_classes: Sequence[int] | torch.Tensor | None = None,
    run_dir: str | Path | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.5,
    max_grid_images: int = 16,
    title: str = "yolotl evaluation",
) -> Path:
    """Write the plots, ``confusion_matrix.csv`` and ``report.md`` into ``out_dir``; return report.md's path.

    ``predictions``/``targets``/``image_paths`` are aligned per image, boxes xyxy in original
    image pixels. ``coco_precision`` is torchmetrics' ``precision`` (``extended_summary=True``),
    its class axis given by ``coco_classes`` (the result's ``classes``; when omitted, torchmetrics'
    rule: the sorted labels seen in ``predictions`` and ``targets``). A segmenting detector's
    ``mask_precision`` / ``mask_classes`` add mask PR curves, and the per-image ``segmentation`` RLEs
    mask overlays in the prediction grid. The confusion matrix, the
    prediction grid and the "chosen threshold" precision/recall/F1 (computed here, so they agree
    with the matrix) use ``score_threshold``; the curves use every prediction. ``metrics`` gives
    the mAPs, per-class APs and best-F1 point (from the curves when absent); other scalars in it
    are listed too. ``run_dir`` adds training curves from ``run_dir/logs/metrics.csv`` if present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    curves = confidence_curves(predictions, targets, len(names), iou_threshold)
    matrix = confusion_matrix(predictions, targets, len(names), score_threshold, iou_threshold)
    _write_matrix_csv(out / "confusion_matrix.csv", matrix, names)
    sections = [
        _pr_section(out, names, metrics, coco_precision, _coco_class_ids(coco_classes, predictions, targets)),
        *([_pr_section(out, names, metrics, mask_precision, _coco_class_ids(mask_classes, predictions, targets),
                       kind="mask")] if mask_precision is not None else []),
        _confidence_section(out, curves, names),
        _confusion_section(out, matrix, names, score_threshold, iou_threshold),
        _prediction_section(out, image_paths, predictions, targets, names, score_threshold, max_grid_images),
        _training_section(out, run_dir),
    ]
    header = _header(title, predictions, targets, score_threshold, iou_threshold, run_dir)
    tables = _metrics_tables(metrics, curves, matrix, names, score_threshold)
    return write_page(out / "report.md", header + tables, sections)


def write_page(path: Path, lines: list[str], sections: Sequence[_Section]) -> Path:
    """``report.md``: the opening ``lines`` (title, tables), then each section under its ``##`` title."""
    body = lines + [line for section in sections for line in [f"## {section.title}", "", *section.lines, ""]]
    path.write_text("\n".join(body).rstrip() + "\n", encoding="utf-8")
    return path


def _header(
    title: str,
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    score_threshold: float,
    iou_threshold: float,
    run_dir: str | Path | None,
) -> list[str]:
    num_ignored = sum(int(crowd_flags(t).sum()) for t in targets)
    num_gt = sum(len(t["labels"]) for t in targets) - num_ignored
    num_pred = sum(len(p["scores"]) for p in predictions)
    ignored = (f" (and {num_ignored} ignored: crowd regions or difficult objects, `iscrowd`)"
               if num_ignored else "")
    lines = [
        f"# {title}",
        "",
        (f"{len(targets)} images, {num_gt} ground-truth boxes{ignored}, {num_pred} predictions. "
         f"Matching at IoU >= {iou_threshold:.2f}; the chosen score threshold is {score_threshold:.2f}."),
    ]
    if run_dir is not None:
        lines.append(f"Run: `{run_dir}`.")
    return lines + [""]


def _metrics_tables(
    metrics: dict[str, float],
    curves: ConfidenceCurves,
    matrix: np.ndarray,
    names: list[str],
    score_threshold: float,
) -> list[str]:
    """Summary table (COCO mAPs present in ``metrics`` and other scalars), operating points, per class."""
    lines = ["## Metrics", "", "| Metric | Value |", "| --- | --- |"]
    lines += [f"| {label} | {_fmt(metrics[key])} |" for label, key in _SUMMARY_ROWS if key in metrics]
    lines += [f"| {_escape(key)} | {_fmt(value)} |" for key, value in _other_metrics(metrics).items()]
    best = {key: metrics[key] for key in _OPERATING_KEYS if key in metrics} or curves.best(-1)
    at_threshold = confusion_summary(matrix)  # the same numbers as the confusion matrix below
    lines += [
        "",
        f"| Operating point (IoU {curves.iou_threshold:.2f}, all classes) | Confidence | Precision | Recall | F1 |",
        "| --- | --- | --- | --- | --- |",
        _row("best F1", best.get("confidence"), best.get("precision"), best.get("recall"), best.get("f1")),
        _row("chosen threshold", score_threshold, at_threshold["precision"], at_threshold["recall"],
             at_threshold["f1"]),
        "",
        "A dash means no data (for example no object in that size range).",
        "",
    ]
    return lines + _class_table(metrics, curves, matrix, names, score_threshold)


def _class_table(
    metrics: dict[str, float],
    curves: ConfidenceCurves,
    matrix: np.ndarray,
    names: list[str],
    score_threshold: float,
) -> list[str]:
    """One row per class: instances, AP50-95, AP50, best F1 and its confidence, P/R at the threshold."""
    masks = any(key.startswith("mask_ap/") for key in metrics)
    mask_header = " Mask AP50-95 | Mask AP50 |" if masks else ""
    lines = [
        "## Per class",
        "",
        (f"| Class | Instances | AP50-95 | AP50 |{mask_header} Best F1 | at confidence "
         f"| Precision @ {score_threshold:.2f} | Recall @ {score_threshold:.2f} |"),
        "| --- " * (10 if masks else 8) + "|",
    ]
    for c, name in enumerate(names):
        best = curves.best(c) if curves.num_gt[c] else {"f1": None, "confidence": None}
        point = confusion_summary(matrix, c)
        mask_cells = [metrics.get(f"mask_ap/{name}"), metrics.get(f"mask_ap50/{name}")] if masks else []
        lines.append(_row(_escape(name), int(curves.num_gt[c]), metrics.get(f"ap/{name}"),
                          metrics.get(f"ap50/{name}"), *mask_cells, best["f1"], best["confidence"],
                          point["precision"], point["recall"]))
    return lines + [""]


def _pr_section(
    out: Path,
    names: list[str],
    metrics: dict[str, float],
    coco_precision: torch.Tensor | np.ndarray | None,
    class_ids: list[int],
    kind: str = "",
) -> _Section:
    """Box PR curves, or with ``kind="mask"`` the instance masks' (``mask_ap50/<name>`` in the legend)."""
    prefix = f"{kind}_" if kind else ""
    section = _Section(f"{kind.capitalize()} precision-recall curves" if kind else "Precision-recall curves")
    if coco_precision is None:
        section.lines.append("_Skipped: no COCO precision array was given (`coco_precision`)._")
        return section
    pr = pr_curves_from_coco(coco_precision)
    if len(pr) != len(class_ids):
        section.lines.append(f"_Skipped: the COCO precision array has {len(pr)} class rows for {len(class_ids)} "
                             "class ids; pass `coco_classes` (the torchmetrics result's `classes`)._")
        return section
    pr = _pr_by_class(pr, class_ids, len(names))
    ap50 = {name: metrics[f"{prefix}ap50/{name}"] for name in names if f"{prefix}ap50/{name}" in metrics}
    file_name = f"{prefix}pr_curves.png"
    plot_pr_curves(out / file_name, pr, names, ap50 or None)
    matched = "mask IoU 0.50" if kind else "IoU 0.50"
    section.lines += [
        f"COCO-interpolated precision at 101 recall points, {matched}, per class; the legend gives AP50.",
        "",
        _image(section.title, file_name),
    ]
    return section


def _confidence_section(out: Path, curves: ConfidenceCurves, names: list[str]) -> _Section:
    section = _Section("Confidence curves")
    section.lines += [
        (f"Precision, recall and F1 (IoU {curves.iou_threshold:.2f}) when only predictions with score >= the "
         "threshold are kept. The red dot is the all-classes best-F1 operating point."),
        "",
    ]
    for kind, label in (("f1", "F1"), ("precision", "Precision"), ("recall", "Recall")):
        file_name = f"{kind}_confidence.png"
        plot_confidence_curves(out / file_name, curves, names, kind=kind)
        section.lines += [_image(f"{label}-confidence curve", file_name), ""]
    section.lines.pop()  # no blank line after the last image
    return section


def _confusion_section(
    out: Path, matrix: np.ndarray, names: list[str], score_threshold: float, iou_threshold: float
) -> _Section:
    section = _Section("Confusion matrix")
    title = f"Confusion matrix (score >= {score_threshold:.2f}, IoU >= {iou_threshold:.2f})"
    plot_confusion_matrix(out / "confusion_matrix.png", matrix, names, normalize=True, title=title)
    section.lines += [
        (f"Predictions with score >= {score_threshold:.2f}. Rows: predicted class, columns: true class. "
         "The background row counts missed objects (false negatives), the background column detections "
         "that match no object (false positives, duplicates included). Colours are shares of each true "
         "class's column. Counts: [confusion_matrix.csv](confusion_matrix.csv)."),
        "",
        _image("Confusion matrix", "confusion_matrix.png"),
    ]
    return section


def _prediction_section(
    out: Path,
    image_paths: Sequence[str | Path],
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    names: list[str],
    score_threshold: float,
    max_images: int,
) -> _Section:
    section = _Section("Predictions")
    path = plot_prediction_grid(out / "predictions.png", image_paths, predictions, targets, names,
                                score_threshold, max_images)
    if path is None:
        section.lines.append("_Skipped: no images._")
        return section
    shown = min(len(image_paths), max_images)
    section.lines += [
        (f"The first {shown} images: ground truth on the left, predictions with score >= "
         f"{score_threshold:.2f} on the right" + (", instance masks filled." if _has_masks(predictions) else ".")),
        "",
        _image("Ground truth and predictions", "predictions.png"),
    ]
    return section


def _has_masks(predictions: Sequence[dict[str, Any]]) -> bool:
    return any("segmentation" in p for p in predictions)


def _training_section(out: Path, run_dir: str | Path | None) -> _Section:
    section = _Section("Training curves")
    metrics_csv = Path(run_dir) / "logs" / "metrics.csv" if run_dir is not None else None
    if metrics_csv is None or not metrics_csv.is_file():
        section.lines.append("_Skipped: no `logs/metrics.csv` in a run folder._")
        return section
    if plot_training_curves(out / "training_curves.png", metrics_csv) is None:
        section.lines.append(f"_Skipped: nothing plottable per epoch in `{metrics_csv}`._")
        return section
    section.lines += [f"From `{metrics_csv}`.", "", _image("Training curves", "training_curves.png")]
    return section


def _coco_class_ids(
    coco_classes: Sequence[int] | torch.Tensor | None,
    predictions: Sequence[dict[str, Any]],
    targets: Sequence[dict[str, Any]],
) -> list[int]:
    """The class id of each row of COCO's precision array.

    When not given, torchmetrics' rule: the sorted labels seen in the predictions or the targets.
    """
    if coco_classes is not None:
        values = coco_classes.tolist() if isinstance(coco_classes, torch.Tensor) else list(coco_classes)
        return [int(v) for v in np.asarray(values).reshape(-1)]
    labels = [np.asarray(torch.as_tensor(d["labels"]).reshape(-1)) for d in [*predictions, *targets]]
    return sorted({int(v) for array in labels for v in array})


def _pr_by_class(pr: np.ndarray, class_ids: list[int], num_classes: int) -> np.ndarray:
    """COCO's per-class rows placed at their class ids (``[C, 101]``, NaN for classes COCO did not list)."""
    full = np.full((num_classes, pr.shape[1]), np.nan)
    for row, class_id in zip(pr, class_ids):
        if 0 <= class_id < num_classes:
            full[class_id] = row
    return full


def _write_matrix_csv(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    """Counts with a header row of true classes and a first column of predicted classes."""
    labels = [*names, "background"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["predicted \\ true", *labels])
        for label, row in zip(labels, matrix):
            writer.writerow([label, *(int(v) for v in row)])


def _other_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Scalars not shown elsewhere: not the COCO summary, counts, operating points or per-class APs."""
    shown = {key for _, key in _SUMMARY_ROWS} | set(_OPERATING_KEYS) | {"images", "instances"}
    return {key: value for key, value in metrics.items()
            if key not in shown and not key.startswith(("ap/", "ap50/", "mask_ap/", "mask_ap50/", "at_threshold/",
                                                         "at_confidence/"))}


def _row(*cells: Any) -> str:
    return "| " + " | ".join(cell if isinstance(cell, str) else _fmt(cell) for cell in cells) + " |"


def _fmt(value: Any) -> str:
    """Numbers with 3 decimals, ints as they are; missing, NaN and COCO's -1 ("no data") as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    number = float(value)
    return MISSING if math.isnan(number) or number == -1.0 else f"{number:.3f}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _image(alt: str, file_name: str) -> str:
    return f"![{alt}]({file_name})"
