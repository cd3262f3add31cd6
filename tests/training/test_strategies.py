"""Each transfer strategy: what trains, what stays byte-identical (weights AND norm statistics)."""

import copy

import lightning.pytorch as pl
import pytest
import torch

from yolotl.training import EMA, EndToEnd, FeatureExtract, Finetune
from tests.training.conftest import fit


class StopAfterFirstEpoch(pl.Callback):
    """Interrupt a 2-epoch run after epoch 0, as a crash or a time limit would."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def _stage_state(module, stage):
    backbone = module.detector.backbone
    names = {n.rsplit(".", 1)[0] for n, s in backbone._stage_of_param.items() if s == stage}
    return {
        f"{n}.{k}": v.detach().clone()
        for n, m in backbone.body.named_modules()
        if n in names
        for k, v in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
    }


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def _snapshot(module):
    return {s: _stage_state(module, s) for s in range(module.detector.backbone.num_stages)}


@pytest.mark.slow
def test_feature_extract_keeps_the_whole_backbone_byte_identical(make_module):
    module = make_module()
    before = copy.deepcopy(module.detector.backbone.state_dict())
    neck_before = copy.deepcopy(module.detector.neck.state_dict())
    fit(module, [FeatureExtract(), EMA()])
    after = module.detector.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "backbone weights or statistics changed"
    assert not all(torch.equal(neck_before[k], v) for k, v in module.detector.neck.state_dict().items())
    assert not any(p.requires_grad for p in module.detector.backbone.parameters())


@pytest.mark.parametrize("setting", [True, False])
def test_feature_extract_hands_its_bf16_setting_to_the_backbone(make_module, setting):
    module = make_module()
    strategy = FeatureExtract(frozen_bf16=setting)
    module.strategy = strategy
    strategy.apply(module, 0)
    assert module.detector.backbone.frozen_bf16 is setting


def test_frozen_bf16_is_off_by_default_auto_follows_the_cpu_and_bad_values_are_config_errors():
    from yolotl.errors import ConfigError
    from yolotl.models.backbone import cpu_has_native_bf16

    assert FeatureExtract().frozen_bf16 is False  # opt-in until the suite confirms it
    assert FeatureExtract(frozen_bf16="auto").frozen_bf16 is cpu_has_native_bf16()
    with pytest.raises(ConfigError, match="frozen_bf16"):
        FeatureExtract(frozen_bf16="yes")


@pytest.mark.slow
def test_finetune_freezes_leading_stages_and_lowers_backbone_lr(make_module):
    module = make_module()
    before = _snapshot(module)
    trainer = fit(module, [Finetune(freeze_stages=2, backbone_lr_mult=0.1)])
    after = _snapshot(module)
    assert _same(before[0], after[0]) and _same(before[1], after[1])
    assert not _same(before[4], after[4])
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert groups["backbone"]["lr_mult"] == pytest.approx(0.1)
    assert groups["head"]["lr_mult"] == 1.0
    assert groups["head_no_decay"]["weight_decay"] == 0.0


@pytest.mark.slow
def test_finetune_unfreezes_at_the_given_epoch(make_module):
    module = make_module()
    before = _snapshot(module)
    fit(module, [Finetune(freeze_stages=3, unfreeze_at_epoch=1)], epochs=2)
    assert all(p.requires_grad for p in module.detector.backbone.parameters())
    assert not _same(before[0], _snapshot(module)[0])


@pytest.mark.slow
def test_end_to_end_trains_every_stage(make_module):
    module = make_module()
    before = _snapshot(module)
    fit(module, [EndToEnd()])
    after = _snapshot(module)
    assert all(not _same(before[s], after[s]) for s in before)


@pytest.mark.slow
def test_resume_mid_schedule_restores_the_freeze_state(make_module, tmp_path):
    straight = make_module()
    fit(straight, [Finetune(freeze_stages=5, unfreeze_at_epoch=1)], epochs=2)

    first = make_module()
    trainer = fit(first, [Finetune(freeze_stages=5, unfreeze_at_epoch=1), StopAfterFirstEpoch()], epochs=2)
    assert trainer.current_epoch == 1 and first.detector.backbone.frozen_stages == 5
    checkpoint = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(checkpoint)
    resumed = make_module()
    fit(resumed, [Finetune(freeze_stages=5, unfreeze_at_epoch=1)], epochs=2, ckpt=str(checkpoint))

    assert resumed.detector.backbone.frozen_stages == 0
    for (name, a), b in zip(straight.detector.state_dict().items(), resumed.detector.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


@pytest.mark.slow
def test_a_non_finite_training_loss_stops_the_run_with_the_fix(make_module, monkeypatch):
    from yolotl import TrainingDivergedError

    module = make_module()
    real = module._losses

    def diverging(batch):
        outputs, losses = real(batch)
        losses.total = losses.total * float("nan")
        return outputs, losses

    monkeypatch.setattr(module, "_losses", diverging)
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 0, step 0 .*model.module.optimizer.lr"):
        fit(module, [], epochs=1)
