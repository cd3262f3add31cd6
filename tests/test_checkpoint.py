"""yolotl.load: a trained detector back from a checkpoint, and one clear error for each bad checkpoint."""

from __future__ import annotations

import argparse

import pytest
import torch

import yolotl
from yolotl import CheckpointError, DetectionModule
from yolotl.models.checkpoint import CHECKPOINT_FORMAT, checkpoint_entry


@pytest.fixture(scope="module")
def detector():
    return yolotl.create_detector("efficientnet_lite0", class_names=["a", "b"], pretrained=False, image_size=64)


def _save(detector, path, **changes):
    checkpoint = {
        "state_dict": {f"detector.{k}": v for k, v in detector.state_dict().items()},
        "yolotl": checkpoint_entry(detector) | changes,
        "epoch": 3,
    }
    torch.save(checkpoint, path)
    return path


def test_load_round_trip_uses_weights_only_and_no_training_code(detector, tmp_path):
    path = _save(detector, tmp_path / "best.ckpt")
    loaded = yolotl.load(path).detector
    assert not loaded.training and loaded.class_names == ["a", "b"] and loaded.config.image_size == 64
    for key, value in detector.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert DetectionModule.detector_from_checkpoint(path).class_names == ["a", "b"]
    torch.load(path, weights_only=True)  # the file itself needs no pickle beyond plain containers


def test_cpu_neck_head_and_nms_free_options_come_back_from_the_checkpoint(tmp_path):
    """The architecture options live in the checkpoint: the reloaded model predicts what the trained one did."""
    torch.manual_seed(0)
    options = dict(neck="light", head="light", reg_max=1, nms_free=True)
    detector = yolotl.create_detector("mobilenetv3_small_100", class_names=["a", "b"], pretrained=False,
                                      image_size=64, neck_width=16, **options).eval()
    loaded = yolotl.load(_save(detector, tmp_path / "light.ckpt")).detector
    assert {k: getattr(loaded.config, k) for k in options} == options
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = detector(images, aux=True), loaded(images, aux=True)
    for a, b in zip([*want.box_maps, *want.aux_cls_maps], [*got.box_maps, *got.aux_cls_maps]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.ckpt", "not found"),
        (lambda p: p, "it is a folder"),
        (lambda p: (p / "bad.ckpt").write_bytes(b"not a checkpoint at all") and p / "bad.ckpt", "corrupt or truncated"),
        (lambda p: torch.save({"state_dict": {}}, p / "plain.ckpt") or p / "plain.ckpt", "not a yolotl training checkpoint"),
        (lambda p: torch.save([1, 2], p / "list.ckpt") or p / "list.ckpt", "not a yolotl checkpoint"),
        (lambda p: torch.save({"x": argparse.Namespace(lr=0.1)}, p / "pickle.ckpt") or p / "pickle.ckpt",
         "weights_only loading refuses"),
    ],
    ids=["missing", "folder", "garbage", "plain-lightning", "not-a-dict", "arbitrary-pickle"],
)
def test_bad_checkpoints_get_one_clear_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(CheckpointError, match=message) as err:
        yolotl.load(path)
    assert str(path) in str(err.value)


def test_checkpoint_from_another_format_version_names_both_versions(detector, tmp_path):
    path = _save(detector, tmp_path / "future.ckpt", format=CHECKPOINT_FORMAT + 1, yolotl_version="9.0.0")
    with pytest.raises(CheckpointError, match=rf"format {CHECKPOINT_FORMAT + 1}.*yolotl 9.0.0.*reads format 1"):
        yolotl.load(path)


def test_truncated_checkpoint_is_reported_as_corrupt(detector, tmp_path):
    path = _save(detector, tmp_path / "full.ckpt")
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        yolotl.load(cut)


def test_weights_that_do_not_fit_the_architecture(detector, tmp_path):
    path = _save(detector, tmp_path / "other.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["yolotl"]["detector"]["num_classes"] = 5
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="do not fit the stored architecture"):
        yolotl.load(path)
