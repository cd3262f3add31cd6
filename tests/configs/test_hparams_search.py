"""conf/hparams_search/optuna.yaml: the Optuna sweeper composes, its search space reaches the
strategies, and a real two-trial sweep on the CPU writes optimization_results.yaml."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import yolotl
from yolotl.models.backbone import TimmBackbone
from yolotl.api import config_dir

CONF = Path(config_dir())
SEARCHED = ["strategy", "model.module.optimizer.lr", "search.backbone_lr_mult", "search.freeze_stages", "augment"]


def _search_override() -> str:
    """``+hparams_search=optuna``: train.yaml's defaults list has no hparams_search entry (with one, no +)."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml").defaults)
    listed = any(isinstance(d, dict) and "hparams_search" in d for d in defaults)
    return "hparams_search=optuna" if listed else "+hparams_search=optuna"


def _compose(*overrides: str, hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=/tmp/yolotl-test", *overrides],
                       return_hydra_config=hydra_config)


def test_optuna_search_composes_with_the_sweeper_and_its_space():
    cfg = _compose(_search_override(), hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.n_jobs == 1 and sweeper.n_trials == 20
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    assert sweeper.study_name and sweeper.storage is None
    assert list(sweeper.params) == SEARCHED
    assert sweeper.params.strategy == "choice(feature_extract, finetune, end_to_end)"
    assert sweeper.params.augment == "choice(light, medium, heavy)"
    assert set(cfg.search) == {"freeze_stages", "backbone_lr_mult"}
    OmegaConf.resolve(_compose(_search_override()))  # the job config's interpolations all resolve


def test_search_space_parses_to_the_intended_optuna_distributions():
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import (
        CategoricalDistribution,
        IntUniformDistribution,
        LogUniformDistribution,
    )

    cfg = _compose(_search_override(), hydra_config=True)
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    assert not fixed and list(space) == SEARCHED
    assert isinstance(space["strategy"], CategoricalDistribution)
    assert set(space["strategy"].choices) == {"feature_extract", "finetune", "end_to_end"}
    assert all((CONF / "strategy" / f"{name}.yaml").is_file() for name in space["strategy"].choices)
    assert set(space["augment"].choices) == {"light", "medium", "heavy"}
    lr, mult, depth = space["model.module.optimizer.lr"], space["search.backbone_lr_mult"], space["search.freeze_stages"]
    assert isinstance(lr, LogUniformDistribution) and lr.low < cfg.model.module.optimizer.lr < lr.high
    assert isinstance(mult, LogUniformDistribution) and mult.low > 0 and mult.high == 1.0
    assert isinstance(depth, IntUniformDistribution) and (depth.low, depth.high) == (0, 4)  # both ends inclusive
    # the deepest sampled freeze still leaves the default backbone a stage to train
    assert depth.high < TimmBackbone(cfg.backbone).num_stages


@pytest.mark.parametrize("name", ["feature_extract", "finetune", "end_to_end"])
def test_strategies_read_search_values_or_fall_back_to_their_defaults(name):
    default = instantiate(_compose(f"strategy={name}").strategy, _convert_="all")
    searched = instantiate(_compose(f"strategy={name}", _search_override(), "search.freeze_stages=3",
                                    "search.backbone_lr_mult=0.05").strategy, _convert_="all")
    for strategy in (default, searched):
        assert isinstance(strategy, yolotl.TransferStrategy) and strategy.name == name
    if name == "feature_extract":  # nothing of the search applies: its settings stay as configured
        assert searched.backbone_lr_mult == default.backbone_lr_mult
        return
    assert default.backbone_lr_mult == pytest.approx({"finetune": 0.1, "end_to_end": 1.0}[name])
    assert searched.backbone_lr_mult == pytest.approx(0.05)
    if name == "finetune":
        assert (default.freeze_stages, searched.freeze_stages) == (2, 3)
        assert isinstance(searched.freeze_stages, int)


def test_a_direct_strategy_override_still_wins_over_the_search_node():
    cfg = _compose(_search_override(), "strategy=finetune", "search.freeze_stages=3", "strategy.freeze_stages=1")
    assert instantiate(cfg.strategy).freeze_stages == 1


# Each trial: one epoch of 2 batches (debug=fast) of 8 random-init 64 px images, val only.
TINY = [
    "debug=fast",
    "hydra.sweeper.n_trials=2",
    "data.image_size=64",
    "data.reading.synthetic.image_size=64",
    "data.reading.synthetic.num_train=16",
    "data.reading.synthetic.num_val=4",
    "data.reading.synthetic.num_test=4",
    "data.batch_size=8",
    "backbone=mobilenetv3_small_100",
    "pretrained=false",
    "logger=csv",
    "test_after_fit=false",
]


@pytest.mark.slow
def test_two_trial_optuna_sweep_on_cpu_writes_best_params(tmp_path):
    """A real sweep through the CLI (about 50 s on 2 CPU cores): fails if the Optuna sweeper does not run."""
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "yolotl.cli.train", "-m", _search_override(), *TINY,
         f"hydra.sweep.dir={sweep}", f"data.root={tmp_path}/synthetic"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert set(results["best_params"]) == set(SEARCHED)
    assert math.isfinite(results["best_value"])

    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file())
    assert [p.name.split("_", 1)[0] for p in trials] == ["0", "1"]
    val_maps, params_of = [], []
    for trial in trials:
        metrics = yaml.safe_load((trial / "metrics.json").read_text())  # JSON is YAML
        config = OmegaConf.load(trial / "config.yaml")
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text()))
        params = {k: overrides[k] for k in SEARCHED}  # what the sampler chose for this trial
        params_of.append(params)
        # the sampled values reached the trained run
        assert trial.name.split("_", 1)[1] == params["strategy"] == metrics["strategy"]
        assert config.model.module.optimizer.lr == pytest.approx(float(params["model.module.optimizer.lr"]))
        assert 3e-4 <= config.model.module.optimizer.lr <= 1e-2
        assert metrics["augment"] == yolotl.data.AUGMENT_PRESETS[params["augment"]].to_dict()
        if params["strategy"] == "finetune":
            assert config.strategy.freeze_stages == int(params["search.freeze_stages"])
            assert len(metrics["freeze"]["frozen_stages"]) == int(params["search.freeze_stages"])
        if params["strategy"] != "feature_extract":
            assert config.strategy.backbone_lr_mult == pytest.approx(float(params["search.backbone_lr_mult"]))
        val_maps.append(metrics["val"]["map"])
    assert results["best_value"] == pytest.approx(max(val_maps))  # the objective: val mAP50-95
    best = {k: str(v) for k, v in results["best_params"].items()}
    assert best in [p for p, v in zip(params_of, val_maps) if v == pytest.approx(max(val_maps))]
    assert (sweep / "summary.csv").is_file()  # the SweepSummary callback ran on the Optuna sweep too
