"""Transfer strategies as Lightning callbacks, plus EMA and throughput measurement.

Strategies build on Lightning's ``BaseFinetuning`` hooks (``setup`` -> freeze before training,
``on_train_epoch_start`` -> schedule), but are declarative: the frozen state is a function of the
epoch, re-applied at every epoch start, so a resumed run lands in the same state as an uninterrupted
one. Freezing goes through ``TimmBackbone.freeze``, which also pins norm statistics (Lightning's own
``freeze(train_bn=False)`` would let frozen BatchNorm use batch statistics: Lightning issue 15062).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BaseFinetuning, WeightAveraging
from torch.optim import Optimizer

from yolotl.errors import ConfigError
from yolotl.training.param_groups import count_parameters

log = logging.getLogger("yolotl.training")


class TransferStrategy(BaseFinetuning):
    """Base class: which backbone stages are frozen at each epoch, and the backbone LR multiplier."""

    name = "transfer"

    def __init__(self, backbone_lr_mult: float = 1.0) -> None:
        super().__init__()
        if backbone_lr_mult < 0:
            raise ConfigError(f"backbone_lr_mult must be >= 0, got {backbone_lr_mult}")
        self.backbone_lr_mult = backbone_lr_mult
        self._applied: int | None = None
        self.last_report: dict[str, Any] = {}

    def frozen_stages(self, epoch: int, num_stages: int) -> int:
        """How many leading backbone stages are frozen during ``epoch``."""
        raise NotImplementedError

    def apply(self, pl_module: pl.LightningModule, epoch: int) -> None:
        backbone = pl_module.detector.backbone
        stages = self.frozen_stages(epoch, backbone.num_stages)
        if stages == self._applied and backbone.frozen_stages == stages:
            return
        backbone.freeze(stages)
        self._applied = stages
        self.last_report = freeze_report(pl_module, self.name, epoch)
        log.info(
            "strategy %s, epoch %d: frozen backbone stages %s; trainable parameters %d of %d",
            self.name, epoch, self.last_report["frozen_stages"] or "none",
            self.last_report["trainable_params"], self.last_report["total_params"],
        )

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.apply(pl_module, epoch=0)

    def finetune_function(self, pl_module: pl.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        self.apply(pl_module, epoch)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Parameter groups never change (see param_groups.build_param_groups), so there is nothing
        # of BaseFinetuning's to restore; re-apply the state for the (possibly resumed) epoch instead.
        self.apply(pl_module, trainer.current_epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            self.finetune_function(pl_module, trainer.current_epoch, optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {"frozen_stages": self._applied}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._applied = None  # recomputed from the epoch on fit start


class FeatureExtract(TransferStrategy):
    """Backbone frozen (weights and norm statistics), no backward pass through it; neck and head train."""

    name = "feature_extract"

    def __init__(self) -> None:
        super().__init__(backbone_lr_mult=0.0)

    def frozen_stages(self, epoch: int, num_stages: int) -> int:
        return num_stages


class Finetune(TransferStrategy):
    """First ``freeze_stages`` backbone stages frozen, the rest trains at ``backbone_lr_mult`` x LR.

    With ``unfreeze_at_epoch`` set, the frozen stages join training from that epoch on.
    """

    name = "finetune"

    def __init__(
        self, freeze_stages: int = 2, backbone_lr_mult: float = 0.1, unfreeze_at_epoch: int | None = None
    ) -> None:
        super().__init__(backbone_lr_mult=backbone_lr_mult)
        if freeze_stages < 0:
            raise ConfigError(f"freeze_stages must be >= 0, got {freeze_stages}")
        if unfreeze_at_epoch is not None and unfreeze_at_epoch < 0:
            raise ConfigError(f"unfreeze_at_epoch must be >= 0 or null, got {unfreeze_at_epoch}")
        self.freeze_stages = freeze_stages
        self.unfreeze_at_epoch = unfreeze_at_epoch

    def frozen_stages(self, epoch: int, num_stages: int) -> int:
        if self.freeze_stages > num_stages:
            raise ConfigError(
                f"freeze_stages={self.freeze_stages} but the backbone has only {num_stages} stages"
            )
        if self.unfreeze_at_epoch is not None and epoch >= self.unfreeze_at_epoch:
            return 0
        return self.freeze_stages


class EndToEnd(TransferStrategy):
    """Everything trains; the backbone at ``backbone_lr_mult`` x LR (1.0 by default)."""

    name = "end_to_end"

    def __init__(self, backbone_lr_mult: float = 1.0) -> None:
        super().__init__(backbone_lr_mult=backbone_lr_mult)

    def frozen_stages(self, epoch: int, num_stages: int) -> int:
        return 0


def freeze_report(pl_module: pl.LightningModule, strategy: str, epoch: int) -> dict[str, Any]:
    """Which backbone stages are frozen and how many parameters train."""
    backbone = pl_module.detector.backbone
    return {
        "strategy": strategy,
        "epoch": epoch,
        "frozen_stages": backbone.stage_names[: backbone.frozen_stages],
        "trainable_stages": backbone.stage_names[backbone.frozen_stages :],
        "trainable_params": count_parameters(pl_module.detector, trainable_only=True),
        "total_params": count_parameters(pl_module.detector),
    }


def find_strategy(trainer: pl.Trainer | None) -> TransferStrategy | None:
    if trainer is None:
        return None
    found = [cb for cb in trainer.callbacks if isinstance(cb, TransferStrategy)]
    if len(found) > 1:
        raise ConfigError(f"more than one transfer strategy callback: {[type(c).__name__ for c in found]}")
    return found[0] if found else None


class EMA(WeightAveraging):
    """Exponential moving average of the weights, with a decay that ramps up over the first updates.

    Lightning's ``WeightAveraging`` swaps the average in for validation and saves it as the
    checkpoint's ``state_dict``. The ramp (decay * (1 - exp(-n / ramp_steps))) keeps early, random
    weights from dominating short fine-tuning runs. ``lerp`` leaves equal tensors bit-identical, so
    frozen weights and statistics stay byte-for-byte unchanged.
    """

    def __init__(self, decay: float = 0.9995, ramp_steps: float = 200.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.ramp_steps = ramp_steps
        super().__init__(use_buffers=True, avg_fn=self._average)

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():
            return current
        decay = self.decay * (1.0 - math.exp(-float(num_averaged) / self.ramp_steps))
        return averaged.lerp(current, 1.0 - decay)


class Throughput(pl.Callback):
    """Training images per second over whole epochs: data loading included, validation excluded.

    The clock runs from each train epoch's start to its last batch's end (Lightning runs the
    epoch's validation after that, before ``on_train_epoch_end``).
    """

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._epoch_start = 0.0
        self._last_batch_end = 0.0
        self._epoch_images = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = self._last_batch_end = time.perf_counter()
        self._epoch_images = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._epoch_images += len(batch[0])
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.images += self._epoch_images
        self.seconds += self._last_batch_end - self._epoch_start
        pl_module.log("train/images_per_s", self.images_per_second)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0
