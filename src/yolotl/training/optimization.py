"""The optimizer and the learning-rate schedule as parts the module is given (Hydra partials).

``DetectionModule(optimizer=...)`` takes any callable that builds a ``torch.optim.Optimizer`` from
parameter groups, e.g. ``functools.partial(torch.optim.AdamW, lr=2e-3)`` or, in a config,
``_target_: torch.optim.AdamW`` with ``_partial_: true``. The module's groups carry an ``lr_mult``
(strategy, milestone, layer-wise decay) and a ``weight_decay`` of 0 for norms and biases; everything
else (the base rate, betas, momentum, decay) is the optimizer's own. ``schedule`` takes the optimizer
and the run's step counts, which only exist once the Trainer knows its data (``WarmupCosine``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from yolotl.errors import ConfigError

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def adamw(lr: float = 2e-3, weight_decay: float = 0.05, betas: tuple[float, float] = (0.9, 0.999)) -> OptimizerFactory:
    """AdamW as the module takes it (a partial); the defaults are the configured ones (conf/model/yolo.yaml):
    ``DetectionModule(detector, optimizer=yolotl.adamw(lr=4e-3))``."""
    return partial(torch.optim.AdamW, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def build_optimizer(factory: OptimizerFactory, groups: Sequence[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimizer over ``groups`` (see :func:`~yolotl.training.param_groups.build_param_groups`):
    each group's rate is the optimizer's base rate times its ``lr_mult``, set before any schedule
    reads it, so the schedule scales every group alike."""
    if not callable(factory):
        raise ConfigError(f"optimizer must build a torch optimizer from parameter groups (e.g. "
                          f"functools.partial(torch.optim.AdamW, lr=2e-3), or _partial_: true in a config); "
                          f"got {factory!r}")
    optimizer = factory(list(groups))
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"optimizer built a {type(optimizer).__name__}, not a torch.optim.Optimizer")
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_mult", 1.0)
    return optimizer


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The rate a group with ``lr_mult`` 1 starts at (for messages)."""
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"])) / float(group.get("lr_mult", 1.0) or 1.0)


def warmup_cosine(step: int, total: int, warmup: int, floor: float) -> float:
    """LR factor: linear warmup from 10% over ``warmup`` steps, then cosine decay to ``floor``."""
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warmup over ``warmup_epochs`` (from 10 % of the rate, at most half the run), then a cosine
    decay to ``min_lr_ratio`` of it, stepped every optimizer step."""

    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"WarmupCosine(warmup_epochs={self.warmup_epochs}, min_lr_ratio={self.min_lr_ratio}): "
                              "warmup_epochs must be >= 0 and min_lr_ratio in [0, 1]")

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int) -> LRScheduler:
        total = max(1, int(total_steps))
        warmup = min(total // 2, int(self.warmup_epochs * steps_per_epoch))
        return LambdaLR(optimizer, partial(warmup_cosine, total=total, warmup=warmup, floor=self.min_lr_ratio))
