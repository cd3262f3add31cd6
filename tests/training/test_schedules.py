"""Schedules as data: the trainable set and optimizer groups at every milestone, byte-identical frozen
state, layer-wise LR decay, and an identical state after resuming in the middle of a schedule."""

import copy

import lightning.pytorch as pl
import pytest
import torch

from tests.training.conftest import fit
from yolotl import ConfigError, EndToEnd, FeatureExtract, Finetune, TransferStrategy
from yolotl.models.freezing import select

SCHEDULE = [{"epoch": 1, "unfreeze": ["stage:-1"], "lr_mult": 0.1},
            {"epoch": 2, "unfreeze": ["backbone"], "lr_mult": 0.02}]


def progressive():
    return TransferStrategy(freeze=["backbone"], schedule=SCHEDULE, backbone_lr_mult=0.5)


class Recorder(pl.Callback):
    """At each epoch start (after the strategy): trainable names, optimizer groups, train-mode norms."""

    def __init__(self):
        self.epochs = {}

    def on_train_epoch_start(self, trainer, pl_module):
        detector = pl_module.detector
        names = {id(p): n for n, p in detector.named_parameters()}
        self.epochs[trainer.current_epoch] = {
            "trainable": {n for n, p in detector.named_parameters() if p.requires_grad},
            "groups": {g["name"]: (g["lr_mult"], g["initial_lr"], {names[id(p)] for p in g["params"]})
                       for g in trainer.optimizers[0].param_groups},
            "eval_norms": {n for n, m in detector.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
                           and not m.training},
            "state": copy.deepcopy(detector.state_dict()),
        }


@pytest.mark.slow
def test_trainable_set_and_groups_at_every_milestone(make_module):
    module = make_module()
    recorder = Recorder()
    fit(module, [progressive(), recorder], epochs=3)
    detector = module.detector
    backbone, last = select(detector, "backbone"), select(detector, "stage:-1")
    rest = set(n for n, _ in detector.named_parameters()) - backbone
    assert [recorder.epochs[e]["trainable"] for e in range(3)] == [rest, rest | last, rest | backbone]

    groups = recorder.epochs[0]["groups"]
    assert groups == recorder.epochs[2]["groups"]  # the optimizer never changes
    by_name = {name: (mult, params) for name, (mult, _, params) in groups.items()}
    assert by_name["backbone@epoch1"][0] == pytest.approx(0.1) and by_name["backbone@epoch1"][1] <= last
    assert by_name["backbone@epoch2"][0] == pytest.approx(0.02)
    assert by_name["backbone@epoch2"][1] | by_name["backbone@epoch2_no_decay"][1] == backbone - last
    assert by_name["head"][0] == 1.0 and "backbone" not in by_name  # every backbone tensor has a milestone
    for mult, initial_lr, _ in groups.values():
        assert initial_lr == pytest.approx(1e-2 * mult)
    # frozen norm layers stay in eval mode until their stage unfreezes
    assert "backbone.body.blocks.6.0.bn1" in recorder.epochs[0]["eval_norms"]
    assert "backbone.body.blocks.6.0.bn1" not in recorder.epochs[1]["eval_norms"]
    assert "backbone.body.bn1" in recorder.epochs[1]["eval_norms"] and not recorder.epochs[2]["eval_norms"]


@pytest.mark.slow
def test_frozen_weights_and_statistics_are_byte_identical_until_their_milestone(make_module):
    module = make_module()
    recorder = Recorder()
    fit(module, [progressive(), recorder], epochs=3)
    start, after0, after1 = (recorder.epochs[e]["state"] for e in range(3))
    final = module.detector.state_dict()
    deep = [k for k in start if k.startswith("backbone.body.blocks.6.") or k.startswith("backbone.body.blocks.5.")]
    shallow = [k for k in start if k.startswith("backbone.body.") and k not in deep]
    assert deep and shallow
    assert all(torch.equal(start[k], after0[k]) for k in deep + shallow)  # epoch 0: backbone frozen
    assert all(torch.equal(after0[k], after1[k]) for k in shallow)  # epoch 1: only the deepest stage
    assert not all(torch.equal(after0[k], after1[k]) for k in deep)
    assert not all(torch.equal(after1[k], final[k]) for k in shallow)  # epoch 2: everything


