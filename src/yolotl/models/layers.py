"""Building blocks for the neck and head: conv-norm-act (timm), its depthwise-separable form, a CSP block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def _records(x: torch.Tensor) -> bool:
    """Whether autograd records an operation on ``x`` (then an in-place activation first clones it)."""
    return torch.is_grad_enabled() and x.requires_grad


class GradAwareSiLU(nn.SiLU):
    """``nn.SiLU`` in place only where autograd records nothing: under autograd PyTorch's in-place
    ``silu_`` clones its input first, a pass over the activations more than the plain op, while without
    autograd in place saves allocating a new tensor (frozen stages, inference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=self.inplace and not _records(x))


class GradAwareReLU6(nn.ReLU6):
    """``nn.ReLU6`` (timm's EfficientNet-Lite, MobileNets) in place only where autograd records nothing
    (as :class:`GradAwareSiLU`: PyTorch's in-place ``hardtanh_`` clones its input under autograd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(x, self.min_val, self.max_val, self.inplace and not _records(x))


_GRAD_AWARE = {nn.SiLU: GradAwareSiLU, nn.ReLU6: GradAwareReLU6}


def grad_aware_activations(module: nn.Module) -> None:
    """Give every in-place ``nn.SiLU`` / ``nn.ReLU6`` of ``module`` its grad-aware class (same module,
    no parameters)."""
    for layer in module.modules():
        if type(layer) in _GRAD_AWARE and layer.inplace:
            layer.__class__ = _GRAD_AWARE[type(layer)]
