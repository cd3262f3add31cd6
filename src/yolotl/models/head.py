"""Decoupled anchor-free YOLO head: per level, a box-distribution branch and a class branch; for
instance segmentation also a mask-coefficient branch per level and a prototype branch on P3 (YOLACT).

Two styles of branch (``head=``): ``"decoupled"``, two dense 3x3 convs per branch (YOLOv8's), and
``"light"``, two depthwise-separable convs per branch, for CPU latency.

An NMS-free head (``nms_free=True``, the one-to-one idea of YOLOv10 and YOLO26) predicts with branches
trained to give one box per object (each object assigned to its single best anchor), so its outputs need
no non-maximum suppression; a second, one-to-many set of branches (each object to its ten best anchors,
as a plain head) trains beside them for a richer signal and is not run at inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from yolotl.models.layers import conv_bn_act, depthwise_separable

HEADS = ("decoupled", "light")


class HeadOutput(NamedTuple):
    """Raw head outputs, one tensor per level (strides ascending)."""

    box_maps: list[torch.Tensor]  # [B, 4*reg_max, H_l, W_l]: per side (l, t, r, b), reg_max bin logits
    cls_maps: list[torch.Tensor]  # [B, num_classes, H_l, W_l]: class logits
    # Segmenting heads only (None for detection): per level, [B, num_protos, H_l, W_l] mask
    # coefficients; and the prototype masks [B, num_protos, H/4, W/4] (stride 4).
    coef_maps: list[torch.Tensor] | None = None
    protos: torch.Tensor | None = None
    # NMS-free heads only, when asked for (``aux=True``, training): the one-to-many branch's maps, the
    # training signal beside the one-to-one maps above, which are the predictions.
    aux_box_maps: list[torch.Tensor] | None = None
    aux_cls_maps: list[torch.Tensor] | None = None


# Objects per image the class prior assumes (YOLO's and RetinaNet's order of magnitude).
PRIOR_OBJECTS_PER_IMAGE = 5.0
# The prior used when the number of anchor points is unknown (RetinaNet's 0.01), and its ceiling.
MAX_CLASS_PRIOR = 0.01


def class_prior(num_classes: int, cells: int | None) -> float:
    """Start probability of one class at one anchor point of a level with ``cells`` points:
    ``PRIOR_OBJECTS_PER_IMAGE`` objects spread over the classes and points, at most 0.01."""
    if not cells:
        return MAX_CLASS_PRIOR
    return min(MAX_CLASS_PRIOR, PRIOR_OBJECTS_PER_IMAGE / num_classes / cells)


def _branch(in_channels: int, hidden: int, out_channels: int, light: bool = False) -> nn.Sequential:
    """Two 3x3 conv units (dense, or depthwise-separable when ``light``) then the 1x1 output layer."""
    unit = depthwise_separable if light else (lambda i, o: conv_bn_act(i, o, 3))
    return nn.Sequential(unit(in_channels, hidden), unit(hidden, hidden), nn.Conv2d(hidden, out_channels, 1))


class Prototypes(nn.Module):
    """YOLACT's prototype branch: the finest neck level (stride 8) -> ``num_protos`` masks at stride 4
    (conv, 2x nearest upsample, conv, 1x1 conv), shared by every detection of the image."""

    def __init__(self, in_channels: int, hidden: int, num_protos: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(in_channels, hidden, 3)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = conv_bn_act(hidden, hidden, 3)
        self.out = conv_bn_act(hidden, num_protos, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv2(self.upsample(self.conv1(x))))


class DecoupledHead(nn.Module):
    """Box and class predictions per anchor point; ``reset_classes`` swaps the class layer only.

    ``num_protos > 0`` makes it a segmenting head: ``coef_branches`` (per level, ``num_protos``
    mask coefficients per anchor point) and ``proto`` (prototype masks from the first level). They
    are built after the detection layers, so a detection head (``num_protos=0``) is unchanged in
    parameters, their order and their initialisation.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        reg_max: int = 16,
        level_cells: Sequence[int] | None = None,
        num_protos: int = 0,
        style: str = "decoupled",
        nms_free: bool = False,
    ) -> None:
        super().__init__()
        if style not in HEADS:
            raise ValueError(f"head={style!r} is not a head; choose one of {list(HEADS)}")
        self.reg_max = reg_max
        self.style = style
        self.level_cells = list(level_cells) if level_cells is not None else None
        light = style == "light"
        # YOLOv8's widths; the light head's box branch is as wide as its class branch (its convs are cheap)
        box_hidden = max(in_channels[0], 4 * reg_max) if light else max(16, in_channels[0] // 4, 4 * reg_max)
        self.cls_hidden = max(in_channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList(_branch(c, box_hidden, 4 * reg_max, light) for c in in_channels)
        self.cls_branches = nn.ModuleList(_branch(c, self.cls_hidden, num_classes, light) for c in in_channels)
        self.num_classes = num_classes
        self.nms_free = nms_free
        if nms_free:  # the one-to-many branches: training signal only
            self.aux_box_branches = nn.ModuleList(_branch(c, box_hidden, 4 * reg_max, light) for c in in_channels)
            self.aux_cls_branches = nn.ModuleList(_branch(c, self.cls_hidden, num_classes, light) for c in in_channels)
        self._init_class_layers()
        self._init_box_layers()
        self.num_protos = num_protos
        if num_protos > 0:
            coef_hidden = max(in_channels[0] // 4, num_protos)  # YOLOv8-seg's width
            self.coef_branches = nn.ModuleList(_branch(c, coef_hidden, num_protos, light) for c in in_channels)
            self.proto = Prototypes(in_channels[0], in_channels[0], num_protos)

    def forward(self, features: Sequence[torch.Tensor], aux: bool = False) -> HeadOutput:
        """Per-level maps; ``aux`` adds an NMS-free head's one-to-many maps (what training needs)."""
        box_maps = [branch(f) for branch, f in zip(self.box_branches, features)]
        cls_maps = [branch(f) for branch, f in zip(self.cls_branches, features)]
        extra = {}
        if aux and self.nms_free:
            extra = {"aux_box_maps": [branch(f) for branch, f in zip(self.aux_box_branches, features)],
                     "aux_cls_maps": [branch(f) for branch, f in zip(self.aux_cls_branches, features)]}
        if self.num_protos == 0:
            return HeadOutput(box_maps, cls_maps, **extra)
        coef_maps = [branch(f) for branch, f in zip(self.coef_branches, features)]
        return HeadOutput(box_maps, cls_maps, coef_maps, self.proto(features[0]), **extra)

    def class_branches(self) -> list[nn.Sequential]:
        """Every branch that ends in a class layer: the predictions', and an NMS-free head's auxiliary ones."""
        return [*self.cls_branches, *(self.aux_cls_branches if self.nms_free else [])]

    def reset_classes(self, num_classes: int) -> None:
        """Replace the last class layer of every level (new classes, fresh prior-probability bias)."""
        for branch in self.class_branches():
            old = branch[-1]
            branch[-1] = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device)
        self.num_classes = num_classes
        self._init_class_layers()

    def _init_class_layers(self) -> None:
        # Every class starts at the probability an anchor point holds one of its objects, so the
        # first steps are not spent pushing the background down (Focal Loss paper, section 3.3). With
        # Adam a bias moves about one learning rate per step: a prior 100x too high costs ~2000 steps.
        levels = len(self.cls_branches)
        for index, branch in enumerate(self.class_branches()):
            level = index % levels
            nn.init.normal_(branch[-1].weight, std=0.01)
            nn.init.constant_(branch[-1].bias, math.log(class_prior(self.num_classes, self._cells(level))))

    def _cells(self, level: int) -> int | None:
        return self.level_cells[level] if self.level_cells is not None else None

    def _init_box_layers(self) -> None:
        # Box logits start flat: a uniform distribution over the bins (reg_max=1: softplus(1) = 1.3 strides).
        for branch in [*self.box_branches, *(self.aux_box_branches if self.nms_free else [])]:
            nn.init.normal_(branch[-1].weight, std=0.01)
            nn.init.constant_(branch[-1].bias, 1.0)
