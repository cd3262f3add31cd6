"""TorchDetector: a YoloDetector's predict() (every input kind, original pixels, class filter), yolotl.load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import yolotl
from tests.models.test_transfer import save_detector
from yolotl.inference.torch_runtime import TorchDetector
from yolotl.models import create_detector
from yolotl.models.freezing import apply_freeze, select


@pytest.fixture(scope="module")
def runtime() -> TorchDetector:
    detector = create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=128, neck_width=16)
    return TorchDetector(detector)


@pytest.mark.parametrize("kind", ["path", "numpy", "pil", "tensor", "gray"])
def test_predict_accepts_every_input_kind_and_returns_original_pixels(runtime, tmp_path, kind):
    array = np.random.default_rng(0).integers(0, 255, size=(90, 200, 3), dtype=np.uint8)
    inputs = {
        "numpy": array,
        "pil": Image.fromarray(array),
        "tensor": torch.from_numpy(array).permute(2, 0, 1).float() / 255,
        "gray": array[:, :, 0],
    }
    if kind == "path":
        Image.fromarray(array).save(tmp_path / "image.png")
        inputs["path"] = str(tmp_path / "image.png")
    result = runtime.predict(inputs[kind], score_threshold=0.0, max_detections=20)
    assert len(result) == 1
    boxes = result[0]["boxes"]
    assert boxes.shape == (20, 4) and result[0]["labels"].dtype == torch.int64
    assert float(boxes[:, [0, 2]].max()) <= 200 and float(boxes[:, [1, 3]].max()) <= 90
    assert float(boxes.min()) >= 0


def test_predict_takes_a_batch(runtime):
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 128, 3), np.uint8)]
    assert len(runtime.predict(images, score_threshold=0.0)) == 2
    assert len(runtime.predict(torch.rand(3, 3, 64, 64), score_threshold=0.0)) == 3


def test_classes_filter_before_nms_and_the_detection_cap(runtime):
    """With max_detections=1 each class asked for still gets its best box (filtering after the cut would
    leave most classes empty)."""
    image = np.random.default_rng(1).integers(0, 255, size=(128, 128, 3), dtype=np.uint8)
    for name, index in (("0", 0), ("1", 1), ("2", 2)):
        (det,) = runtime.predict([image], score_threshold=0.0, max_detections=1, classes=[name])
        assert det["labels"].tolist() == [index]


def test_detect_is_the_detectors_own_in_eval_mode(runtime):
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    want = runtime.detector.eval().detect(images, score_threshold=0.1)
    for got, expected in zip(runtime.detect(images, score_threshold=0.1), want):
        assert torch.equal(got["boxes"], expected["boxes"]) and torch.equal(got["scores"], expected["scores"])


def test_a_training_detector_predicts_in_eval_mode_and_keeps_its_state():
    """In the middle of training: predict() changes no statistic and leaves the modes (pinned norms too) as
    they were."""
    detector = create_detector("mobilenetv3_small_100", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    apply_freeze(detector, select(detector, "stage:0"))
    detector.train()
    modes = {name: module.training for name, module in detector.named_modules()}
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    TorchDetector(detector).predict(np.zeros((50, 70, 3), np.uint8))
    assert {name: module.training for name, module in detector.named_modules()} == modes
    assert any(not training for training in modes.values())  # the pinned norms
    assert all(torch.equal(before[k], v) for k, v in detector.state_dict().items())


def test_yolotl_load_gives_a_torch_detector_around_the_trained_module(tmp_path):
    torch.manual_seed(0)
    trained = create_detector("mobilenetv3_small_100", class_names=["cat", "dog"], pretrained=False, image_size=64,
                              neck_width=16).eval()
    loaded = yolotl.load(save_detector(trained, tmp_path / "best.ckpt"))
    assert isinstance(loaded, yolotl.TorchDetector) and isinstance(loaded.detector, yolotl.YoloDetector)
    assert (loaded.class_names, loaded.num_classes, loaded.image_size, loaded.segments) == (["cat", "dog"], 2, 64, False)
    assert not loaded.detector.training and loaded.device == torch.device("cpu")
    assert repr(loaded) == "TorchDetector(mobilenetv3_small_100, 2 classes, cpu)"
    image = np.random.default_rng(3).integers(0, 255, size=(50, 90, 3), dtype=np.uint8)
    want = TorchDetector(trained).predict(image, score_threshold=0.0)[0]
    got = loaded.predict(image, score_threshold=0.0)[0]
    assert torch.equal(got["boxes"], want["boxes"]) and torch.equal(got["labels"], want["labels"])
