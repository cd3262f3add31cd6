"""Small settings objects of the Lightning module, one per concern, each a config node of its own:
the loss weights (``model.module.loss``), the validation post-processing (``model.module.evaluation``)
and what happens to a transferred detector's old classes (``model.module.old_classes``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from yolotl.errors import ConfigError

CLASS_WEIGHTING = ("inverse_sqrt",)
OLD_CLASS_MODES = (None, "frozen", "distill")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (``box * CIoU + cls * BCE + dfl * DFL [+ mask * mask BCE]``; a semantic
    segmenter's ``cross-entropy + dice * soft Dice``) and of the classes in the BCE's positive term (a semantic
    segmenter's cross-entropy): ``classes="inverse_sqrt"`` (from the training counts, see
    :func:`~yolotl.training.class_weights.inverse_sqrt_weights`), one number per class, or None (all 1)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    mask: float = 7.5  # YOLOv8-seg's box gain; used by a segmenting detector only
    classes: str | Sequence[float] | None = "inverse_sqrt"
    dice: float = 0.0  # soft Dice beside cross-entropy; used by a semantic segmenter only

    def __post_init__(self) -> None:
        for name in ("box", "cls", "dfl", "mask", "dice"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"loss weight {name}={value!r} must be a finite number >= 0")
        if isinstance(self.classes, str) and self.classes not in CLASS_WEIGHTING:
            raise ConfigError(f"class weights '{self.classes}' is not a scheme; use one of {list(CLASS_WEIGHTING)}, "
                              "a list of one number per class, or null")


@dataclass(frozen=True)
class EvalSettings:
    """Post-processing of validation and test predictions (what mAP scores): a low score threshold, so the
    whole precision-recall curve is there, NMS IoU, and detections kept per image."""

    score_threshold: float = 0.001
    iou_threshold: float = 0.6
    max_detections: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.score_threshold < 1 or not 0 < self.iou_threshold <= 1 or self.max_detections < 1:
            raise ConfigError(f"evaluation settings {self}: score_threshold in [0, 1), iou_threshold in (0, 1], "
                              "max_detections >= 1")


@dataclass(frozen=True)
class OldClasses:
    """A detector built with ``init_from`` + ``keep_old_classes`` keeps classes this data does not label:
    ``mode="frozen"`` fixes their class rows, ``"distill"`` lets the source detector teach them (class and
    box terms weighted ``distill_weight``), None trains them as background (forgotten)."""

    mode: str | None = None
    distill_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in OLD_CLASS_MODES:
            raise ConfigError(f"old_classes={self.mode!r}; choose one of {list(OLD_CLASS_MODES)}")

    @classmethod
    def of(cls, value: Any) -> OldClasses:
        """``None``, a mode name or an ``OldClasses``, as the module's argument takes it."""
        if isinstance(value, OldClasses):
            return value
        if value is None or isinstance(value, str):
            return cls(value)
        raise ConfigError(f"old_classes must be null, 'frozen', 'distill' or OldClasses(...), got {value!r}")
