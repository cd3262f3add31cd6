"""A schedule under Lightning DDP: two CPU processes (gloo) pass an unfreeze milestone in step."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from yolotl import ConfigError, TransferStrategy

SCRIPT = Path(__file__).with_name("ddp_schedule_run.py")


def _run(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=SCRIPT.parents[2], check=False)


@pytest.mark.slow  # two ranks train in a subprocess
def test_two_ranks_hold_identical_weights_and_trainable_sets_after_a_milestone(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, tensor in ranks[0]["params"].items():  # every weight, frozen or trained
        assert torch.equal(tensor, ranks[1]["params"][name]), f"ranks differ in {name}"
    # Norm statistics: DDP copies rank 0's buffers to every rank before each forward, so the trained
    # layers' statistics differ by the last batch only; the frozen layers' never moved on either rank.
    start = ranks[0]["start"]
    for name in ranks[0]["frozen_buffers"]:
        assert torch.equal(ranks[0]["state"][name], start[name]) and torch.equal(ranks[1]["state"][name], start[name])
    assert ranks[0]["frozen_buffers"]
    assert ranks[0]["trainable"] == ranks[1]["trainable"]
    before, after = ranks[0]["trainable"][0], ranks[0]["trainable"][1]
    assert not any(n.startswith("backbone.") for n in before)
    unfrozen = set(after) - set(before)
    assert unfrozen and all(n.startswith(("backbone.body.blocks.4.", "backbone.body.blocks.5.",
                                          "backbone.body.blocks.6.", "backbone.body.blocks.3.")) for n in unfrozen)
    assert ranks[0]["groups"] == ranks[1]["groups"]


def test_ddp_without_find_unused_parameters_is_refused_with_the_fix(tmp_path):
    # In-process, on a one-rank gloo group: the check reads the wrapped model (public DDP attributes)
    # at on_fit_start, after Lightning's DDP wrap and before anything is frozen.
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/group", rank=0, world_size=1)
    try:
        def trainer(find_unused: bool) -> SimpleNamespace:
            wrapped = DistributedDataParallel(torch.nn.Linear(2, 2), find_unused_parameters=find_unused)
            return SimpleNamespace(strategy=SimpleNamespace(model=wrapped))

        strategy = TransferStrategy(freeze=["backbone"])
        with pytest.raises(ConfigError, match="trainer.strategy=ddp_find_unused_parameters_true"):
            strategy._check_ddp(trainer(find_unused=False))
        strategy._check_ddp(trainer(find_unused=True))
        TransferStrategy()._check_ddp(trainer(find_unused=False))  # nothing frozen, nothing to check
        strategy._check_ddp(SimpleNamespace(strategy=SimpleNamespace(model=torch.nn.Linear(2, 2))))  # no DDP
    finally:
        dist.destroy_process_group()
