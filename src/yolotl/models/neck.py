"""Necks sized from the backbone's channels: top-down then bottom-up fusion of C3..C5.

``PANNeck`` (``neck="pan"``) is the YOLOv8-style path-aggregation network: CSP blocks of dense 3x3 convs,
widths 1:2:4. ``LightPAN`` (``neck="light"``) keeps the same two paths for CPU latency: one width at every
level, levels merged by addition, and depthwise-separable convs (about a tenth of the multiply-adds).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from yolotl.models.layers import CSPBlock, conv_bn_act, depthwise_separable

NECKS = ("pan", "light")


def neck_widths(width: int) -> list[int]:
    """Output widths for P3, P4, P5: the usual 1:2:4 pyramid."""
    return [width, 2 * width, 4 * width]


class PANNeck(nn.Module):
    """Path-aggregation network over three levels (strides 8, 16, 32)."""

    def __init__(self, in_channels: Sequence[int], width: int = 64, depth: int = 1) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        w3, w4, w5 = neck_widths(width)
        self.out_channels = [w3, w4, w5]
        self.reduce5 = conv_bn_act(c5, w5, 1)
        self.top_down4 = CSPBlock(w5 + c4, w4, depth)
        self.top_down3 = CSPBlock(w4 + c3, w3, depth)
        self.down3 = conv_bn_act(w3, w3, 3, stride=2)
        self.bottom_up4 = CSPBlock(w3 + w4, w4, depth)
        self.down4 = conv_bn_act(w4, w4, 3, stride=2)
        self.bottom_up5 = CSPBlock(w4 + w5, w5, depth)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # features: C3 [B,c3,H/8,W/8], C4 [B,c4,H/16,W/16], C5 [B,c5,H/32,W/32]
        c3, c4, c5 = features
        p5 = self.reduce5(c5)  # [B,w5,H/32,W/32]
        p4 = self.top_down4(torch.cat([_upsample_to(p5, c4), c4], 1))  # [B,w4,H/16,W/16]
        p3 = self.top_down3(torch.cat([_upsample_to(p4, c3), c3], 1))  # [B,w3,H/8,W/8]
        n4 = self.bottom_up4(torch.cat([self.down3(p3), p4], 1))  # [B,w4,H/16,W/16]
        n5 = self.bottom_up5(torch.cat([self.down4(n4), p5], 1))  # [B,w5,H/32,W/32]
        return [p3, n4, n5]


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class _Residual(nn.Module):
    """``depth`` depthwise-separable units, each added to its input."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.units = nn.ModuleList(depthwise_separable(width, width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = x + unit(x)
        return x


class LightPAN(nn.Module):
    """A path-aggregation network for CPU latency: every level ``width`` wide (1x1 laterals from the
    backbone), top-down and bottom-up merges by addition, each followed by ``depth`` residual
    depthwise-separable units; the bottom-up path downsamples with a stride-2 depthwise-separable conv.
    """

    def __init__(self, in_channels: Sequence[int], width: int = 64, depth: int = 1) -> None:
        super().__init__()
        self.out_channels = [width] * 3
        self.laterals = nn.ModuleList(conv_bn_act(c, width, 1) for c in in_channels)
        self.top_down4 = _Residual(width, depth)
        self.top_down3 = _Residual(width, depth)
        self.down3 = depthwise_separable(width, width, 3, stride=2)
        self.bottom_up4 = _Residual(width, depth)
        self.down4 = depthwise_separable(width, width, 3, stride=2)
        self.bottom_up5 = _Residual(width, depth)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # features: C3..C5 at strides 8, 16, 32 -> P3, N4, N5, each [B, width, H_l, W_l]
        l3, l4, l5 = (lateral(f) for lateral, f in zip(self.laterals, features))
        p4 = self.top_down4(l4 + _upsample_to(l5, l4))
        p3 = self.top_down3(l3 + _upsample_to(p4, l3))
        n4 = self.bottom_up4(p4 + self.down3(p3))
        n5 = self.bottom_up5(l5 + self.down4(n4))
        return [p3, n4, n5]


def build_neck(kind: str, in_channels: Sequence[int], width: int, depth: int) -> nn.Module:
    """The neck named ``kind`` (one of :data:`NECKS`)."""
    if kind == "pan":
        return PANNeck(in_channels, width, depth)
    if kind == "light":
        return LightPAN(in_channels, width, depth)
    raise ValueError(f"neck={kind!r} is not a neck; choose one of {list(NECKS)}")
