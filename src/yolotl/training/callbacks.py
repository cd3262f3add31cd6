"""Training callbacks: EMA of the weights, throughput measurement and the one-line validation log
(strategies: ``strategies.py``)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import AveragedModel

from yolotl.allocator import default_allocation, reuse_freed_memory
from yolotl.errors import ConfigError
from yolotl.evaluation.score_line import BRIEF, score_line
from yolotl.training.lightning_internals import drop_timer_state, set_average_model

log = logging.getLogger("yolotl.training")


class EMA(WeightAveraging):
    """Exponential moving average of the detector's weights, with a decay that ramps up over the first updates.

    Only ``pl_module.detector`` is averaged (and copied): losses, metrics and a distillation
    teacher stay out of the average. Lightning's ``WeightAveraging`` swaps the average in for
    validation and at the end of training; checkpoints get the average as their ``detector.*``
    ``state_dict`` entries (the weights :func:`yolotl.load` reads), the trained weights under
    ``current_model_state`` (for resuming). The ramp (decay * (1 - exp(-n / ramp_steps))) keeps
    early, random weights from dominating short fine-tuning runs. ``lerp`` leaves equal tensors
    bit-identical, so frozen weights and statistics stay byte-for-byte unchanged.
    """

    def __init__(self, decay: float = 0.9995, ramp_steps: float = 200.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.ramp_steps = ramp_steps
        super().__init__(**self.averaging_settings())

    def averaging_settings(self) -> dict[str, Any]:
        """How the average is kept (norm statistics averaged too, the ramped decay): given to Lightning's
        ``WeightAveraging`` and to the detector-only ``AveragedModel`` of :meth:`setup`, from one place."""
        return {"use_buffers": True, "avg_fn": self._average}

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():
            return current
        decay = self.decay * (1.0 - math.exp(-float(num_averaged) / self.ramp_steps))
        return averaged.lerp(current, 1.0 - decay)

    # Lightning's hooks average ``pl_module``; each one below hands them the detector instead.

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # WeightAveraging.setup averages all of pl_module: here its AveragedModel is built of the detector only.
        if stage == "fit":
            average = AveragedModel(_averaged(pl_module), device=pl_module.device, **self.averaging_settings())
            set_average_model(self, average)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        super().on_train_batch_end(trainer, _averaged(pl_module), outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, _averaged(pl_module))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, _averaged(pl_module))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_start(trainer, _averaged(pl_module))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_epoch_end(trainer, _averaged(pl_module))

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)  # state_dict: "module.*" of the average, unprefixed
        if "current_model_state" in checkpoint:
            averaged = {_PREFIX + name: value for name, value in checkpoint["state_dict"].items()}
            current = checkpoint["current_model_state"]
            checkpoint["state_dict"] = {name: averaged.get(name, value) for name, value in current.items()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        detector_only = {key: _detector_state(checkpoint[key]) for key in ("state_dict", "current_model_state")
                         if key in checkpoint}
        super().on_load_checkpoint(trainer, _averaged(pl_module), {**checkpoint, **detector_only})


_PREFIX = "detector."


def _detector_state(state: dict[str, Any]) -> dict[str, Any]:
    return {name[len(_PREFIX) :]: value for name, value in state.items() if name.startswith(_PREFIX)}


def _averaged(pl_module: pl.LightningModule) -> torch.nn.Module:
    """What EMA averages: the module's detector."""
    detector = getattr(pl_module, "detector", None)
    if not isinstance(detector, torch.nn.Module):
        raise ConfigError(f"EMA averages the detector of a yolotl.DetectionModule; {type(pl_module).__name__} has none")
    return detector


class ReuseFreedMemory(pl.Callback):
    """On a CPU, keep freed tensors' memory in the heap for the next step while the trainer runs
    (:func:`yolotl.allocator.reuse_freed_memory`), and glibc's defaults again, the free pages handed back,
    when it is done.

    glibc hands every block over 32 MB back to the system when it is freed, so each training step
    page-faults and zeroes its large activations anew; reusing them took an ``end_to_end`` step at 416
    px, batch 16, from 3.2-4.0 s to 2.4-2.5 s on the project's 2-core CPU (design note 47). Not on GPUs
    (their tensors are not malloc's), nor where the C library is not glibc (logged once).
    """

    def __init__(self) -> None:
        self._active = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._active or not isinstance(trainer.accelerator, CPUAccelerator):
            return
        self._active = reuse_freed_memory()
        if not self._active:
            log.info("ReuseFreedMemory: the C library is not glibc; the allocator is left as it is")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._active:
            default_allocation()
            self._active = False


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


class ValidationLog(pl.Callback):
    """One INFO line per validation of a fit: epoch, val mAP50-95 and mAP50 (and mask mAP), the best so far.

    ``epoch 3/6  val mAP50-95 0.4121  mAP50 0.8350  (best 0.4121 at epoch 3)`` (the scores as
    :func:`yolotl.evaluation.score_line.score_line` writes them); "best" follows
    ``monitor`` (``val/map``, higher is better, as the checkpoint callback picks ``best.ckpt``).
    """

    def __init__(self, monitor: str = "val/map", logger: logging.Logger | None = None) -> None:
        self.monitor = monitor
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._log = logger or log

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = trainer.callback_metrics
        if self.monitor not in metrics or trainer.global_rank != 0:
            return
        score = float(metrics[self.monitor])
        epoch = trainer.current_epoch + 1
        if math.isfinite(score) and (self.best is None or score > self.best):
            self.best, self.best_epoch = score, epoch
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        best = "" if self.best is None else f"  (best {self.best:.4f} at epoch {self.best_epoch})"
        values = {key: float(metrics[f"val/{key}"]) for key in BRIEF if f"val/{key}" in metrics}
        self._log.info("epoch %d%s  %s%s", epoch, total, score_line("val", values), best)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_epoch = state_dict.get("best_epoch")


class TimeLimitPerJob(pl.Callback):
    """``trainer.max_time`` counts per job: a resumed run gets the whole limit again.

    Lightning's Timer saves the time spent in the checkpoint and restores it, so a run stopped by
    ``max_time`` and resumed with the same limit stopped again at once; a cluster job resuming the
    previous one wants its own time. Dropping the Timer's saved state before it is restored does it.
    """

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        drop_timer_state(trainer, checkpoint)


def stop_reason(trainer: pl.Trainer) -> str:
    """Why the fit ended: ``max_epochs``, ``max_steps``, ``early_stop``, ``max_time`` or ``interrupted``."""
    from lightning.pytorch.callbacks import EarlyStopping, Timer

    if trainer.interrupted:
        return "interrupted"
    if any(isinstance(c, EarlyStopping) and c.stopped_epoch for c in trainer.callbacks):
        return "early_stop"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and trainer.max_epochs is not None and trainer.current_epoch < trainer.max_epochs:
        remaining = timer.time_remaining("train")
        if remaining is not None and remaining <= 0:
            return "max_time"
    return "max_epochs"
