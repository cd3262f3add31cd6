"""The one Trainer assembly (yolotl.api.trainer): what the machine decides (GPU present, bf16 or 16-mixed),
and the run's callbacks, loggers and atomic checkpoint writes on the Trainer yolotl-train and bench/gpu.py get."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from yolotl import ConfigError
from yolotl.api import config_dir
from yolotl.api.trainer import build_trainer, device_settings
from yolotl.training.checkpoint_io import AtomicCheckpointIO

GPU_BF16 = OmegaConf.create({"accelerator": "gpu", "precision": "bf16-mixed"})


def _cuda(monkeypatch: pytest.MonkeyPatch, *, available: bool, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)


def test_bf16_on_a_gpu_without_bfloat16_becomes_16_mixed(monkeypatch, caplog):
    _cuda(monkeypatch, available=True, bf16=False)
    with caplog.at_level(logging.INFO, logger="yolotl.train"):
        assert device_settings(GPU_BF16) == {"precision": "16-mixed"}
    assert "no bfloat16: precision bf16-mixed -> 16-mixed" in caplog.text
    _cuda(monkeypatch, available=True, bf16=True)
    assert device_settings(GPU_BF16) == {}  # the configured bf16-mixed stays


def test_a_gpu_config_without_a_gpu_stops_in_one_line(monkeypatch):
    _cuda(monkeypatch, available=False)
    with pytest.raises(ConfigError, match="trainer=gpu .*no CUDA GPU.*trainer=default"):
        device_settings(GPU_BF16)
    assert device_settings(OmegaConf.create({"accelerator": "cpu", "precision": "bf16-mixed"})) == {}


def test_the_trainer_gets_the_runs_callbacks_loggers_and_atomic_checkpoints(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={tmp_path}", "trainer.accelerator=cpu"])
    marker = pl.Callback()
    trainer = build_trainer(cfg, tmp_path, [marker])
    assert marker in trainer.callbacks and trainer.default_root_dir == str(tmp_path)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert any(isinstance(logger, pl.loggers.CSVLogger) for logger in trainer.loggers)
    quiet = build_trainer(cfg, tmp_path, [], logger=False, max_epochs=2)  # the caller's settings win
    assert quiet.loggers == [] and quiet.max_epochs == 2
