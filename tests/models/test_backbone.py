"""TimmBackbone: widths/strides from feature_info, stage assignment, the frozen (no-autograd, bf16) forward pass.

Freezing itself is `apply_freeze`'s, on the whole detector: tests/models/test_freezing.py."""

import pytest
import timm
import torch

from yolotl.errors import BackboneError
from yolotl.models.backbone import TimmBackbone

BACKBONES = ["efficientnet_lite0", "resnet18", "convnext_atto", "mobilenetv3_small_100"]


@pytest.fixture(scope="module", params=BACKBONES)
def backbone(request):
    return TimmBackbone(request.param)


def test_channels_and_strides_come_from_feature_info(backbone):
    info = timm.create_model(backbone.name, features_only=True).feature_info
    by_stride = {r: c for r, c in zip(info.reduction(), info.channels())}
    assert backbone.strides == [8, 16, 32]
    assert backbone.channels == [by_stride[s] for s in (8, 16, 32)]
    features = backbone(torch.rand(1, 3, 96, 128))
    for feature, stride, channels in zip(features, backbone.strides, backbone.channels):
        assert feature.shape == (1, channels, 96 // stride, 128 // stride)


def test_every_parameter_belongs_to_exactly_one_stage(backbone):
    counted = sum(sum(p.numel() for p in backbone.stage_parameters(s)) for s in range(backbone.num_stages))
    assert counted == sum(p.numel() for p in backbone.parameters())
    # deeper stages come later: the last stage is never empty
    assert sum(p.numel() for p in backbone.stage_parameters(backbone.num_stages - 1)) > 0


def test_fully_frozen_backbone_runs_without_autograd():
    backbone = TimmBackbone("mobilenetv3_small_100")
    backbone.requires_grad_(False)  # what freezing the part 'backbone' does to it
    features = backbone(torch.rand(1, 3, 64, 64))
    assert all(not f.requires_grad for f in features)


def test_frozen_bf16_runs_only_training_steps_in_bfloat16():
    backbone = TimmBackbone("efficientnet_lite0").eval()
    backbone.requires_grad_(False)
    x = torch.rand(2, 3, 96, 96)
    reference = backbone(x)  # float32
    backbone.frozen_bf16 = True
    with torch.no_grad():  # validation and predict: float32, identical to the reference
        assert all(torch.equal(a, b) for a, b in zip(backbone(x), reference))
    features = backbone(x)  # a training step (grad enabled): bfloat16 inside, float32 out
    assert all(f.dtype == torch.float32 and not f.requires_grad for f in features)
    assert not all(torch.equal(a, b) for a, b in zip(features, reference))
    for a, b in zip(features, reference):
        assert (a - b).norm() / b.norm() < 0.05  # bf16 rounding, not a different network


def test_frozen_backbone_keeps_a_trainers_autocast():
    backbone = TimmBackbone("mobilenetv3_small_100").eval()
    backbone.requires_grad_(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # trainer.precision=bf16-mixed
        features = backbone(torch.rand(1, 3, 64, 64))
    assert all(f.dtype == torch.bfloat16 for f in features)


def test_unknown_backbone_names_close_matches():
    with pytest.raises(BackboneError, match="efficientnet_lite0"):
        TimmBackbone("efficientnet_lit0")


@pytest.mark.parametrize(
    ("typo", "wanted"),
    [("resnet_999", "resnet50"), ("resnet", "resnet18"), ("rsnet50", "resnet50"),
     ("efficientnet_lit0", "efficientnet_lite0"), ("EfficientNet_Lite0", "efficientnet_lite0"),
     ("vit_tiny", "vit_tiny_patch16_224"), ("convnxt_tiny", "convnext_tiny")],
)
def test_unknown_backbone_suggestions_include_the_family(typo, wanted):
    with pytest.raises(BackboneError, match="Did you mean") as err:
        TimmBackbone(typo)
    suggested = str(err.value).split("Did you mean: ")[1].split("?")[0].split(", ")
    assert wanted in suggested and len(suggested) <= 6


def test_backbone_without_detection_strides_is_rejected():
    # a plain ViT has one stride-16 feature map: no pyramid for the neck
    with pytest.raises(BackboneError, match="strides"):
        TimmBackbone("vit_tiny_patch16_224")
