"""Training callbacks: EMA of the weights and throughput measurement (strategies: ``strategies.py``)."""

from __future__ import annotations

import logging
import math
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import WeightAveraging

from yolotl.errors import ConfigError

log = logging.getLogger("yolotl.training")


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
