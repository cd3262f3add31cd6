"""The Lightning internals yolotl relies on (yolotl/training/lightning_internals.py), checked on the installed Lightning.

Each test names the function whose assumption it checks: a failure after a Lightning upgrade says
which internal moved. The last test keeps the installed Lightning inside pyproject.toml's bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Timer, WeightAveraging
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.strategies import DDPStrategy
from packaging.requirements import Requirement
from torch.optim.swa_utils import AveragedModel

from yolotl.training import EMA
from yolotl.training.lightning_internals import (
    drop_timer_state,
    global_rank,
    move_callback_first,
    set_average_model,
    start_method,
)

ROOT = Path(__file__).resolve().parents[2]


def _trainer(callbacks: list[pl.Callback] | None = None, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=callbacks or [], **kwargs)


# set_average_model ---------------------------------------------------------------------------------


class _WithDetector(pl.LightningModule):
    """What EMA averages: a LightningModule's ``detector``."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = torch.nn.Linear(2, 2)


def test_set_average_model_fills_the_slot_weight_averaging_setup_fills():
    """set_average_model: WeightAveraging.setup keeps its AveragedModel in ``_average_model``."""
    callback, module = WeightAveraging(), BoringModel()
    assert callback._average_model is None  # the slot exists before setup
    callback.setup(_trainer(), module, "fit")
    assert isinstance(callback._average_model, AveragedModel)
    assert type(callback._average_model.module) is BoringModel and callback._average_model.module is not module


def test_set_average_model_gives_weight_averaging_hooks_the_model_they_update_and_swap_in():
    """set_average_model: the hooks update (after a step) and swap in (for validation) ``_average_model``."""
    current = torch.nn.Linear(2, 2)
    average = AveragedModel(current)
    callback = WeightAveraging()
    set_average_model(callback, average)
    callback.on_train_batch_end(SimpleNamespace(global_step=1), current, None, None, 0)
    assert int(average.n_averaged) == 1
    averaged_weight = average.module.weight.detach().clone()
    with torch.no_grad():
        current.weight.fill_(5.0)
    callback.on_validation_epoch_start(_trainer(), current)
    assert torch.equal(current.weight, averaged_weight)


def test_set_average_model_makes_ema_average_the_detector_only():
    """set_average_model, through EMA.setup: the AveragedModel Lightning's hooks use is the detector's."""
    module, ema = _WithDetector(), EMA()
    ema.setup(_trainer(), module, "fit")
    average = ema._average_model
    assert isinstance(average, AveragedModel) and type(average.module) is torch.nn.Linear
    assert average.module is not module.detector
    ema.on_train_batch_end(SimpleNamespace(global_step=1), module, None, None, 0)
    assert int(average.n_averaged) == 1


# drop_timer_state ----------------------------------------------------------------------------------


def test_drop_timer_state_removes_the_timer_entry_only():
    """drop_timer_state: a Trainer with max_time holds a Timer whose state sits under its state_key."""
    trainer = _trainer(max_time={"seconds": 30})
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    state = timer.state_dict()
    assert state["time_elapsed"]["train"] == 0  # nothing trained yet
    checkpoint = {"callbacks": {timer.state_key: state, "Other": {"kept": 1}}}
    drop_timer_state(trainer, checkpoint)
    assert checkpoint["callbacks"] == {"Other": {"kept": 1}}
    drop_timer_state(trainer, {})  # a checkpoint without callback states: nothing to drop


class _DropTimerState(pl.Callback):
    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:  # noqa: ANN001
        drop_timer_state(trainer, checkpoint)


@pytest.mark.slow
def test_drop_timer_state_runs_before_the_timer_restores_its_time(tmp_path):
    """drop_timer_state: every on_load_checkpoint runs before the Timer's load_state_dict, on the same dict."""
    first = _trainer(max_steps=1, max_time={"hours": 1})
    first.fit(BoringModel())
    path = tmp_path / "first.ckpt"
    first.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    (timer,) = [c for c in first.callbacks if isinstance(c, Timer)]
    checkpoint["callbacks"][timer.state_key]["time_elapsed"]["train"] = 1000.0
    torch.save(checkpoint, path)

    def elapsed_after_resume(callbacks: list[pl.Callback]) -> float:
        trainer = _trainer(callbacks, max_steps=2, max_time={"hours": 1})
        trainer.fit(BoringModel(), ckpt_path=path)
        return next(c for c in trainer.callbacks if isinstance(c, Timer)).time_elapsed()

    assert elapsed_after_resume([]) >= 1000.0  # the Timer restores its time from that entry...
    assert elapsed_after_resume([_DropTimerState()]) < 1000.0  # ...unless it was dropped first


