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


@pytest.mark.parametrize("neck, head, reg_max", [("light", "decoupled", 16), ("pan", "light", 16),
                                                  ("light", "light", 1)])
def test_cpu_options_give_the_same_outputs_in_fewer_operations(neck, head, reg_max):
    """Each CPU-latency option keeps the output contract (maps per stride, 4 * reg_max box channels) and costs
    fewer multiply-adds than the YOLOv8-style default."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.rand(1, 3, 128, 128))
        return counter.get_total_flops()

    base = create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=128, neck_width=32)
    light = create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=128, neck_width=32,
                            neck=neck, head=head, reg_max=reg_max)
    out = light(torch.rand(2, 3, 128, 96))
    assert [tuple(m.shape) for m in out.box_maps] == [(2, 4 * reg_max, 16, 12), (2, 4 * reg_max, 8, 6),
                                                      (2, 4 * reg_max, 4, 3)]
    assert [m.shape[1] for m in out.cls_maps] == [3, 3, 3]
    assert flops(light) < 0.8 * flops(base)
    boxes, _ = light.decode(out)
    points = torch.cat([torch.stack(torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")[::-1],
                                    -1).reshape(-1, 2) * s for (h, w), s in zip([(16, 12), (8, 6), (4, 3)], [8, 16, 32])])
    # every decoded box contains its anchor point: distances are positive, with or without a distribution
    assert bool((boxes[..., :2] < points).all()) and bool((boxes[..., 2:] > points).all())


def test_unknown_neck_head_or_reg_max_is_a_config_error_naming_the_choices():
    from yolotl.errors import ConfigError

    for setting, match in (({"neck": "bifpn"}, r"neck='bifpn'.*\['pan', 'light'\]"),
                           ({"head": "shared"}, r"head='shared'.*\['decoupled', 'light'\]"),
                           ({"reg_max": 0}, "reg_max must be >= 1")):
        with pytest.raises(ConfigError, match=match):
            create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, **setting)


def test_nms_free_head_runs_its_one_to_many_branch_only_when_asked():
    detector = create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=64, neck_width=16,
                               nms_free=True)
    images = torch.rand(1, 3, 64, 64)
    assert detector(images).aux_box_maps is None and detector(images).aux_cls_maps is None
    out = detector(images, aux=True)
    assert [m.shape for m in out.aux_box_maps] == [m.shape for m in out.box_maps]
    assert [m.shape for m in out.aux_cls_maps] == [m.shape for m in out.cls_maps]
    detector.reset_classes(5, list("abcde"))
    assert all(m.shape[1] == 5 for m in detector(images, aux=True).aux_cls_maps)
    plain = create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, image_size=64, neck_width=16)
    assert plain(images, aux=True).aux_box_maps is None  # a plain head has no auxiliary branch


def test_nms_free_is_refused_for_a_segmenting_detector():
    from yolotl.errors import ConfigError

    with pytest.raises(ConfigError, match="nms_free=true is built for task=detect"):
        create_detector("mobilenetv3_small_100", num_classes=3, pretrained=False, task="segment", nms_free=True)
