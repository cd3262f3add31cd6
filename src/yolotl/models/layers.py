"""Building blocks for the neck and head: conv-norm-act (timm), its depthwise-separable form, a CSP block."""

from __future__ import annotations

import torch
from timm.layers import ConvNormAct
from torch import nn


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> nn.Module:
    """Conv -> BatchNorm -> SiLU, the YOLO unit (timm's ConvNormAct)."""
    return ConvNormAct(in_channels, out_channels, kernel_size, stride=stride, act_layer=nn.SiLU)


def depthwise_separable(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """A depthwise ``kernel_size`` conv (one filter per channel) then a 1x1 conv, each with BatchNorm and SiLU.

    About ``k*k`` times fewer multiply-adds than the dense conv it replaces (MobileNet's factorisation);
    the form the CPU-first neck and head are built from.
    """
    return nn.Sequential(
        ConvNormAct(in_channels, in_channels, kernel_size, stride=stride, groups=in_channels, act_layer=nn.SiLU),
        conv_bn_act(in_channels, out_channels, 1),
    )


class Bottleneck(nn.Module):
    """Two 3x3 convs with an optional residual connection."""

    def __init__(self, channels: int, shortcut: bool = True) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(channels, channels, 3)
        self.conv2 = conv_bn_act(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPBlock(nn.Module):
    """Cross-stage-partial block: split, run ``depth`` bottlenecks on one half, concat every step, fuse.

    Keeping each bottleneck's output in the concat (the "C2f" layout of recent YOLOs) gives rich
    gradients at low cost.
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.stem = conv_bn_act(in_channels, 2 * hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(hidden, shortcut) for _ in range(depth))
        self.fuse = conv_bn_act((2 + depth) * hidden, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.stem(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))
