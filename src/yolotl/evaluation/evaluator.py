"""Evaluate a detector on a dataset split in original-image pixels, as any external tool would.

Training-time validation scores letterboxed network inputs; this path instead runs the public
``predict()`` on each original image and scores boxes in that image's own pixels, so COCO's
small/medium/large areas mean what they say and the exported COCO JSON can be scored elsewhere.

A segmenting detector's masks are scored too (``mask_map`` ...): each image's predicted and
ground-truth masks are kept as COCO RLE (``segmentation`` in the per-image dicts, see
:mod:`yolotl.evaluation.mask_rle`) and decoded one image at a time for scoring.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from yolotl.data.dataset import boxes_in_decoded_frame, read_image
from yolotl.data.records import ImageRecord
from yolotl.errors import ConfigError
from yolotl.evaluation.mask_rle import decode_masks, encode_masks, record_masks
from yolotl.evaluation.matching import crowd_flags
from yolotl.evaluation.metrics import DetectionMetrics
from yolotl.models.class_names import match_class_names

log = logging.getLogger("yolotl.evaluate")

Detections = list[dict[str, Any]]  # tensors, and ``segmentation`` (a list of RLE dicts) with masks


class Predictor(Protocol):
    """Anything with yolotl's ``predict()`` contract: a TorchDetector or an OnnxDetector (``segments``:
    it has a mask branch and ``predict(..., masks=True)`` gives ``masks``)."""

    class_names: Sequence[str]

    def predict(self, images: Any, score_threshold: float, iou_threshold: float, max_detections: int,
                **kwargs: Any) -> Detections:
        ...


@dataclass
class Evaluation:
    """Predictions and ground truth of one split (original pixels) and the metrics computed from them."""

    class_names: list[str]
    image_paths: list[Path]
    image_sizes: list[tuple[int, int]]  # (height, width) of each decoded image
    predictions: Detections
    targets: Detections
    metrics: dict[str, float] = field(default_factory=dict)
    coco_precision: torch.Tensor | None = None  # COCOeval precision [T, R, K, A, M]
    coco_classes: list[int] = field(default_factory=list)  # class ids of its K axis
    mask_precision: torch.Tensor | None = None  # the same for masks (a segmenting detector)
    mask_classes: list[int] = field(default_factory=list)

    @property
    def masks(self) -> bool:
        """The predictions carry instance masks (``segmentation``)."""
        return any("segmentation" in p for p in self.predictions)


def check_class_names(detector_names: Sequence[str], dataset_names: Sequence[str], source: str) -> list[int] | None:
    """Dataset label -> detector class, or None when the classes are the same, in the same order.

    A detector with more classes than the data (one that kept its old classes while it learnt new
    ones) is scored on the data's classes, matched by name; its other classes have no ground truth
    here and COCO evaluation leaves them out of the mean. Any data class the detector lacks is an error.
    """
    if list(detector_names) == list(dataset_names):
        return None
    matches = match_class_names(dataset_names, detector_names)
    missing = [n for i, n in enumerate(dataset_names) if i not in matches]
    if missing:
        raise ConfigError(
            f"the checkpoint's classes {list(detector_names)} differ from {source}'s classes {list(dataset_names)} "
            f"(it has no {missing}); evaluate on the dataset the detector was trained for, or pass data.reading.class_names "
            "in the detector's order"
        )
    return [matches[i] for i in range(len(dataset_names))]


def collect(
    detector: Predictor,
    records: Sequence[ImageRecord],
    score_threshold: float = 0.001,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    batch_size: int = 8,
    label_map: Sequence[int] | None = None,
) -> Evaluation:
    """Predict every record's image (low threshold: curves and mAP need the tail) with its ground truth.

    ``label_map`` (from :func:`check_class_names`) turns dataset labels into detector classes. A
    segmenting detector's masks, and the records' outlines, come as RLE ``segmentation`` lists (one
    image at a time through ``predict``: its masks are full-size boolean arrays until encoded)."""
    evaluation = Evaluation(list(detector.class_names), [], [], [], [])
    segments = bool(getattr(detector, "segments", False))
    if segments and not any(record.segments is not None for record in records):
        log.warning("the detector segments, but these images have no instance outlines: only boxes are scored")
        segments = False
    extra = {"masks": segments} if getattr(detector, "segments", False) else {}
    batch_size = 1 if segments else batch_size
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        images = [read_image(record.image_path) for record in chunk]
        for det in detector.predict(images, score_threshold, iou_threshold, max_detections, **extra):
            det = {k: v.cpu() for k, v in det.items()}
            if segments:
                det["segmentation"] = encode_masks(det.pop("masks"))
            evaluation.predictions.append(det)
        for record, image in zip(chunk, images):
            height, width = image.shape[:2]
            target = _target(record, height, width)
            if segments:
                target["segmentation"] = record_masks(record, target["boxes"].numpy(), height, width)
            if label_map is not None:
                target["labels"] = torch.as_tensor(label_map, dtype=torch.long)[target["labels"]]
            evaluation.targets.append(target)
            evaluation.image_paths.append(Path(record.image_path))
            evaluation.image_sizes.append((height, width))
        if (start // batch_size) % 10 == 9 or len(evaluation.targets) == len(records):
            log.info("evaluated %d/%d images", len(evaluation.targets), len(records))
    return evaluation


def score(evaluation: Evaluation, at_confidence: float = 0.25) -> Evaluation:
    """Fill ``metrics`` (mAP family, per-class AP, best-F1 and chosen-confidence P/R/F1) and the PR array."""
    metric = DetectionMetrics(evaluation.class_names, masks=evaluation.masks)
    if evaluation.masks:  # decoded one image at a time
        for pred, target, (height, width) in zip(evaluation.predictions, evaluation.targets, evaluation.image_sizes):
            metric.update([{**pred, "masks": decode_masks(pred["segmentation"], height, width)}],
                          [{**target, "masks": decode_masks(target.get("segmentation", []), height, width)}])
    else:
        metric.update(evaluation.predictions, evaluation.targets)
    result = metric.compute_with_precision(at_confidence)
    evaluation.metrics, evaluation.coco_precision, evaluation.coco_classes = (
        result.metrics, result.precision, result.classes)
    evaluation.mask_precision, evaluation.mask_classes = result.mask_precision, result.mask_classes
    evaluation.metrics["images"] = float(len(evaluation.targets))
    # objects scored: those flagged iscrowd are ignored
    evaluation.metrics["instances"] = float(sum(int((~crowd_flags(t)).sum()) for t in evaluation.targets))
    return evaluation


def _target(record: ImageRecord, height: int, width: int) -> dict[str, torch.Tensor]:
    """The record's objects in decoded-image pixels; ``iscrowd`` flags those scoring ignores."""
    boxes = boxes_in_decoded_frame(record, height, width)  # same repair as training for stale sizes
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
        "labels": torch.as_tensor(np.asarray(record.labels, np.int64).reshape(-1)),
        "iscrowd": torch.as_tensor(record.ignored),
    }
