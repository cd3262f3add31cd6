"""The semantic segmentation report: ``report.md`` with the scores, the per-class table, the pixel confusion
matrix and overlays of the worst images, beside CSV files of the matrix and of every image's accuracy.

The page is assembled like the detection report (:mod:`yolotl.evaluation.report`: the same sections,
table cells and training curves).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from yolotl.evaluation.report import _escape, _image, _row, _Section, _training_section, write_page
from yolotl.evaluation.semantic_eval import SemanticEvaluation, per_image_rows
from yolotl.evaluation.semantic_plots import plot_semantic_confusion, plot_semantic_overlays, row_fractions

__all__ = ["write_semantic_report"]


def write_semantic_report(
    out_dir: str | Path,
    evaluation: SemanticEvaluation,
    run_dir: str | Path | None = None,
    title: str = "yolotl semantic segmentation evaluation",
) -> Path:
    """Write ``report.md``, ``confusion_matrix.csv`` (pixel counts, rows truth), ``confusion_matrix_normalized.csv``
    (each row's shares), ``per_image.csv`` (pixel accuracy, worst first) and the PNGs into ``out_dir``;
    return report.md's path. ``run_dir`` adds training curves from its ``logs/metrics.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = evaluation.class_names
    matrix = evaluation.matrix.numpy()
    _write_matrix(out / "confusion_matrix.csv", matrix, names, "{:d}")
    _write_matrix(out / "confusion_matrix_normalized.csv", row_fractions(matrix), names, "{:.4f}")
    with open(out / "per_image.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "pixel_acc", "labelled_pixels"])
        writer.writerows([path, "" if math.isnan(acc) else f"{acc:.4f}", count]
                         for path, acc, count in per_image_rows(evaluation))
    sections = [_confusion_section(out, matrix, names), _overlay_section(out, evaluation),
                _training_section(out, run_dir)]
    return write_page(out / "report.md", _header(title, evaluation, run_dir) + _tables(evaluation), sections)


def _header(title: str, evaluation: SemanticEvaluation, run_dir: str | Path | None) -> list[str]:
    lines = [
        f"# {title}",
        "",
        (f"{len(evaluation.images)} images, {int(evaluation.matrix.sum())} labelled pixels, "
         f"{len(evaluation.class_names)} classes. Scored at the network's input size (letterboxed), the padding "
         "and ignored pixels (value 255) left out."),
    ]
    if run_dir is not None:
        lines.append(f"Run: `{run_dir}`.")
    return lines + [""]


def _tables(evaluation: SemanticEvaluation) -> list[str]:
    """The summary (mIoU, pixel accuracy) and one row per class: IoU, recall, precision, pixels."""
    metrics, matrix = evaluation.metrics, evaluation.matrix.double()
    truth, predicted, hits = matrix.sum(1), matrix.sum(0), matrix.diagonal()
    total = float(truth.sum()) or 1.0
    lines = ["## Metrics", "", "| Metric | Value |", "| --- | --- |",
             _row("mIoU", metrics.get("miou")), _row("pixel accuracy", metrics.get("pixel_acc")), "",
             "mIoU is the mean over the classes present in the truth or the predictions; a dash means neither.", "",
             "## Per class", "",
             "| Class | IoU | Recall | Precision | Truth pixels | Share of pixels | Predicted pixels |",
             "| --- " * 7 + "|"]
    for c, name in enumerate(evaluation.class_names):
        recall = float(hits[c] / truth[c]) if truth[c] else None
        precision = float(hits[c] / predicted[c]) if predicted[c] else None
        lines.append(_row(_escape(name), metrics.get(f"iou/{name}"), recall, precision, int(truth[c]),
                          float(truth[c]) / total, int(predicted[c])))
    return lines + [""]


def _confusion_section(out: Path, matrix: np.ndarray, names: list[str]) -> _Section:
    section = _Section("Confusion matrix")
    plot_semantic_confusion(out / "confusion_matrix.png", matrix, names)
    section.lines += [
        ("Pixels: rows are the true class, columns the predicted one; colours are shares of each row (where a "
         "class's pixels went). Counts: [confusion_matrix.csv](confusion_matrix.csv), shares: "
         "[confusion_matrix_normalized.csv](confusion_matrix_normalized.csv)."),
        "",
        _image("Confusion matrix", "confusion_matrix.png"),
    ]
    return section


def _overlay_section(out: Path, evaluation: SemanticEvaluation) -> _Section:
    section = _Section("Worst images")
    if plot_semantic_overlays(out / "overlays.png", evaluation.worst, evaluation.class_names) is None:
        section.lines.append("_Skipped: no image with labelled pixels._")
        return section
    section.lines += [
        (f"The {len(evaluation.worst)} images with the lowest pixel accuracy, worst first: the image, the ground "
         "truth's classes and the prediction's; ignored pixels show the photo in light grey. Every image's "
         "accuracy: [per_image.csv](per_image.csv)."),
        "",
        _image("Worst images", "overlays.png"),
    ]
    return section


def _write_matrix(path: Path, matrix: np.ndarray, names: list[str], number: str) -> None:
    """A header row of predicted classes and a first column of true classes."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, matrix):
            writer.writerow([name, *(number.format(v.item()) for v in row)])
