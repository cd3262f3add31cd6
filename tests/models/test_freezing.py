"""Freezing by name: parts, stem, stages (by name and position), patterns; norm-layer policies."""

import pytest
import torch

from yolotl.errors import ConfigError
from yolotl.models import create_detector
from yolotl.models.freezing import apply_freeze, select, select_all


@pytest.fixture(scope="module")
def detector():
    return create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)


def _norms(detector, prefix):
    return {n: m for n, m in detector.named_modules() if n.startswith(prefix) and isinstance(m, torch.nn.BatchNorm2d)}


def test_parts_cover_every_parameter_once(detector):
    parts = [select(detector, p) for p in ("backbone", "neck", "head")]
    assert sum(len(p) for p in parts) == len(list(detector.parameters()))
    assert not (parts[0] & parts[1]) and not (parts[1] & parts[2])


def test_stages_by_name_and_by_position(detector):
    backbone = detector.backbone
    assert backbone.stage_names == ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]
    assert select(detector, "blocks.4") == select(detector, "stage:3") == select(detector, "stage:-2")
    every_stage = select_all(detector, [f"stage:{i}" for i in range(backbone.num_stages)])
    assert every_stage == select(detector, "backbone")
    stem = select(detector, "stem")
    assert stem == {"backbone.body.conv_stem.weight", "backbone.body.bn1.weight", "backbone.body.bn1.bias"}
    assert stem < select(detector, "stage:0")  # the stem trains and freezes with the first stage
    assert all(n.startswith("backbone.body.blocks.3.") or n.startswith("backbone.body.blocks.4.")
               for n in select(detector, "blocks.4"))  # blocks.3 feeds the stride-16 tap


def test_patterns(detector):
    cls_layers = select(detector, "head.cls_branches.*.2.*")
    assert cls_layers == {f"head.cls_branches.{i}.2.{k}" for i in range(3) for k in ("weight", "bias")}


@pytest.mark.parametrize(("selector", "message"), [
    ("blocks.9", r"unknown freeze selector 'blocks.9'; choose from \['backbone', 'neck', 'head', 'stem', 'blocks.0'"),
    ("stage:7", r"has stages stage:0 .. stage:4"),
    ("neck.nothing.*", r"matches no parameter; parameter names look like 'backbone.body.conv_stem.weight'"),
])
def test_bad_selectors_name_the_choices(detector, selector, message):
    with pytest.raises(ConfigError, match=message):
        select(detector, selector)


def test_norm_policies(detector):
    frozen = select_all(detector, ["stage:0", "stage:1"])
    stage0_norm = "backbone.body.bn1"
    deep_norm = next(n for n in _norms(detector, "backbone.body.blocks.6"))
    neck_norm = next(iter(_norms(detector, "neck")))

    apply_freeze(detector, frozen, "frozen")
    detector.train()
    modules = dict(detector.named_modules())
    assert not modules[stage0_norm].training and modules[deep_norm].training and modules[neck_norm].training
    assert {n for n, p in detector.named_parameters() if not p.requires_grad} == frozen
    assert detector.backbone.frozen_stages == 2

    apply_freeze(detector, frozen, "eval")
    detector.train()
    assert all(not m.training for m in _norms(detector, "backbone").values())
    assert modules[neck_norm].training  # the new neck and head always learn their statistics

    apply_freeze(detector, frozen, "train")
    detector.train()
    assert all(m.training for m in _norms(detector, "").values())
    with pytest.raises(ConfigError, match=r"norm='bogus' is not a norm-layer policy; choose one of \['frozen', 'eval', 'train', 'auto'\]"):
        apply_freeze(detector, frozen, "bogus")
    apply_freeze(detector, set(), "frozen")


def test_auto_pins_the_norms_of_loaded_weights_only(detector):
    """``auto``: a backbone whose weights were loaded keeps its statistics (``eval``, folded in training
    steps); a randomly initialised one learns them (``frozen``: with nothing frozen, every norm trains)."""
    from yolotl.models.freezing import resolve_norm_policy
    from yolotl.models.weights import LoadReport

    assert resolve_norm_policy(detector, "auto") == "frozen"  # pretrained=False
    apply_freeze(detector, set(), "auto")
    detector.train()
    assert all(m.training for m in _norms(detector, "backbone").values())
    report = detector.load_report
    detector.load_report = LoadReport(source="ImageNet (test)", loaded=10)
    try:
        assert resolve_norm_policy(detector, "auto") == "eval"
        apply_freeze(detector, set(), "auto")
        detector.train()
        assert all(not m.training for m in _norms(detector, "backbone").values())
    finally:
        detector.load_report = report
        apply_freeze(detector, set(), "frozen")


def test_frozen_statistics_survive_a_training_forward_pass(detector):
    apply_freeze(detector, select(detector, "backbone"), "frozen")
    detector.train()
    before = {k: v.clone() for k, v in detector.backbone.state_dict().items()}
    detector(torch.rand(2, 3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in detector.backbone.state_dict().items())
    apply_freeze(detector, select(detector, "backbone"), "train")  # weights frozen, statistics adapt
    detector.train()
    detector(torch.rand(2, 3, 64, 64))
    assert not all(torch.equal(before[k], v) for k, v in detector.backbone.state_dict().items())
    apply_freeze(detector, set(), "frozen")


def test_stages_freeze_and_unfreeze_through_apply_freeze(detector):
    backbone = detector.backbone
    apply_freeze(detector, select_all(detector, ["stage:0", "stage:1"]))
    for stage in range(backbone.num_stages):
        assert {p.requires_grad for p in backbone.stage_parameters(stage)} == {stage >= 2}
    assert backbone.frozen_stages == 2 and not backbone.fully_frozen
    detector.train()
    pinned = [detector.get_submodule(n) for n in detector.pinned_norms]
    assert pinned and all(not m.training for m in pinned)
    assert any(m.training for m in _norms(detector, "backbone").values())
    apply_freeze(detector, set())  # unfreezing is the same call with nothing frozen
    assert all(p.requires_grad for p in detector.parameters()) and detector.pinned_norms == []
    assert backbone.frozen_stages == 0 and all(m.training for m in _norms(detector, "").values())


def test_frozen_weights_and_statistics_stay_byte_identical_through_training_steps(detector):
    frozen = select_all(detector, ["stage:0", "stage:1"])
    apply_freeze(detector, frozen)
    pinned = tuple(f"{n}." for n in detector.pinned_norms)
    state = detector.state_dict()
    kept = {k for k in state if k in frozen or k.startswith(pinned)}
    assert any(k.endswith("running_mean") for k in kept)
    before = {k: v.clone() for k, v in state.items()}
    optimizer = torch.optim.SGD([p for p in detector.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    for step in range(3):
        detector.eval()
        detector.train()  # what a trainer does around validation: the pinned norms stay in eval mode
        outputs = detector(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(step)))
        loss = sum(m.square().mean() for m in [*outputs.box_maps, *outputs.cls_maps])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = detector.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in kept)
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert any(k.startswith("backbone.body.blocks.6.") and k.endswith("running_mean") for k in changed)
    assert any(k.startswith("head.") for k in changed)  # the rest trained
    apply_freeze(detector, set())
