"""Mixed precision: loss, assigner and decoding under bf16 autocast; the device settings of trainer=gpu."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

from tests.training.conftest import fit
from yolotl import ConfigError, DetectionModule
from yolotl.api.train_run import _device_settings
from yolotl.models import create_detector


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.values.append(float(outputs["loss"]))


def test_a_bf16_mixed_fit_on_the_cpu_learns_with_finite_losses():
    pl.seed_everything(0)
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    losses = _Losses()
    trainer = fit(DetectionModule(detector, lr=1e-2, warmup_epochs=0), [losses], epochs=15, precision="bf16-mixed")
    assert losses.values and all(math.isfinite(v) for v in losses.values)
    assert float(trainer.callback_metrics["val/map_50"]) > 0.5  # 0.85 when written (32-true: similar)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_trainer_gpu_without_a_gpu_stops_in_one_line():
    with pytest.raises(ConfigError, match="trainer=gpu .*no CUDA GPU.*trainer=default"):
        _device_settings(OmegaConf.create({"accelerator": "gpu", "precision": "bf16-mixed"}))
    assert _device_settings(OmegaConf.create({"accelerator": "cpu", "precision": "bf16-mixed"})) == {}