@pytest.mark.slow
def test_layer_wise_lr_decay_gives_deeper_stages_larger_rates(make_module):
    module = make_module()
    trainer = fit(module, [Finetune(freeze_stages=1, backbone_lr_mult=0.1, layer_decay=0.5)], epochs=1)
    mults = {g["name"]: g["lr_mult"] for g in trainer.optimizers[0].param_groups}
    stages = module.detector.backbone.stage_names
    for depth, stage in enumerate(stages):
        assert mults[f"backbone.{stage}"] == pytest.approx(0.1 * 0.5 ** (len(stages) - 1 - depth))
    assert mults["neck"] == mults["head"] == 1.0


@pytest.mark.slow
def test_resume_in_the_middle_of_a_schedule_gives_the_identical_state(make_module, tmp_path):
    straight = make_module()
    straight_trainer = fit(straight, [progressive()], epochs=3)

    class StopAfterFirstEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    first = make_module()
    trainer = fit(first, [progressive(), StopAfterFirstEpoch()], epochs=3)
    assert trainer.current_epoch == 1 and not any(p.requires_grad for p in first.detector.backbone.parameters())
    checkpoint = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(checkpoint)
    resumed = make_module()
    resumed_trainer = fit(resumed, [progressive()], epochs=3, ckpt=str(checkpoint))

    a, b = straight.detector.state_dict(), resumed.detector.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "weights or statistics differ"
    assert ({n for n, p in straight.detector.named_parameters() if p.requires_grad}
            == {n for n, p in resumed.detector.named_parameters() if p.requires_grad})
    lrs = [[g["lr"] for g in t.optimizers[0].param_groups] for t in (straight_trainer, resumed_trainer)]
    assert lrs[0] == lrs[1]


@pytest.mark.slow
def test_schedule_errors_name_the_fix(make_module):
    with pytest.raises(ConfigError, match="schedule\\[0\\] has unknown keys \\['stage'\\]"):
        TransferStrategy(freeze=["backbone"], schedule=[{"epoch": 1, "stage": "x"}])
    with pytest.raises(ConfigError, match="schedule\\[0\\].epoch must be an integer >= 0"):
        TransferStrategy(freeze=["backbone"], schedule=[{"epoch": -1, "unfreeze": ["backbone"]}])
    strategy = TransferStrategy(freeze=["stage:0"], schedule=[{"epoch": 1, "unfreeze": ["head"]}])
    with pytest.raises(ConfigError, match="unfreezes \\['head'\\], but none of it is still frozen"):
        fit(make_module(), [strategy], epochs=1)
    with pytest.raises(ConfigError, match="unknown freeze selector 'blocks.9'"):
        fit(make_module(), [TransferStrategy(freeze=["blocks.9"])], epochs=1)


def _parts(detector, *selectors):
    return set().union(*(select(detector, s) for s in selectors)) if selectors else set()


@pytest.mark.parametrize(("make_strategy", "frozen_by_epoch", "backbone_mults"), [
    (lambda: FeatureExtract(), [("backbone",), ("backbone",)], {0.1}),
    (lambda: Finetune(freeze_stages=2, unfreeze_at_epoch=1), [("stage:0", "stage:1"), ()], {0.1}),
    (lambda: EndToEnd(), [(), ()], {1.0}),
    (lambda: TransferStrategy(freeze=["stem", "neck"], norm="eval"), [("stem", "neck"), ("stem", "neck")], {1.0}),
], ids=["feature_extract", "finetune", "end_to_end", "stem_and_neck"])
@pytest.mark.slow
def test_each_strategy_trainable_set_groups_and_frozen_bytes(make_module, make_strategy, frozen_by_epoch,
                                                             backbone_mults):
    module = make_module()
    recorder = Recorder()
    fit(module, [make_strategy(), recorder], epochs=2)
    detector = module.detector
    everything = {n for n, _ in detector.named_parameters()}
    for epoch, selectors in enumerate(frozen_by_epoch):
        assert recorder.epochs[epoch]["trainable"] == everything - _parts(detector, *selectors), epoch
    groups = recorder.epochs[0]["groups"]
    assert {mult for name, (mult, _, _) in groups.items() if name.startswith("backbone")} == backbone_mults
    assert all(mult == 1.0 for name, (mult, _, _) in groups.items() if not name.startswith("backbone"))
    assert set().union(*(params for _, _, params in groups.values())) == everything  # every tensor has a group
    always_frozen = set.intersection(*(_parts(detector, *s) for s in frozen_by_epoch))
    start, final = recorder.epochs[0]["state"], detector.state_dict()
    frozen_modules = {n.rsplit(".", 1)[0] for n in always_frozen}
    for key in start:  # frozen weights and the statistics of their norm layers: byte-identical
        if key in always_frozen or (key.rsplit(".", 1)[0] in frozen_modules and "running" in key):
            assert torch.equal(start[key], final[key]), key
