"""The semantic segmentation head: a class for every pixel from the neck's three levels.

A feature-pyramid fusion (the "Semantic FPN" design of Kirillov et al., Panoptic FPN, written from the
paper): each level (strides 8, 16, 32) gets one 3x3 conv to a common width, is resized (bilinear) to the
stride-8 grid and summed; two 3x3 convs refine the sum and a 1x1 conv gives the class logits at stride 8.
Bilinear upsampling of the logits to the input size (:func:`yolotl.ops.semantic.upsample_logits`) happens
in the loss and at prediction, so the exported graph stays small.

The backbone, the neck and their freezing schedules are the detector's: only this head is new, so a
detector's weights (``init_from``) give a segmenter everything but its last layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from yolotl.models.layers import conv_bn_act

OUTPUT_STRIDE = 8  # the logits' grid: the finest neck level


class SemanticOutput(NamedTuple):
    """Raw outputs of a semantic segmenter."""

    logits: torch.Tensor  # [B, num_classes, H/8, W/8] class logits (softmax over dim 1)


class SemanticHead(nn.Module):
    """Fuse the neck's levels at stride 8 and classify every cell; ``reset_classes`` swaps the classifier.

    Args:
        in_channels: channels of the neck's levels, finest first.
        num_classes: classes (background included when the data has one).
        width: channels of the fused map (default: the finest level's).
        dropout: dropout before the classifier (regularises the few-hundred-image regime).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        width = int(width or in_channels[0])
        self.lateral = nn.ModuleList(conv_bn_act(c, width, 3) for c in in_channels)
        self.refine = nn.Sequential(conv_bn_act(width, width, 3), conv_bn_act(width, width, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)
        self.num_classes = num_classes
        self._init_classifier()

    def forward(self, features: Sequence[torch.Tensor], aux: bool = False) -> SemanticOutput:
        """Class logits at stride 8 (``aux`` is accepted for the detector's call signature; it adds nothing)."""
        size = features[0].shape[-2:]
        fused = self.lateral[0](features[0])
        for lateral, feature in zip(self.lateral[1:], features[1:]):
            fused = fused + F.interpolate(lateral(feature), size=size, mode="bilinear", align_corners=False)
        return SemanticOutput(self.classifier(self.dropout(self.refine(fused))))

    def class_branches(self) -> list[nn.Sequential]:
        """The layers that end in a class layer (the detector's protocol): the classifier, as ``[-1]``."""
        return [nn.Sequential(self.classifier)]

    def reset_classes(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` classes (transfer to another label set)."""
        old = self.classifier
        self.classifier = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device)
        self.num_classes = num_classes
        self._init_classifier()

    def _init_classifier(self) -> None:
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)
