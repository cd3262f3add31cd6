"""YoloDetector: raw outputs per level, decoding, class reset (predict(): tests/inference/test_torch_runtime.py)."""

import pytest
import torch

from yolotl.models import create_detector
from yolotl.models.head import class_prior


@pytest.fixture(scope="module")
def detector():
    return create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=128, neck_width=16)


def test_forward_returns_raw_maps_per_stride(detector):
    out = detector(torch.rand(2, 3, 128, 96))
    assert [tuple(m.shape) for m in out.box_maps] == [(2, 64, 16, 12), (2, 64, 8, 6), (2, 64, 4, 3)]
    assert [tuple(m.shape) for m in out.cls_maps] == [(2, 3, 16, 12), (2, 3, 8, 6), (2, 3, 4, 3)]
    boxes, scores = detector.decode(out)
    assert boxes.shape == (2, 16 * 12 + 8 * 6 + 4 * 3, 4) and scores.shape[-1] == 3
    assert float(scores.min()) >= 0 and float(scores.max()) <= 1


def test_class_logits_start_at_the_share_of_points_an_object_covers(detector):
    """5 objects over 3 classes at 128 px: stride 8 (256 points) 5/3/256, stride 32 (16 points) capped at 0.01."""
    maps = detector(torch.rand(1, 3, 128, 128)).cls_maps
    starts = [float(m.sigmoid().mean()) for m in maps]
    assert starts[0] == pytest.approx(5 / 3 / 256, rel=0.1)
    assert starts[2] == pytest.approx(0.01, rel=0.1)
    assert class_prior(80, 52 * 52) == pytest.approx(5 / 80 / 2704) and class_prior(3, None) == 0.01


def test_reset_classes_swaps_only_the_class_layers():
    detector = create_detector("resnet18", num_classes=3, pretrained=False, image_size=64, neck_width=16)
    box_before = [p.clone() for p in detector.head.box_branches.parameters()]
    detector.reset_classes(5, ["a", "b", "c", "d", "e"])
    out = detector(torch.rand(1, 3, 64, 64))
    assert all(m.shape[1] == 5 for m in out.cls_maps)
    assert all(torch.equal(a, b) for a, b in zip(box_before, detector.head.box_branches.parameters()))
    assert detector.class_names == ["a", "b", "c", "d", "e"] and detector.config.num_classes == 5
