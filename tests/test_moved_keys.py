"""The modules are built from parts (yolotl 0.2): each constructor takes at most 10 arguments, an old key
stops with its new place, and a run folder written before 0.2 is still read."""

from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

import yolotl
from yolotl.api import config_dir
from yolotl.api.moved_keys import MOVED_KEYS, check_moved_keys, upgrade_data_config
from yolotl.errors import ConfigError

# A data config as yolotl-train wrote it into config.yaml before 0.2 (flat keys).
OLD_DATA = {
    "_target_": "yolotl.DetectionDataModule", "format": "synthetic", "root": "ROOT", "image_size": 64,
    "batch_size": 4, "num_workers": 0, "train_split": "train", "val_split": "val", "test_split": "test",
    "cache": "none", "cache_dir": None, "health_cache": None, "balance": None, "repeat_threshold": 0.1,
    "fold": None, "num_folds": 5, "train_fraction": 0.5, "pin_memory": "auto", "policy": "strict",
    "synthetic": {"num_train": 8, "num_val": 4, "num_test": 4, "image_size": 64, "seed": 0},
}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize("constructor", [yolotl.DetectionDataModule, yolotl.DetectionModule])
def test_the_constructors_take_at_most_ten_arguments(constructor):
    arguments = [p for p in inspect.signature(constructor).parameters if p != "self"]
    assert len(arguments) <= 10, arguments


def test_every_moved_key_names_a_key_the_config_has():
    configs, absent = [_compose(), _compose("data=voc", "data.root=x")], object()  # synthetic and VOC keys
    for old, new in MOVED_KEYS.items():
        if old != "model.module.optimizer":  # a node now; its old string form is refused (below)
            assert all(OmegaConf.select(cfg, old, default=absent) is absent for cfg in configs), old
        path = new.split(" ")[0].removesuffix("._target_")
        assert any(OmegaConf.select(cfg, path, default=absent) is not absent for cfg in configs) or \
            path.endswith("momentum"), (old, new)  # AdamW's config has betas; SGD's would have momentum


def test_an_old_key_in_a_users_own_config_stops_with_its_new_place():
    cfg = _compose()
    OmegaConf.set_struct(cfg, False)
    cfg.data.num_workers = 0  # what an experiment file written for 0.1 sets
    with pytest.raises(ConfigError, match=r"data.num_workers is now data.loader.num_workers"):
        check_moved_keys(cfg)
    cfg = _compose()
    OmegaConf.set_struct(cfg, False)
    cfg.model.module.optimizer = "sgd"
    with pytest.raises(ConfigError, match=r"model.module.optimizer=sgd is now a partial optimizer"):
        check_moved_keys(cfg)
    check_moved_keys(_compose())  # today's layout passes


def test_a_run_folder_from_before_the_parts_is_read_as_it_trained(tmp_path):
    old = OmegaConf.create({**OLD_DATA, "root": str(tmp_path / "syn")})
    data = upgrade_data_config(old)
    assert "num_workers" not in data and data.loader.num_workers == 0 and data.checks.policy == "strict"
    dm = instantiate(data, _convert_="all")
    assert (dm.num_workers, dm.cache.mode, dm.policy, dm.balance, dm.train_fraction) == (0, "none", "strict", None, 0.5)
    assert dm.synthetic == OLD_DATA["synthetic"]
    dm.setup()
    assert len(dm.split("train").records) == 4  # half of the 8 training images
    assert upgrade_data_config(data) is data  # the new layout comes back as it is
