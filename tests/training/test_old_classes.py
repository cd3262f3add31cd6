"""Keeping old classes while learning new ones: labels mapped by name, frozen rows, distillation."""

import lightning.pytorch as pl
import pytest
import torch

from tests.models.test_transfer import save_detector
from yolotl import (
    ConfigError,
    DetectionDataModule,
    DetectionModule,
    EMA,
    Finetune,
    WarmupCosine,
    adamw,
    create_detector,
)

SYNTHETIC = {"num_train": 8, "num_val": 4, "num_test": 4, "image_size": 64}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    datamodule = DetectionDataModule(str(root / "syn"), format="synthetic", image_size=64, augment="none", batch_size=4, reading={"synthetic": SYNTHETIC}, loader={"num_workers": 0, "cache": "none"})
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    source = create_detector("efficientnet_lite0", class_names=["star", "circle"], pretrained=False, image_size=64,
                             neck_width=16)
    return save_detector(source, tmp_path_factory.mktemp("src") / "source.ckpt")


def _module(detector, data, **kwargs):
    """The module as train() builds it: the data's classes and counts, a strategy."""
    return DetectionModule(detector, data_class_names=data.class_names, train_class_counts=data.class_counts("train"),
                           strategy=Finetune(freeze_stages=5, backbone_lr_mult=0.1), **kwargs)


def _fit(module, data, epochs=1, callbacks=()):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=1, callbacks=list(callbacks))
    trainer.fit(module, datamodule=data)
    return trainer


def _kept(source_ckpt, data):
    return create_detector("efficientnet_lite0", class_names=data.class_names, init_from=source_ckpt,
                           keep_old_classes=True, image_size=64, neck_width=16)


@pytest.mark.slow
@pytest.mark.parametrize("ema", [False, True], ids=["plain", "ema"])
def test_frozen_old_class_rows_stay_byte_identical_and_labels_map_by_name(source_ckpt, data, ema):
    detector = _kept(source_ckpt, data)
    assert detector.class_names == ["star", "circle", "square", "triangle"]
    before = [(b[-1].weight.detach().clone(), b[-1].bias.detach().clone()) for b in detector.head.cls_branches]
    module = _module(detector, data, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0), old_classes="frozen")
    trainer = _fit(module, data, callbacks=[EMA(decay=0.9, ramp_steps=1.0)] if ema else [])  # EMA: its average
    assert module._label_map.tolist() == [1, 2, 3]  # circle, square, triangle -> detector classes
    assert module.loss.class_keep.tolist() == [0.0, 1.0, 1.0, 1.0]  # star: no BCE on unlabelled images
    for (w0, b0), branch in zip(before, detector.head.cls_branches):
        assert torch.equal(branch[-1].weight[0], w0[0]) and torch.equal(branch[-1].bias[0], b0[0])
        assert not torch.equal(branch[-1].weight[1:], w0[1:])
    assert "val/map" in trainer.callback_metrics


@pytest.mark.slow
def test_distilling_old_classes_from_the_source(source_ckpt, data):
    module = _module(_kept(source_ckpt, data), data, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0), old_classes="distill")
    trainer = _fit(module, data)
    assert module.distiller is not None and module.distiller.class_pairs == [(0, 0)]
    assert float(trainer.callback_metrics["train/kd_cls"]) > 0 and "train/kd_box" in trainer.callback_metrics
    assert not any(k.startswith("distiller") for k in module.state_dict())


def test_old_classes_need_a_kept_detector(data):
    detector = create_detector("efficientnet_lite0", class_names=data.class_names, pretrained=False, image_size=64,
                               neck_width=16)
    with pytest.raises(ConfigError, match="old_classes=frozen needs a detector built with init_from"):
        _module(detector, data, old_classes="frozen")
    with pytest.raises(ConfigError, match="old_classes='keep'; choose one of"):
        DetectionModule(detector, old_classes="keep")
