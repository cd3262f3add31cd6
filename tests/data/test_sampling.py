"""TrainSampler: seeded per epoch (resume-safe), repeat factors, mosaic switched off at the end."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from yolotl.data import SampleKey, TrainSampler, repeat_factors
from yolotl.errors import ConfigError


def test_repeat_factors_hand_case() -> None:
    # 10 images: class 0 in all, class 1 in one image (f = 0.1), image 9 is background
    classes = [[0]] * 8 + [[0, 1], []]
    factors = repeat_factors(classes, threshold=0.5)
    assert factors[:8].tolist() == [1.0] * 8
    assert factors[8] == pytest.approx(math.sqrt(0.5 / 0.1))
    assert factors[9] == 1.0
    assert repeat_factors(classes, threshold=0.1)[8] == pytest.approx(1.0)  # f == t: no repeat
    with pytest.raises(ConfigError, match="repeat_threshold"):
        repeat_factors(classes, threshold=0.0)


def test_same_epoch_same_plan_and_epochs_differ() -> None:
    a = TrainSampler(50, seed=3, mosaic=0.5, mixup=0.2)
    b = TrainSampler(50, seed=3, mosaic=0.5, mixup=0.2)
    a.set_epoch(4)
    b.set_epoch(4)  # a resumed run's fresh sampler at the same epoch
    assert list(a) == list(b)
    b.set_epoch(5)
    assert list(a) != list(b)
    keys = list(a)
    assert sorted(k.index for k in keys) == list(range(50))
    assert all(isinstance(k, SampleKey) for k in keys)
    assert 0 < sum(bool(k.mosaic) for k in keys) < 50
    assert all(len(k.mosaic) in (0, 3) for k in keys)
    assert 0 < sum(k.mixup >= 0 for k in keys) < 50


def test_mosaic_switched_off_from_mosaic_until() -> None:
    sampler = TrainSampler(20, mosaic=1.0, mosaic_until=3)
    sampler.set_epoch(2)
    assert all(k.mosaic for k in sampler)
    sampler.set_epoch(3)
    assert not any(k.mosaic for k in sampler) and not sampler.mosaic_active


def test_under_ddp_lightnings_wrapper_reaches_the_plan_and_ranks_share_it() -> None:
    """Lightning wraps a custom sampler in DistributedSamplerWrapper under DDP and calls set_epoch on
    the wrapper only; since lightning 2.6.1 (our minimum) it forwards the epoch to our sampler."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    ranks = [DistributedSamplerWrapper(TrainSampler(20, seed=1, mosaic=1.0, mosaic_until=2),
                                       num_replicas=2, rank=rank, shuffle=False) for rank in (0, 1)]
    plans = {}
    for epoch in range(3):
        for rank in ranks:
            rank.set_epoch(epoch)
        plans[epoch] = [list(rank) for rank in ranks]
        shared = TrainSampler(20, seed=1, mosaic=1.0, mosaic_until=2)
        shared.set_epoch(epoch)
        assert sorted(plans[epoch][0] + plans[epoch][1]) == sorted(shared)
    assert plans[0] != plans[1]  # a new plan every epoch, not the first one repeated
    assert all(k.mosaic for rank in plans[1] for k in rank)
    assert not any(k.mosaic for rank in plans[2] for k in rank)  # close_mosaic reached under DDP


def test_repeat_factor_sampling_oversamples_rare_images_with_fixed_length() -> None:
    factors = np.array([1.0] * 18 + [3.0, 2.5])
    sampler = TrainSampler(20, seed=0, factors=factors)
    assert len(sampler) == round(factors.sum()) == 24
    counts = np.zeros(20)
    for epoch in range(40):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert len(keys) == len(sampler)
        np.add.at(counts, [k.index for k in keys], 1)
    per_epoch = counts / 40
    assert per_epoch[:18].mean() == pytest.approx(1.0, abs=0.1)
    assert per_epoch[18] == pytest.approx(3.0, abs=0.3) and per_epoch[19] == pytest.approx(2.5, abs=0.3)


class _Recorder(pl.Callback):
    def __init__(self) -> None:
        self.mosaic_per_epoch: list[bool] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        self.mosaic_per_epoch.append(any(k.mosaic for k in sampler))


class _KeyIndex(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, key: SampleKey) -> int:
        return key.index


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        return (batch.float().mean() - self.weight).pow(2)

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.slow
def test_lightning_sets_the_epoch_so_close_mosaic_takes_effect() -> None:
    """Lightning calls set_epoch on our sampler: mosaic is on for 2 epochs, then off for the last 2."""
    sampler = TrainSampler(8, mosaic=1.0, mosaic_until=2)
    loader = torch.utils.data.DataLoader(_KeyIndex(), batch_size=4, sampler=sampler,
                                         collate_fn=torch.tensor)
    recorder = _Recorder()
    trainer = pl.Trainer(max_epochs=4, callbacks=[recorder], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(_Tiny(), train_dataloaders=loader)
    assert recorder.mosaic_per_epoch == [True, True, False, False]
