"""Folding pinned norm layers into the convolution before them, in training steps.

A BatchNorm layer in eval mode (a *pinned* norm: frozen stages, ``strategy.norm=eval``) is a per-channel
affine map, yet in a training step PyTorch still runs it as its own pass over the activations forward and
again backward. On a CPU those passes are memory-bound: for EfficientNet-Lite0 at 416 px, batch 16, they
are about a third of the backbone's step. Folded, the convolution runs with weight ``w * s`` and bias
``b`` (``s = gamma / sqrt(var + eps)``, ``b = beta - mean * s``) computed from the same parameters each
step, so autograd sends exactly the gradients the two layers would get to the convolution's weight and
the norm's ``gamma`` and ``beta``; the activation after the norm (timm's ``BatchNormAct2d``) still runs.

:func:`enable_norm_folding` finds the (convolution -> norm) pairs of a module with one small forward pass,
gives those layers the folding forward (same classes' subclasses: parameters, ``state_dict`` and exported
graphs do not change) and checks that the folded forward gives the unfolded one's outputs, undoing
everything if not. A pair folds only when the convolution is in train mode and its norm in eval mode (a training
step with that norm pinned); validation, prediction and export (the whole model in eval mode) run the
layers as they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from torch import nn

log = logging.getLogger(__name__)

_TOLERANCE = 1e-4  # relative difference of the folded forward's outputs that still counts as equal
_force = False  # tests and the self-check fold in eval mode too


class FoldingConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that folds the eval-mode BatchNorm after it into its own weight and bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm: nn.BatchNorm2d | None = self.__dict__.get("_folded_norm")  # not a child: state_dict unchanged
        if norm is None or not (_force or (self.training and not norm.training)):
            return super().forward(x)
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        bias = -norm.running_mean * scale
        if norm.bias is not None:
            bias = bias + norm.bias
        if self.bias is not None:
            bias = bias + self.bias * scale
        norm.__dict__["_skip_next"] = True  # the norm's next call (on this output) applies only what follows it
        # padding_mode is 'zeros' for every paired convolution (find_conv_norm_pairs), so F.conv2d pads alike
        return F.conv2d(x, self.weight * scale.reshape(-1, 1, 1, 1), bias, self.stride, self.padding, self.dilation,
                        self.groups)


class _SkippingNorm:
    """Mixin: a norm layer whose next call passes its input through when its convolution has folded it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.__dict__.pop("_skip_next", False):
            return self.after_norm(x)
        return super().forward(x)  # type: ignore[misc]

    def after_norm(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FoldableBatchNorm2d(_SkippingNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that a :class:`FoldingConv2d` can fold."""


class FoldableBatchNormAct2d(_SkippingNorm, BatchNormAct2d):
    """timm's ``BatchNormAct2d`` that a :class:`FoldingConv2d` can fold (its dropout and activation still run)."""

    def after_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


_FOLDABLE = {nn.BatchNorm2d: FoldableBatchNorm2d, BatchNormAct2d: FoldableBatchNormAct2d}


def find_conv_norm_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(convolution, norm)`` module names where a plain ``nn.Conv2d``'s output goes straight into a
    BatchNorm (``nn.BatchNorm2d`` or timm's ``BatchNormAct2d``) of as many channels that keeps running
    statistics, in one eval-mode forward pass of ``example`` (no statistics change)."""
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []
    names = {m: n for n, m in module.named_modules()}

    def after_conv(conv: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        produced[id(output)] = names[conv]

    def before_norm(norm: nn.Module, inputs: tuple) -> None:
        conv_name = produced.pop(id(inputs[0]), None)
        if (conv_name is not None and norm.track_running_stats  # without running statistics eval uses the batch's
                and module.get_submodule(conv_name).out_channels == norm.num_features):
            pairs.append((conv_name, names[norm]))

    hooks = [m.register_forward_hook(after_conv) for m in module.modules()
             if type(m) in (nn.Conv2d, FoldingConv2d) and m.padding_mode == "zeros"]
    hooks += [m.register_forward_pre_hook(before_norm) for m in module.modules()
              if type(m) in _FOLDABLE or type(m) in _FOLDABLE.values()]
    was_training = [m.training for m in module.modules()]
    try:
        module.eval()
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
        for m, mode in zip(module.modules(), was_training):
            m.training = mode
    used = [conv for conv, _ in pairs]
    return [(conv, norm) for conv, norm in pairs if used.count(conv) == 1]


@contextlib.contextmanager
def forced_folding() -> Iterator[None]:
    """Fold every paired norm, whatever the modes (to compare the folded forward with the plain one)."""
    global _force
    _force, before = True, _force
    try:
        yield
    finally:
        _force = before


def enable_norm_folding(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """Make the (convolution -> BatchNorm) pairs of ``module`` fold when the norm is pinned; returns them.

    Checked on ``example``: if the folded forward's outputs differ from the plain ones (a convolution's
    output also used elsewhere, say), nothing is changed and no pair is returned."""
    pairs = find_conv_norm_pairs(module, example)
    if not pairs:
        return []
    originals = []
    for conv_name, norm_name in pairs:
        conv, norm = module.get_submodule(conv_name), module.get_submodule(norm_name)
        originals.append((conv, type(conv), norm, type(norm)))
        conv.__class__ = FoldingConv2d
        norm.__class__ = _FOLDABLE.get(type(norm), type(norm))
        conv.__dict__["_folded_norm"] = norm
    if not _same_outputs(module, example):
        for conv, conv_class, norm, norm_class in originals:
            conv.__class__, norm.__class__ = conv_class, norm_class
            conv.__dict__.pop("_folded_norm", None)
        log.debug("norm folding left off for %s: the folded forward differs", type(module).__name__)
        return []
    return pairs


def _same_outputs(module: nn.Module, example: torch.Tensor) -> bool:
    was_training = [m.training for m in module.modules()]
    try:
        module.eval()
        with torch.no_grad():
            plain = _tensors(module(example))
            with forced_folding():
                folded = _tensors(module(example))
    finally:
        for m, mode in zip(module.modules(), was_training):
            m.training = mode
    return len(plain) == len(folded) and all(
        a.shape == b.shape and bool((a - b).abs().max() <= _TOLERANCE * (1 + a.abs().max()))
        for a, b in zip(plain, folded)
    )


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return []


__all__ = ["FoldableBatchNorm2d", "FoldableBatchNormAct2d", "FoldingConv2d", "enable_norm_folding",
           "find_conv_norm_pairs", "forced_folding"]
