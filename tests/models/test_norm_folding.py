"""Pinned BatchNorms fold into their convolutions in training steps: same outputs, same gradients."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import yolotl
from yolotl.models.freezing import apply_freeze
from yolotl.models.layers import GradAwareReLU6, GradAwareSiLU
from yolotl.models.norm_folding import FoldingConv2d, enable_norm_folding


def _detector(**settings) -> yolotl.YoloDetector:
    torch.manual_seed(0)
    detector = yolotl.create_detector("efficientnet_lite0", class_names=["a", "b"], pretrained=False, **settings)
    for norm in detector.backbone.modules():  # statistics unlike a fresh norm's, so folding is not a no-op
        if isinstance(norm, nn.BatchNorm2d):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.data.uniform_(0.5, 1.5)
            norm.bias.data.uniform_(-0.2, 0.2)
    return detector


def _unfolded(detector: nn.Module) -> nn.Module:
    """A copy whose convolutions never fold (what training did before folding existed)."""
    twin = copy.deepcopy(detector)
    for module in twin.modules():
        module.__dict__.pop("_folded_norm", None)
    return twin


def _step(detector: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    detector.zero_grad(set_to_none=True)
    out = detector(images)
    loss = sum(m.float().square().mean() for m in (*out.box_maps, *out.cls_maps))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in detector.named_parameters() if p.grad is not None}


def _norm_passes(detector: nn.Module, images: torch.Tensor) -> int:
    """How many BatchNorm passes one forward of ``detector`` runs."""
    with torch.profiler.profile() as profile:
        detector(images)
    return sum(event.name == "aten::batch_norm" for event in profile.events())


def test_every_convolution_norm_pair_of_efficientnet_lite0_is_found() -> None:
    detector = _detector()
    convs = [n for n, m in detector.backbone.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(detector.folded_norms) == len(convs) == 48
    assert all(type(detector.backbone.get_submodule(c)) is FoldingConv2d for c, _ in detector.folded_norms)
    assert all(int(m.num_batches_tracked) == 0 for m in detector.backbone.modules() if isinstance(m, nn.BatchNorm2d)), \
        "finding the pairs must not touch the norm statistics"


def test_a_pinned_norm_folds_with_the_same_loss_and_gradients() -> None:
    # float64: the two computations are the same function of the same parameters; in float32 they round
    # differently (a near-zero gradient summed in another order differs in its leading digit)
    detector = _detector().double()
    apply_freeze(detector, set(), "eval")  # every backbone norm pinned, every weight trains
    detector.train()
    plain = _unfolded(detector).train()
    images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    folded_loss, folded_grads = _step(detector, images)
    plain_loss, plain_grads = _step(plain, images)
    assert folded_grads.keys() == plain_grads.keys()
    assert any(".bn" in n for n in folded_grads), "the pinned norms' gamma and beta still learn"
    torch.testing.assert_close(folded_loss, plain_loss, rtol=1e-9, atol=0)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(folded_grads[name], grad, rtol=1e-6, atol=1e-9 * float(grad.abs().max()) + 1e-15,
                                   msg=lambda text, name=name: f"{name}: {text}")
    norm = detector.backbone.body.bn1
    assert "_skip_next" not in norm.__dict__, "every fold is consumed by its norm"
    assert _norm_passes(plain, images) - _norm_passes(detector, images) == 48, "each pinned backbone norm folded"


def test_norms_in_train_mode_and_eval_mode_models_do_not_fold() -> None:
    detector = _detector()
    plain = _unfolded(detector)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for mode in (True, False):  # norms training (nothing pinned), then the whole model in eval mode
        detector.train(mode)
        plain.train(mode)
        with torch.no_grad():
            a, b = detector(images), plain(images)
        torch.testing.assert_close(a.cls_maps[0], b.cls_maps[0], rtol=0, atol=0)
    assert int(detector.backbone.body.bn1.num_batches_tracked) == int(plain.backbone.body.bn1.num_batches_tracked) == 1


def test_a_frozen_finetune_stage_folds_too() -> None:
    detector = _detector()
    apply_freeze(detector, {n for n, _ in detector.named_parameters() if n.startswith("backbone.body.blocks.0.")
                            or n.startswith("backbone.body.conv_stem") or n.startswith("backbone.body.bn1")})
    detector.train()
    assert "backbone.body.bn1" in detector.pinned_norms
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    plain = _unfolded(detector).train()
    assert _norm_passes(plain, images) - _norm_passes(detector, images) == 3, \
        "the stem's norm and blocks.0's two fold; the training ones do not"
    torch.testing.assert_close(_step(detector, images)[0], _step(plain, images)[0], rtol=1e-4, atol=1e-6)


def test_activations_are_in_place_only_where_autograd_records_nothing() -> None:
    """In-place silu_ / hardtanh_ clone their input under autograd (one more pass over the activations);
    without autograd in place saves a new tensor."""
    detector = _detector()
    acts = [m for m in detector.modules() if isinstance(m, (nn.ReLU6, nn.SiLU))]
    assert acts and all(type(m) in (GradAwareReLU6, GradAwareSiLU) for m in acts)
    relu6 = next(m for m in acts if isinstance(m, nn.ReLU6))
    x = torch.full((1, 2, 2, 2), 7.0)
    assert relu6(x) is x and float(x.max()) == 6.0, "no autograd: in place"
    leaf = torch.tensor([[[[7.0, 3.0]]]], requires_grad=True)
    with torch.enable_grad():
        y = relu6(leaf * 1.0)
        y.sum().backward()
    assert y.tolist() == [[[[6.0, 3.0]]]]
    assert leaf.grad.tolist() == [[[[0.0, 1.0]]]]
    with torch.enable_grad(), torch.profiler.profile() as profile:
        relu6(leaf * 1.0)
    assert not any(e.name == "aten::clone" for e in profile.events()), "autograd: out of place, no clone"


def test_copies_fold_with_their_own_norms() -> None:
    detector = _detector()
    for twin in (copy.deepcopy(detector), pickle.loads(pickle.dumps(detector))):  # EMA copies, spawned workers
        conv = twin.backbone.body.conv_stem
        assert conv.__dict__["_folded_norm"] is twin.backbone.body.bn1
        assert twin.state_dict().keys() == detector.state_dict().keys()


def test_a_convolution_whose_output_is_also_used_elsewhere_is_left_alone() -> None:
    class Shortcut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y  # the raw convolution output is used twice: folding would change it

    torch.manual_seed(0)
    module = Shortcut()
    module.bn.running_mean.fill_(0.3)
    assert enable_norm_folding(module, torch.rand(1, 3, 8, 8)) == []
    assert type(module.conv) is nn.Conv2d


@pytest.mark.parametrize("backbone_name", ["resnet18"])
def test_other_timm_backbones_fold_their_pairs(backbone_name: str) -> None:
    torch.manual_seed(0)
    detector = yolotl.create_detector(backbone_name, class_names=["a"], pretrained=False)
    assert detector.folded_norms, "resnet's conv -> bn pairs fold as well"
    apply_freeze(detector, set(), "eval")
    detector.train()
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(_step(detector, images)[0], _step(_unfolded(detector).train(), images)[0], rtol=1e-4,
                               atol=1e-6)
