"""``recipe=auto`` (the default): training settings chosen from the data before the run, each with
its reason.

The training split is profiled (:func:`yolotl.data.profile.profile_records`) and three rules set
what the profile can justify; every other setting stays as configured. A key the user gave (on the
command line, or listed in ``recipe.keep``) is never changed: its choice is reported as kept.

1. **Image size.** An object whose shorter side is under the finest stride (8 px) may hold no
   anchor point, so the task-aligned assigner has nothing to train it with. If more than
   ``SMALL_SHARE`` of the training boxes are that small at the configured size, the size goes up
   to the smallest of 512 or 640 where they are not (640 at most: CPU cost grows with its square).
2. **Strategy.** Images far from ImageNet's colour statistics (mostly grey, or channel means and
   spreads several ImageNet standard deviations away) make the frozen early stages' features
   and their norm statistics a poor fit: ``end_to_end`` trains the whole backbone at full rate.
   Otherwise the configured strategy stays.
3. **Class balancing.** With the classes within ``BALANCED`` x of each other in boxes, repeat-factor
   sampling and per-class loss weights have nothing to correct: both off. Otherwise they stay.

The rules and the evidence behind each are in docs/suite.md ("recipe=auto").
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from yolotl.api.configs import config_option
from yolotl.data.formats import prepare_dataset, read_split
from yolotl.data.profile import CANDIDATE_SIZES, DatasetProfile, profile_records
from yolotl.errors import ConfigError

__all__ = ["RecipeChoice", "apply_recipe", "choose_recipe", "profile_training_split"]

log = logging.getLogger(__name__)

SMALL_SHARE = 0.05  # boxes under the finest stride tolerated at the chosen size
FAR_SHIFT = 1.0  # ImageNet shift (yolotl.data.profile) above which the backbone trains end to end
GREY_SHARE = 0.5  # share of grey images above which the data counts as far from ImageNet
BALANCED = 2.0  # most / least common class, in boxes, under which no balancing is done
MODES = ("fixed", "auto")


@dataclass
class RecipeChoice:
    """One decision: the config key, the value chosen (or kept), why, and whether it changed the config."""

    key: str
    value: Any
    reason: str
    changed: bool = False

    def line(self) -> str:
        verb = "->" if self.changed else "kept"
        value = "null" if self.value is None else self.value
        return f"recipe    {self.key} {verb} {value}: {self.reason}"


def choose_recipe(profile: DatasetProfile, current: dict[str, Any], keep: set[str] | frozenset[str] = frozenset(),
                  task: str = "detect") -> list[RecipeChoice]:
    """The recipe's decisions for ``profile``, given the ``current`` values of the keys it sets
    (``data.image_size``, ``strategy``, ``data.selection.balance``, ``model.module.loss.classes``); keys in ``keep``
    (or under one of them) are reported, never changed. For ``task="semantic"`` the two box rules (image size,
    balancing by boxes) do not apply: those keys stay as configured, said so; the strategy rule applies."""
    if task == "semantic":
        reason = "task=semantic: no boxes to judge it by, as configured"
        choices = [RecipeChoice("data.image_size", int(current["data.image_size"]), reason),
                   _strategy(profile, str(current["strategy"])),
                   RecipeChoice("data.selection.balance", current["data.selection.balance"], reason),
                   RecipeChoice("model.module.loss.classes", current["model.module.loss.classes"], reason)]
    else:
        choices = [_image_size(profile, int(current["data.image_size"])),
                   _strategy(profile, str(current["strategy"])),
                   *_balancing(profile, current["data.selection.balance"], current["model.module.loss.classes"])]
    for choice in choices:
        if choice.changed and _kept(choice.key, keep):
            choice.value, choice.changed = current[choice.key], False
            choice.reason = f"given by you (the recipe would choose otherwise: {choice.reason})"
    return choices


def _kept(key: str, keep: set[str] | frozenset[str]) -> bool:
    return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keep)


def _image_size(profile: DatasetProfile, size: int) -> RecipeChoice:
    share = _small_share(profile, size)
    if share <= SMALL_SHARE:
        return RecipeChoice("data.image_size", size, f"{share:.1%} of the training boxes are under 8 px at {size} px")
    for candidate in (s for s in CANDIDATE_SIZES if s > size):
        if _small_share(profile, candidate) <= SMALL_SHARE or candidate == max(CANDIDATE_SIZES):
            return RecipeChoice("data.image_size", candidate,
                                f"{share:.1%} of the training boxes are under 8 px (the finest stride) at {size} px, "
                                f"{_small_share(profile, candidate):.1%} at {candidate} px", changed=True)
    return RecipeChoice("data.image_size", size, f"{share:.1%} of the boxes are under 8 px at {size} px, and "
                        f"{max(CANDIDATE_SIZES)} px is the largest size the recipe picks")


def _small_share(profile: DatasetProfile, size: int) -> float:
    if size not in profile.small_share:
        raise ValueError(f"the profile has no box sizes at {size} px; profile_records(..., sizes=) must include it")
    return profile.small_share[size]


def _strategy(profile: DatasetProfile, strategy: str) -> RecipeChoice:
    facts = (f"ImageNet colour shift {profile.imagenet_shift:.2f} (far is over {FAR_SHIFT}), "
             f"{profile.gray_share:.0%} grey images (far is over {GREY_SHARE:.0%})")
    if profile.imagenet_shift > FAR_SHIFT or profile.gray_share > GREY_SHARE:
        if strategy == "end_to_end":
            return RecipeChoice("strategy", strategy, f"{facts}: the whole backbone trains")
        return RecipeChoice("strategy", "end_to_end", f"{facts}: far from ImageNet, so the whole backbone trains "
                            "at full rate", changed=True)
    return RecipeChoice("strategy", strategy, f"{facts}: close enough to ImageNet for the configured strategy")


def _balancing(profile: DatasetProfile, balance: Any, class_weights: Any) -> list[RecipeChoice]:
    imbalance = profile.imbalance
    if imbalance < BALANCED:
        reason = f"classes within {imbalance:.2f}x of each other in boxes: nothing to rebalance"
        return [RecipeChoice("data.selection.balance", None, reason, changed=balance is not None),
                RecipeChoice("model.module.loss.classes", None, reason, changed=class_weights is not None)]
    if imbalance == float("inf"):
        empty = [name for name, n in profile.boxes_per_class.items() if n == 0]
        reason = (f"{len(empty)} class(es) without training boxes ({', '.join(empty[:3])}): "
                  "the classes are far apart")
    else:
        reason = f"most / least common class: {imbalance:.1f}x in boxes"
    return [RecipeChoice("data.selection.balance", balance, reason), RecipeChoice("model.module.loss.classes", class_weights, reason)]


def profile_training_split(data_cfg: DictConfig) -> DatasetProfile:
    """Profile the training split the data config names (the synthetic set is written first)."""
    fmt = str(data_cfg.format)
    root = Path(str(data_cfg.root))
    reading = data_cfg.get("reading") or {}
    synthetic = reading.get("synthetic")
    prepare_dataset(fmt, root, OmegaConf.to_container(synthetic, resolve=True) if synthetic else None)
    class_names = reading.get("class_names")
    split = read_split(fmt, root, str(reading.get("train_split") or "train"),
                       list(class_names) if class_names else None,
                       reading.get("image_dir"), reading.get("annotation_dir"))
    sizes = sorted({int(data_cfg.get("image_size") or CANDIDATE_SIZES[0]), *CANDIDATE_SIZES})  # the configured one too
    return profile_records([r.for_training() for r in split.records], split.class_names, sizes=sizes)  # no crowds


def apply_recipe(cfg: DictConfig) -> dict[str, Any]:
    """With ``recipe.mode=auto``: profile the data, change ``cfg`` where the rules say so, log each choice
    with its reason; returns what metrics.json keeps under ``recipe``. ``fixed``: nothing changes."""
    recipe = cfg.get("recipe") or {}
    mode = str(recipe.get("mode", "fixed"))
    if mode not in MODES:
        raise ConfigError(f"recipe.mode={mode!r}: use recipe=auto (settings chosen from the data) or recipe=fixed")
    if mode == "fixed":
        return {"mode": "fixed"}
    profile = profile_training_split(cfg.data)
    current = {"data.image_size": cfg.data.image_size, "strategy": _strategy_name(cfg.strategy),
               "data.selection.balance": OmegaConf.select(cfg, "data.selection.balance"), "model.module.loss.classes": cfg.model.module.loss.get("classes")}
    choices = choose_recipe(profile, current, frozenset(str(k) for k in recipe.get("keep") or []),
                            task=str(cfg.model.detector.get("task", "detect")))
    for choice in choices:
        if choice.changed:
            _set(cfg, choice)
        log.info(choice.line())
    return {"mode": "auto", "choices": [asdict(c) for c in choices], "profile": profile.to_dict()}


def _strategy_name(strategy_cfg: DictConfig) -> str:
    """The name the configured strategy gives itself (``TransferStrategy.name``), whatever its ``_target_``."""
    return instantiate(strategy_cfg, _convert_="all").name


def _set(cfg: DictConfig, choice: RecipeChoice) -> None:
    with open_dict(cfg):
        if choice.key == "strategy":  # as strategy=<name> on the command line would set it
            cfg.strategy = config_option("strategy", choice.value)
        else:
            OmegaConf.update(cfg, choice.key, choice.value, merge=False)
