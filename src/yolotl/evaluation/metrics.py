"""Detection metrics glue: torchmetrics mAP (faster_coco_eval backend) + best-F1 operating point.

Targets may flag objects to ignore with ``iscrowd`` (COCO crowd regions, VOC difficult objects):
torchmetrics hands it to COCOeval, which matches a crowd box by intersection over the detection's
area (not IoU), lets any number of detections match it, and counts those detections and the box
itself nowhere: how COCO scores crowds. For VOC difficult objects this is a close stand-in for
VOC's own rule (a detection whose best-overlapping box, IoU >= 0.5, is difficult is ignored, and
the object is never missed); see :mod:`yolotl.evaluation.matching` for where the two differ.

``masks=True`` (a segmenting detector) also scores instance masks (predictions' and targets' ``masks``,
``[N, H, W]`` at one size) with the same MeanAveragePrecision (``iou_type=("bbox", "segm")``): ``mask_map``,
``mask_map_50``, ``mask_map_75`` and per class ``mask_ap/<name>``, ``mask_ap50/<name>`` beside the box
scores, which stay exactly as without masks.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from yolotl.evaluation.matching import crowd_flags
from yolotl.evaluation.pr_f1 import PrecisionRecallF1

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10).tolist()  # float64, exactly as pycocotools' Params
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101).tolist()
MAX_DETECTIONS = 300  # COCO-style scoring keeps up to 300 detections per image (BENCHMARKS.md)


def _map_backend() -> str:
    try:
        import faster_coco_eval  # noqa: F401

        return "faster_coco_eval"
    except ImportError:
        return "pycocotools"


@dataclass
class MetricResult:
    """What :meth:`DetectionMetrics.compute_with_precision` gives: the flat metrics and COCO's precision
    arrays ``[T, R, K, A, M]`` (boxes, and masks when scored) with the class ids of their K axis."""

    metrics: dict[str, float]
    precision: torch.Tensor
    classes: list[int]
    mask_precision: torch.Tensor | None = None
    mask_classes: list[int] = field(default_factory=list)


class DetectionMetrics(nn.Module):
    """Accumulates predictions and targets (``boxes``, ``labels``, optional ``iscrowd``); ``compute``
    returns one flat dict of floats."""

    def __init__(self, class_names: Sequence[str], masks: bool = False) -> None:
        super().__init__()
        self.class_names = list(class_names)
        # With masks one metric scores both, iou_type ("bbox", "segm") (keys bbox_..., segm_...): box AP
        # is not computed twice, and with "segm" alone torchmetrics (1.9) leaves images without
        # ground-truth masks out of COCO's image list, so false positives on them count nowhere and mask
        # AP comes out higher than COCOeval's on the same data; with boxes given it keeps every image.
        self.masks = masks
        self.map = _mean_average_precision(("bbox", "segm") if masks else "bbox", class_metrics=True)
        self.prf1 = PrecisionRecallF1()

    def update(self, preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        boxed = [{"boxes": t["boxes"], "labels": t["labels"], "iscrowd": crowd_flags(t).long()} for t in targets]
        box_preds = [{k: p[k] for k in ("boxes", "scores", "labels")} for p in preds]
        self.prf1.update(box_preds, boxed)
        if not self.masks:
            self.map.update(box_preds, boxed)
            return
        self.map.update(
            [{"masks": p["masks"].bool(), **b} for p, b in zip(preds, box_preds)],
            [{"masks": _target_masks(t, p), **b} for t, p, b in zip(targets, preds, boxed)],
        )

    def compute(self) -> dict[str, float]:
        return self.compute_with_precision().metrics

    def compute_with_precision(self, at_confidence: float | None = None) -> MetricResult:
        """``compute()`` plus COCO's precision arrays ``[T, R, K, A, M]`` and the class ids of their K axis.

        With ``at_confidence``, also ``at_confidence/{precision,recall,f1,confidence}``: the
        operating point of the predictions scoring at least that confidence.
        """
        with contextlib.redirect_stdout(io.StringIO()):  # the COCO backends print their summary table
            both = self.map.compute()
        result = _prefixed(both, "bbox_") if self.masks else both
        out = {key: float(result[key]) for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")}
        classes = [int(c) for c in result["classes"].reshape(-1).tolist()]
        out.update(self._per_class("", result, classes))
        out.update(self.prf1.compute())
        scored = MetricResult(out, result["precision"], classes)
        if self.masks:
            masks = _prefixed(both, "segm_")
            out.update({f"mask_{key}": float(masks[key]) for key in ("map", "map_50", "map_75")})
            scored.mask_classes = classes
            out.update(self._per_class("mask_", masks, classes))
            scored.mask_precision = masks["precision"]
        if at_confidence is not None:
            out.update({f"at_confidence/{k}": v for k, v in self.prf1.compute_at(at_confidence).items()})
        return scored

    def _per_class(self, prefix: str, result: dict[str, torch.Tensor], classes: list[int]) -> dict[str, float]:
        """``<prefix>ap/<name>`` (AP50-95) and ``<prefix>ap50/<name>`` of each class in a torchmetrics result."""
        out = {}
        ap50 = _per_class_ap50(result["precision"])
        for index, (class_id, value) in enumerate(zip(classes, result["map_per_class"].reshape(-1).tolist())):
            name = self._name(class_id)
            out[f"{prefix}ap/{name}"] = float(value)
            if index < len(ap50):
                out[f"{prefix}ap50/{name}"] = ap50[index]
        return out

    def reset(self) -> None:
        self.map.reset()
        self.prf1.reset()

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else str(class_id)


def _prefixed(result: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """One iou_type's part of a ("bbox", "segm") result, its prefix dropped (``classes`` is shared)."""
    return {"classes": result["classes"], **{k[len(prefix):]: v for k, v in result.items() if k.startswith(prefix)}}


def _target_masks(target: dict[str, torch.Tensor], pred: dict[str, torch.Tensor]) -> torch.Tensor:
    """The target's masks as bool; none, at the prediction's size, for an image without objects
    (the dataset gives those no ``masks`` key)."""
    if "masks" in target:
        return target["masks"].bool()
    return pred["masks"].new_zeros((0, *pred["masks"].shape[-2:]), dtype=torch.bool)


def _mean_average_precision(iou_type: str | tuple[str, ...], class_metrics: bool) -> MeanAveragePrecision:
    """COCO scoring of boxes (``bbox``) or instance masks (``segm``), or both (keys ``bbox_...``, ``segm_...``)."""
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type=iou_type,
        class_metrics=class_metrics,
        backend=_map_backend(),
        max_detection_thresholds=[1, 10, MAX_DETECTIONS],
        # COCO's exact thresholds: torchmetrics' defaults come from float32 linspace (0.0099999998
        # instead of 0.01), which moves AP by up to ~2e-3 away from pycocotools on the same data.
        iou_thresholds=COCO_IOU_THRESHOLDS,
        rec_thresholds=COCO_RECALL_THRESHOLDS,
        extended_summary=class_metrics,  # the precision array gives per-class AP50
    )


def _per_class_ap50(precision: torch.Tensor) -> list[float]:
    """AP at IoU 0.5 per class from COCO's precision array [T, R, K, A, M] (area "all", max dets)."""
    if precision.dim() != 5:
        return []
    at_50 = precision[0, :, :, 0, -1]  # [R, K]
    values = []
    for k in range(at_50.shape[1]):
        column = at_50[:, k]
        valid = column[column > -1]
        values.append(float(valid.mean()) if len(valid) else -1.0)
    return values
