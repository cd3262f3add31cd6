"""Every config group composes, and every `_target_` instantiates to the documented object."""

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

import yolotl
from yolotl.api import config_dir

CONF = Path(config_dir())


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=/tmp/yolotl-test", *overrides])


def test_default_config_is_the_synthetic_quickstart():
    cfg = _compose()
    assert cfg.data.format == "synthetic"
    assert cfg.model.detector.backbone == "efficientnet_lite0"
    assert cfg.model.detector.pretrained == "auto"
    assert cfg.strategy._target_ == "yolotl.Finetune"
    OmegaConf.resolve(cfg)  # every interpolation resolves


@pytest.mark.parametrize("name", _options("strategy"))
def test_strategy_options_instantiate(name):
    strategy = instantiate(_compose(f"strategy={name}").strategy)
    assert isinstance(strategy, yolotl.TransferStrategy)
    assert strategy.name == name


@pytest.mark.parametrize("name", _options("data"))
def test_data_options_compose(name):
    cfg = _compose(f"data={name}", "data.root=/some/folder")
    assert cfg.data._target_ == "yolotl.DetectionDataModule"
    assert cfg.data.format == name


@pytest.mark.parametrize("name", _options("data"))
def test_disk_cache_is_one_override_in_every_data_option(name, tmp_path):
    cfg = _compose(f"data={name}", f"data.root={tmp_path}", "data.loader.cache=disk", f"data.loader.cache_dir={tmp_path}/cache")
    semantic = {"masks": "semantic"} if name == "semantic" else {}  # format=semantic needs semantic targets
    cache = instantiate(cfg.data, _convert_="all", **semantic).cache
    assert cache.mode == "disk" and cache.cache_dir == tmp_path / "cache"


@pytest.mark.parametrize("name", _options("experiment"))
def test_experiment_options_compose(name):
    cfg = _compose(f"experiment={name}")
    OmegaConf.resolve(cfg)
    assert cfg.trainer.max_epochs >= 1


@pytest.mark.parametrize("group", ["trainer", "callbacks", "logger", "debug", "model", "augment"])
def test_other_groups_compose(group):
    for name in _options(group):
        cfg = _compose(f"{group}={name}")
        OmegaConf.resolve(cfg)  # fails on any broken interpolation in the option
        assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_callbacks_and_loggers_instantiate(tmp_path):
    cfg = _compose(f"paths.output_dir={tmp_path}")
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert any(isinstance(c, yolotl.EMA) for c in callbacks)
    assert instantiate(cfg.logger.csv).save_dir == str(tmp_path)


def test_top_level_shortcuts_reach_the_detector():
    cfg = _compose("backbone=resnet18", "pretrained=false")
    assert cfg.model.detector.backbone == "resnet18"
    assert cfg.model.detector.pretrained is False


def test_bccd_experiment_sets_voc_and_class_order():
    cfg = _compose("experiment=bccd")
    assert cfg.data.format == "voc"
    assert list(cfg.data.reading.class_names) == ["RBC", "WBC", "Platelets"]
    assert cfg.data.image_size == 416 and cfg.trainer.max_epochs == 30


def test_typos_in_group_options_and_keys_are_rejected_with_choices():
    with pytest.raises(ConfigCompositionException, match="feature_extract"):
        _compose("strategy=featur_extract")
    with pytest.raises(ConfigCompositionException, match="rooot"):
        _compose("data.rooot=/x")


def test_augment_group_and_data_options_reach_the_datamodule(tmp_path):
    cfg = _compose("augment=heavy", "data.augment.mixup=0", "data.selection.balance=null", "data.loader.cache=none",
                   "data.selection.fold=2", f"data.root={tmp_path}", "model.module.loss.classes=[1,2,3]")
    dm = instantiate(cfg.data, _convert_="all")
    assert dm.augment == yolotl.data.resolve_augment({"preset": "heavy", "mixup": 0.0})
    assert dm.balance is None and dm.cache.mode == "none" and dm.fold == 2
    assert list(cfg.model.module.loss.classes) == [1, 2, 3]
    default = _compose()  # the imbalance options measured on Aquarium are on by default, as in Python
    assert default.data.selection.balance == "repeat_factor" == yolotl.data.Selection().balance
    assert default.model.module.loss.classes == "inverse_sqrt" == yolotl.LossWeights().classes
    assert _compose().data.augment.mosaic == yolotl.data.AUGMENT_PRESETS["medium"].mosaic  # the default preset


def test_slurm_launcher_sizes_the_allocation_from_the_trainer():
    """hydra/launcher=slurm: one SLURM task per device on each node, as Lightning's SLURM environment expects."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "trainer.devices=4", "trainer.num_nodes=2"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)


def test_parallel_launcher_is_joblib():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=["hydra/launcher=parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2


def test_cpu_latency_options_reach_the_detector_from_the_command_line():
    cfg = _compose("model.detector.neck=light", "model.detector.head=light", "model.detector.reg_max=1",
                   "model.detector.nms_free=true", "pretrained=false", "backbone=mobilenetv3_small_100")
    detector = instantiate(cfg.model.detector, class_names=["a", "b"])
    assert (detector.config.neck, detector.config.head, detector.config.reg_max, detector.nms_free) == \
        ("light", "light", 1, True)
    assert type(detector.neck).__name__ == "LightPAN"
