"""The training ``Trainer`` of a composed config, built in one place.

``cfg.trainer`` with the run's callbacks, the loggers of ``cfg.logger``, checkpoints written atomically
and the settings the machine decides (a GPU config needs a GPU; bf16 becomes 16-mixed on a GPU without
bfloat16). :func:`yolotl.train` and ``bench/gpu.py`` both build their Trainer here, so a benchmark fit
runs on the Trainer a ``yolotl-train`` fit gets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from yolotl.errors import ConfigError
from yolotl.training.checkpoint_io import AtomicCheckpointIO

__all__ = ["build_trainer", "device_settings"]

log = logging.getLogger("yolotl.train")


def build_trainer(cfg: DictConfig, run_dir: str | Path, callbacks: Sequence[pl.Callback] = (),
                  **settings: Any) -> pl.Trainer:
    """``cfg.trainer`` instantiated with ``callbacks``, ``cfg.logger``'s loggers, ``run_dir`` as its root,
    atomic checkpoint IO and :func:`device_settings`. ``settings`` (Trainer arguments) win over all of
    these; with ``logger`` among them no configured logger is built."""
    options = {"default_root_dir": str(run_dir), **device_settings(cfg.trainer), **_checkpoint_io(cfg.trainer),
               **settings}
    if "logger" not in options:
        options["logger"] = _loggers(cfg)
    return instantiate(cfg.trainer, callbacks=list(callbacks), **options)


def _loggers(cfg: DictConfig) -> list[Any]:
    """The loggers ``cfg.logger`` names; TensorBoard is skipped (said in the log) when it is not installed."""
    loggers = []
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        try:
            loggers.append(instantiate(logger_cfg))
        except (ModuleNotFoundError, InstantiationException) as err:
            if name != "tensorboard":
                raise
            log.info("TensorBoard logger skipped (%s); CSV logs are still written", err)
    return loggers


def device_settings(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer settings the machine decides: a GPU run on a machine without one stops with one line; bf16
    on a GPU without bf16 becomes 16-mixed (said in the log)."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError("trainer=gpu (trainer.accelerator=gpu), but torch sees no CUDA GPU here "
                          f"(torch {torch.__version__}); train on the CPU with trainer=default, or install a CUDA "
                          "build of torch on a GPU machine")
    precision = str(trainer_cfg.get("precision", "32-true"))
    if precision.startswith("bf16") and accelerator in ("gpu", "cuda") and not torch.cuda.is_bf16_supported():
        log.info("this GPU has no bfloat16: precision %s -> 16-mixed", precision)
        return {"precision": "16-mixed"}
    return {}


def _checkpoint_io(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Checkpoints written beside themselves and renamed into place (a kill or a full disk during a save
    keeps the previous one); a user's own ``trainer.plugins`` win."""
    if trainer_cfg.get("plugins"):
        return {}
    return {"plugins": [AtomicCheckpointIO()]}
