"""Config keys that moved when the DataModule and the Lightning module were rebuilt from parts (yolotl 0.2).

An old key on the command line or in a user's own config file stops with one line naming its new place,
instead of Hydra's "Key 'lr' is not in struct" or a TypeError from the constructor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from yolotl.errors import ConfigError

# old key -> new key
MOVED_KEYS: dict[str, str] = {
    "model.module.lr": "model.module.optimizer.lr",
    "model.module.weight_decay": "model.module.optimizer.weight_decay",
    "model.module.momentum": "model.module.optimizer.betas (AdamW: [beta1, beta2]) or .momentum (SGD)",
    "model.module.optimizer": "model.module.optimizer._target_ (torch.optim.AdamW or torch.optim.SGD)",
    "model.module.warmup_epochs": "model.module.schedule.warmup_epochs",
    "model.module.min_lr_ratio": "model.module.schedule.min_lr_ratio",
    "model.module.box_weight": "model.module.loss.box",
    "model.module.cls_weight": "model.module.loss.cls",
    "model.module.dfl_weight": "model.module.loss.dfl",
    "model.module.mask_weight": "model.module.loss.mask",
    "model.module.class_weights": "model.module.loss.classes",
    "model.module.val_score_threshold": "model.module.evaluation.score_threshold",
    "model.module.val_iou_threshold": "model.module.evaluation.iou_threshold",
    "model.module.max_detections": "model.module.evaluation.max_detections",
    "model.module.layer_decay": "strategy.layer_decay",
    "model.module.old_class_distill_weight": "model.module.old_classes.distill_weight",
    **{f"data.{key}": f"data.{group}.{key}" for group, keys in {
        "reading": ("class_names", "train_split", "val_split", "test_split", "image_dir", "annotation_dir", "synthetic"),
        "loader": ("num_workers", "pin_memory", "persistent_workers", "cache", "cache_dir"),
        "selection": ("fold", "num_folds", "fold_seed", "train_fraction", "fraction_seed", "balance", "repeat_threshold"),
        "checks": ("policy", "health_cache"),
    }.items() for key in keys},
}
# data config nodes of the parts (a config from before 0.2 gets them when it is read again: upgrade_data_config)
_DATA_PARTS = {"reading": "yolotl.data.ReadSettings", "loader": "yolotl.data.LoaderSettings",
               "selection": "yolotl.data.Selection", "checks": "yolotl.data.CheckSettings"}
DOCS = "docs/configs.md"


def moved_key_message(key: str) -> str | None:
    """The one-line fix for an old key (None: the key did not move). ``model.module.optimizer`` is a
    real key now; only its old string form (``adamw``/``sgd``) is reported, by :func:`check_moved_keys`."""
    new = MOVED_KEYS.get(key.lstrip("+~"))
    if new is None or key.lstrip("+~") == "model.module.optimizer":
        return None
    return f"{key.lstrip('+~')} is now {new} (the modules are built from parts since yolotl 0.2; {DOCS})"


def check_moved_keys(cfg: DictConfig, keys: Iterable[str] = MOVED_KEYS) -> None:
    """ConfigError for an old key in a composed config (a user's own YAML from before 0.2)."""
    for key in keys:
        value: Any = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if key == "model.module.optimizer" and isinstance(value, str):
            raise ConfigError(f"model.module.optimizer={value} is now a partial optimizer: "
                              f"{MOVED_KEYS[key]} with _partial_: true ({DOCS})")
        if value is not None and key != "model.module.optimizer":
            raise ConfigError(moved_key_message(key) or key)


def upgrade_data_config(data: DictConfig) -> DictConfig:
    """A data config as yolotl 0.2 reads it: the flat keys of a run folder's ``config.yaml`` written before
    0.2 (``num_workers``, ``policy``, ...) moved into their parts (``loader``, ``checks``, ...). A config in
    the new layout comes back unchanged, so every reader of a run's data config may call it."""
    old = {key.split(".", 1)[1]: new.split(".")[1] for key, new in MOVED_KEYS.items() if key.startswith("data.")}
    flat = [key for key in data.keys() if str(key) in old]
    if not flat:
        return data
    upgraded = OmegaConf.to_container(data, resolve=False)
    for key in flat:
        group = old[str(key)]
        node = upgraded.setdefault(group, {"_target_": _DATA_PARTS[group]})
        node[str(key)] = upgraded.pop(str(key))
    return OmegaConf.create(upgraded)