# start_method --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [("ddp", "popen"), ("ddp_spawn", "spawn"), ("ddp_notebook", "fork")])
def test_start_method_reads_how_each_ddp_strategy_starts(name, expected):
    """start_method: DDPStrategy keeps its start method in ``_start_method``, the same for the
    ``*_find_unused_parameters_true`` strategy TransferStrategy's DDP error message names."""
    for strategy in (name, f"{name}_find_unused_parameters_true"):
        trainer = _trainer(strategy=strategy, devices=2)
        assert isinstance(trainer.strategy, DDPStrategy)
        assert start_method(trainer) == expected


def test_start_method_is_none_without_ddp():
    """start_method: a single-device strategy has none."""
    assert start_method(_trainer(devices=1)) is None


# move_callback_first -------------------------------------------------------------------------------


class _Record:
    """Writes its name to ``calls`` at setup and at each train epoch start."""

    def __init__(self, name: str, calls: list[tuple[str, str]], first: bool = False) -> None:
        self.name, self.calls, self.first = name, calls, first

    def setup(self, trainer, pl_module, stage) -> None:  # noqa: ANN001
        self.calls.append(("setup", self.name))
        if self.first:
            move_callback_first(trainer, self)

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.calls.append(("epoch", self.name))


class _TrainerCallback(_Record, pl.Callback):
    pass


class _ModuleCallback(_Record, pl.Callback):  # another type: the module's would replace the Trainer's of its type
    pass


class _ModuleWithCallbacks(BoringModel):
    def __init__(self, callbacks: list[pl.Callback]) -> None:
        super().__init__()
        self.own_callbacks = callbacks

    def configure_callbacks(self) -> list[pl.Callback]:
        return self.own_callbacks


@pytest.mark.slow
def test_move_callback_first_during_setup_reorders_every_later_hook():
    """move_callback_first: module callbacks come after the Trainer's, every hook iterates
    ``trainer.callbacks`` anew, and a move during the setup loop skips or repeats no callback."""
    calls: list[tuple[str, str]] = []
    trainer = _trainer([_TrainerCallback("a", calls), _TrainerCallback("b", calls)], fast_dev_run=True)
    module = _ModuleWithCallbacks([_ModuleCallback("first", calls, first=True), _ModuleCallback("c", calls)])
    trainer.fit(module)
    assert [name for hook, name in calls if hook == "setup"] == ["a", "b", "first", "c"]
    assert [name for hook, name in calls if hook == "epoch"] == ["first", "a", "b", "c"]


# global_rank ---------------------------------------------------------------------------------------


def test_global_rank_is_where_the_ddp_strategy_writes_the_rank(monkeypatch):
    """global_rank: a DDP strategy's set_world_ranks writes the process's rank to ``rank_zero_only.rank``."""
    assert isinstance(global_rank(), int)
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)  # restored after the test
    monkeypatch.setenv("LOCAL_RANK", "1")
    strategy = DDPStrategy(parallel_devices=[torch.device("cpu")] * 2, cluster_environment=LightningEnvironment())
    strategy.set_world_ranks()
    assert strategy.global_rank == 1 and global_rank() == 1


@pytest.mark.slow
def test_global_rank_reads_the_launch_environment_before_any_trainer():
    """global_rank: importing Lightning sets ``rank_zero_only.rank`` from the launcher's RANK variable."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")}
    code = "from yolotl.training.lightning_internals import global_rank; print(global_rank())"
    done = subprocess.run([sys.executable, "-c", code], env={**env, "RANK": "3"}, capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.split()[-1] == "3"


# the bound -----------------------------------------------------------------------------------------


def test_the_installed_lightning_is_within_the_bound_pyproject_names():
    """pyproject.toml bounds lightning above, and the Lightning these tests ran on is inside the bound."""
    tomllib = pytest.importorskip("tomllib")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (lightning,) = [r for r in map(Requirement, dependencies) if r.name == "lightning"]
    assert any(spec.operator == "<" for spec in lightning.specifier), lightning
    assert lightning.specifier.contains(version("lightning")), (version("lightning"), str(lightning))
