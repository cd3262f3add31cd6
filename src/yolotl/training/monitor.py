"""Monitoring that adjusts the run: early stopping sized to the budget, and a warning when validation
stalls while the training loss keeps falling (the detector fits its training images, not the task)."""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping

from yolotl.errors import ConfigError

log = logging.getLogger("yolotl.training")
_MONITOR_NAMES = {"val/map": "val mAP50-95", "val/miou": "val mIoU"}  # how the warning names the score


def budget_patience(max_epochs: int | None) -> int:
    """Validations without a better val mAP before stopping: a quarter of the budget, at least 5
    (short runs are noisy; mosaic closes for the last epochs and often lifts the score there)."""
    if not max_epochs or max_epochs < 0:
        return 10
    return max(5, math.ceil(max_epochs / 4))


class EarlyStop(EarlyStopping):
    """Lightning's EarlyStopping on ``val/map`` (higher is better) with ``patience="auto"``:
    :func:`budget_patience` of the Trainer's ``max_epochs``, resolved when the fit starts. Checked
    after each validation, so a fit without validation (``trainer.limit_val_batches=0``) is not stopped."""

    def __init__(self, monitor: str = "val/map", patience: int | str = "auto", min_delta: float = 0.0) -> None:
        if patience != "auto" and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
            raise ConfigError(f"early stopping patience must be 'auto' or a whole number >= 1, got {patience!r}")
        self.auto_patience = patience == "auto"
        super().__init__(monitor=monitor, mode="max", patience=10 if self.auto_patience else patience,
                         min_delta=min_delta, check_finite=True, verbose=False,
                         check_on_train_epoch_end=False)  # after each validation; a fit without one runs on

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.auto_patience:
            self.patience = budget_patience(trainer.max_epochs)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning's check, except that a stop saving fewer than half a patience of epochs is not taken:
        the budget's last epochs (learning rate at its floor, mosaic off) are where the schedule ends best,
        and they cost little (seen on tree_counting: a stop at epoch 27 of 30 skipped the mosaic-free ones)."""
        already = trainer.should_stop
        super().on_validation_end(trainer, pl_module)
        left = (trainer.max_epochs or 0) - (trainer.current_epoch + 1)
        if trainer.should_stop and not already and self.stopped_epoch == trainer.current_epoch and left < self.patience / 2:
            trainer.should_stop, self.stopped_epoch = False, 0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopped_epoch and trainer.global_rank == 0:
            log.info("early stop after epoch %d of %s: val mAP50-95 had not improved for %d validations "
                     "(best %.4f; patience %d)", self.stopped_epoch + 1, trainer.max_epochs, self.wait_count,
                     float(self.best_score), self.patience)


class StallWarning(pl.Callback):
    """Warn once when val mAP has not improved for ``window`` validations while the training loss
    fell by ``loss_drop`` (a share) since the best one, naming the settings to change.

    ``window="auto"``: half the early-stopping patience for the budget (:func:`budget_patience`).
    No stall is judged in the first ``settle`` share of ``max_epochs``: early validations are noisy
    (warmup, a small val split) and the loss falls anyway; on thermal_dogs_people (41 val images) val
    mAP held still for epochs 4-8 of 30 on two seeds, then rose to 0.50 and 0.51.
    """

    def __init__(self, monitor: str = "val/map", window: int | str = "auto", loss_drop: float = 0.1,
                 settle: float = 1 / 3) -> None:
        if not 0.0 <= settle < 1.0:
            raise ConfigError(f"stall_warning.settle={settle!r} is a share of the epochs: use 0 <= settle < 1")
        self.monitor = monitor
        self.window = window
        self.loss_drop = loss_drop
        self.settle = settle
        self.best: float | None = None
        self.best_epoch = 0
        self.loss_at_best: float | None = None
        self.since_best = 0
        self.warned = False

    def _window(self, trainer: pl.Trainer) -> int:
        if self.window == "auto":
            return max(3, budget_patience(trainer.max_epochs) // 2)
        return int(self.window)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        loss = trainer.callback_metrics.get("train/loss_epoch")
        loss = float(loss) if loss is not None else None
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self.loss_at_best, self.since_best = score, trainer.current_epoch + 1, loss, 0
            return
        self.since_best += 1
        if self.warned or self.since_best < self._window(trainer) or loss is None or not self.loss_at_best:
            return
        budget = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 0
        if trainer.current_epoch + 1 < self.settle * budget:
            return
        if loss <= self.loss_at_best * (1.0 - self.loss_drop):
            self.warned = True
            if getattr(trainer, "global_rank", 0) != 0:
                return
            log.warning(
                "%s has not improved for %d epochs (best %.4f at epoch %d) while the training loss "
                "fell from %.3f to %.3f: the model is fitting its training images, not the task. Try "
                "augment=heavy, strategy=feature_extract (fewer trainable weights), a lower model.module.optimizer.lr, "
                "or fewer trainer.max_epochs; best.ckpt keeps the best epoch",
                _MONITOR_NAMES.get(self.monitor, self.monitor), self.since_best, self.best, self.best_epoch,
                self.loss_at_best, loss,
            )

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("best", "best_epoch", "loss_at_best", "since_best", "warned")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for key, value in state_dict.items():
            setattr(self, key, value)
