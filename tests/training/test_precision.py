"""Mixed precision: loss, assigner and decoding under bf16 autocast; trainer=gpu's precision on a real GPU
(the device settings without one: tests/test_build_trainer.py)."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from tests.training.conftest import fit
from yolotl import DetectionModule, WarmupCosine, adamw
from yolotl.api import config_dir
from yolotl.api.trainer import build_trainer
from yolotl.models import create_detector


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.values.append(float(outputs["loss"]))


@pytest.mark.slow
def test_a_bf16_mixed_fit_on_the_cpu_learns_with_finite_losses():
    pl.seed_everything(0)
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    losses = _Losses()
    trainer = fit(DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0)), [losses], epochs=15, precision="bf16-mixed")
    assert losses.values and all(math.isfinite(v) for v in losses.values)
    assert float(trainer.callback_metrics["val/map_50"]) > 0.5  # 0.85 when written (32-true: similar)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trainer_gpu_on_a_gpu_runs_bf16_where_it_can_else_16_mixed(tmp_path):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["trainer=gpu", f"paths.output_dir={tmp_path}"])
    trainer = build_trainer(cfg, tmp_path, logger=False)
    assert trainer.precision == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed")
