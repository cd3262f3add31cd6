"""A config typo gets "did you mean" from the real keys, before Hydra's "+key" advice can mislead."""

from __future__ import annotations

import subprocess
import sys

import pytest

from yolotl import ConfigError
from yolotl.api import config_dir
from yolotl.cli.overrides import check_overrides


@pytest.mark.parametrize(("args", "expected"), [
    (["trainer.max_epoch=1"], "did you mean trainer.max_epochs"),
    (["+trainer.max_epoch=1"], "did you mean trainer.max_epochs"),  # Hydra's advice, followed
    (["model.module.optimizer.lrr=0.1"], "did you mean model.module.optimizer.lr"),
    (["model.module.lr=0.1"], "model.module.lr is now model.module.optimizer.lr"),  # moved in 0.2
    (["model.module.layer_decay=0.75"], "model.module.layer_decay is now strategy.layer_decay"),
    (["data.batchsize=4"], "did you mean data.batch_size"),
    (["+data.loader.pin_memry=true"], "did you mean data.loader.pin_memory"),
    (["data.num_workers=0"], "data.num_workers is now data.loader.num_workers"),  # moved in 0.2
    (["data.policy=strict"], "data.policy is now data.checks.policy"),
    (["trainr.max_epochs=3"], "did you mean trainer.max_epochs"),
    (["strategy=end_to_end", "strategy.freeze_stages=1"], "its keys are \\['backbone_lr_mult', 'layer_decay', 'norm'\\]"),
])
def test_unknown_keys_name_the_closest_real_key(args, expected):
    with pytest.raises(ConfigError, match=expected):
        check_overrides(config_dir(), "train", args)


@pytest.mark.parametrize("args", [
    ["trainer.max_epochs=1", "experiment=bccd", "data.root=x"],
    ["trainer.limit_train_batches=2", "++trainer.limit_val_batches=2", "+trainer.benchmark=true",
     "data.loader.pin_memory=true", "trainer.strategy=ddp", "trainer.num_nodes=2", "trainer.max_time=00:01:00:00"],
    ["strategy=end_to_end", "strategy.backbone_lr_mult=0.5"],
    ["-m", "strategy=feature_extract,end_to_end", "trainer.max_epochs=1"],  # a sweep is Hydra's to expand
    ["--help"],
])
def test_real_keys_and_arguments_pass(args):
    check_overrides(config_dir(), "train", args)


def test_the_command_stops_with_the_fix_before_hydra_advises_a_plus():
    done = subprocess.run([sys.executable, "-m", "yolotl.cli.train", "trainer.max_epoch=1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    assert "yolotl: error: trainer.max_epoch:" in done.stderr and "did you mean trainer.max_epochs" in done.stderr
    assert "+trainer.max_epoch" not in done.stderr
