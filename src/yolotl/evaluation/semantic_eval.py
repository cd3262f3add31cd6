"""Run a semantic segmenter over a split and score it: the confusion matrix, per-image accuracy, worst images.

The batches are the data module's eval batches (letterboxed to the input size, ``semantic`` class maps with
the padding set to the ignore value), so the class maps are scored at the input size with the padding left
out: the same pixels as in the original images, up to resampling. Only the few worst images (by pixel
accuracy) are kept for the report's overlays, cropped to their content, so memory stays flat on any split.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from yolotl.errors import DatasetError
from yolotl.evaluation.semantic_metrics import SemanticMetrics
from yolotl.ops.semantic import IGNORE_INDEX, upsample_logits

log = logging.getLogger("yolotl.evaluate")

__all__ = ["ImageScore", "OverlaySample", "SemanticEvaluation", "collect_semantic", "content_box", "per_image_rows"]


@dataclass(frozen=True)
class ImageScore:
    """One image's pixel accuracy (NaN when no pixel of it is labelled) and its labelled pixel count."""

    path: str
    pixel_acc: float
    labelled: int


@dataclass(frozen=True)
class OverlaySample:
    """An image (RGB uint8 ``[H, W, 3]``) with its truth and predicted class maps (uint8 ``[H, W]``,
    ``IGNORE_INDEX`` in the truth where nothing is scored), cropped to the image content."""

    score: ImageScore
    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray


@dataclass
class SemanticEvaluation:
    """The scores of one split: ``matrix`` ``[C, C]`` (rows truth, columns prediction, pixels), ``metrics``
    (:meth:`SemanticMetrics.compute` plus ``images`` and ``labelled_pixels``), every image's score, and the
    worst images (lowest pixel accuracy first) for overlays."""

    class_names: list[str]
    matrix: Tensor
    metrics: dict[str, float]
    images: list[ImageScore] = field(default_factory=list)
    worst: list[OverlaySample] = field(default_factory=list)

    def class_table(self) -> dict[str, dict[str, float]]:
        """Per class: ``iou``, truth ``pixels`` and ``predicted_pixels`` (from the matrix)."""
        truth, predicted = self.matrix.sum(1).tolist(), self.matrix.sum(0).tolist()
        return {name: {"iou": self.metrics[f"iou/{name}"], "pixels": int(truth[c]),
                       "predicted_pixels": int(predicted[c])} for c, name in enumerate(self.class_names)}


def collect_semantic(
    detector: Any,
    batches: Iterable[tuple[Tensor, Sequence[dict[str, Any]]]],
    label_map: Sequence[int] | None = None,
    max_overlays: int = 8,
) -> SemanticEvaluation:
    """Score every batch's class maps: the argmax of ``detector.logits(images)`` (a semantic segmenter's
    :class:`~yolotl.inference.torch_runtime.TorchDetector`, or an exported model's runtime) upsampled to the
    input size, as training validates, against each target's ``semantic`` map. ``label_map`` (from
    :func:`~yolotl.evaluation.evaluator.check_class_names`) turns dataset classes into the detector's."""
    names = list(detector.class_names)
    metric = SemanticMetrics(names)
    lookup = torch.as_tensor(label_map, dtype=torch.long) if label_map is not None else None
    evaluation = SemanticEvaluation(names, torch.zeros(0), {})
    for images, targets in batches:
        if not targets or "semantic" not in targets[0]:
            raise DatasetError("the eval batches carry no `semantic` class maps; build the data module with "
                               "masks='semantic'")
        truth = _to_detector_classes(torch.stack([t["semantic"] for t in targets]), lookup, targets)
        with torch.inference_mode():
            preds = upsample_logits(detector.logits(images), images.shape[-2:]).argmax(1).cpu()
        metric.update(preds, truth)
        _keep_scores(evaluation, images, truth, preds, targets, max_overlays)
    evaluation.matrix = metric.confusion_matrix()
    evaluation.metrics = {**metric.compute(), "images": float(len(evaluation.images)),
                          "labelled_pixels": float(evaluation.matrix.sum())}
    log.info("evaluated %d images", len(evaluation.images))
    return evaluation


def _to_detector_classes(truth: Tensor, lookup: Tensor | None, targets: Sequence[dict[str, Any]]) -> Tensor:
    if lookup is None:
        return truth
    labelled = truth != IGNORE_INDEX
    if bool((truth[labelled] >= len(lookup)).any()) or bool((truth[labelled] < 0).any()):
        raise DatasetError(f"a class map among {[t.get('path') for t in targets]} holds values that are no class "
                           f"(0..{len(lookup) - 1}, or {IGNORE_INDEX} to ignore)")
    mapped = truth.clone()
    mapped[labelled] = lookup[truth[labelled]]
    return mapped


def _keep_scores(
    evaluation: SemanticEvaluation,
    images: Tensor,
    truth: Tensor,
    preds: Tensor,
    targets: Sequence[dict[str, Any]],
    max_overlays: int,
) -> None:
    """Append each image's score; keep the ``max_overlays`` worst so far (cropped to their content)."""
    labelled = truth != IGNORE_INDEX
    correct = ((preds == truth) & labelled).flatten(1).sum(1).tolist()
    counts = labelled.flatten(1).sum(1).tolist()
    for i, target in enumerate(targets):
        score = ImageScore(str(target.get("path", len(evaluation.images))),
                           correct[i] / counts[i] if counts[i] else math.nan, int(counts[i]))
        evaluation.images.append(score)
        if max_overlays <= 0 or math.isnan(score.pixel_acc):
            continue
        if len(evaluation.worst) == max_overlays and score.pixel_acc >= evaluation.worst[-1].score.pixel_acc:
            continue
        y0, y1, x0, x1 = content_box(target, images.shape[-2:])
        evaluation.worst.append(OverlaySample(
            score,
            (images[i, :, y0:y1, x0:x1].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8),
            truth[i, y0:y1, x0:x1].cpu().numpy().astype(np.uint8),
            preds[i, y0:y1, x0:x1].cpu().numpy().astype(np.uint8)))
        evaluation.worst.sort(key=lambda sample: sample.score.pixel_acc)
        del evaluation.worst[max_overlays:]


def content_box(target: dict[str, Any], size: Sequence[int]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the image inside a letterboxed input of ``size`` (H, W), from the target's
    ``pad``, ``scale`` and ``orig_size``; the whole input when they are missing."""
    height, width = int(size[0]), int(size[1])
    if "pad" not in target or "orig_size" not in target:
        return 0, height, 0, width
    pad_x, pad_y = (float(v) for v in target["pad"])
    orig_h, orig_w = (int(v) for v in target["orig_size"])
    scale = float(target["scale"])
    x0, y0 = int(round(pad_x)), int(round(pad_y))
    x1 = min(width, max(x0 + 1, int(round(pad_x + orig_w * scale))))
    y1 = min(height, max(y0 + 1, int(round(pad_y + orig_h * scale))))
    return y0, y1, x0, x1


def per_image_rows(evaluation: SemanticEvaluation) -> list[tuple[str, float, int]]:
    """``(path, pixel_acc, labelled)`` per image, worst first (images with no labelled pixel last)."""
    ordered = sorted(evaluation.images, key=lambda s: (math.isnan(s.pixel_acc), s.pixel_acc))
    return [(str(Path(s.path)), s.pixel_acc, s.labelled) for s in ordered]
