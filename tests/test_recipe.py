"""recipe=auto: settings chosen from the data (tiny objects, grey images, balanced classes); the user's win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from PIL import Image

from yolotl import ConfigError
from yolotl.api import config_dir
from yolotl.api.recipe import apply_recipe, choose_recipe, profile_training_split
from yolotl.cli.train import _keep_given_settings


def _dataset(root: Path, *, box: int, grey: bool, counts: tuple[int, ...] = (10, 10), size: int = 640) -> Path:
    """A YOLO dataset of ``size``-px smooth random images with ``box``-px squares, ``counts`` boxes per class."""
    rng = np.random.default_rng(0)
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(0, len(labels), 5):
            coarse = rng.integers(0, 256, (8, 8, 1 if grey else 3), dtype=np.uint8)  # smooth, photo-like spread
            image = Image.fromarray(np.repeat(coarse, 3, axis=2) if grey else coarse).resize((size, size), Image.BILINEAR)
            image.save(root / split / "images" / f"{i}.jpg")
            rows = [f"{c} {(j * 100 + 60) / size:.5f} 0.5 {box / size:.5f} {box / size:.5f}"
                    for j, c in enumerate(labels[i:i + 5])]
            (root / split / "labels" / f"{i}.txt").write_text("\n".join(rows) + "\n")
    (root / "data.yaml").write_text(f"train: train/images\nval: val/images\nnc: {len(counts)}\n"
                                    f"names: {[f'c{c}' for c in range(len(counts))]}\n")
    return root


def _config(root: Path, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", return_hydra_config=True,
                       overrides=["recipe=auto", "data=yolo", f"data.root={root}", "data.reading.test_split=null",
                                  f"paths.output_dir={root}/run", *overrides])


def test_tiny_objects_lead_to_a_larger_image_size(tmp_path):
    """9-px objects on 640-px images: 5.9 px at 416 and 7.2 at 512 (under the stride of 8), 9 at 640."""
    cfg = _config(_dataset(tmp_path / "d", box=9, grey=False))
    recipe = apply_recipe(cfg)
    assert cfg.data.image_size == 640 and cfg.model.detector.image_size == 640
    size = next(c for c in recipe["choices"] if c["key"] == "data.image_size")
    assert size["changed"] and "under 8 px" in size["reason"]
    assert recipe["profile"]["small_share"][416] == 1.0


def test_the_configured_size_is_profiled_itself(tmp_path):
    """At 320 px, 30-px objects on 1280-px images are 7.5 px (under the stride): 416 would make them 9.75."""
    cfg = _config(_dataset(tmp_path / "d", box=30, grey=False, size=1280), "data.image_size=320")
    recipe = apply_recipe(cfg)
    assert recipe["profile"]["small_share"][320] == 1.0 and cfg.data.image_size == 416


def test_large_objects_keep_the_configured_size(tmp_path):
    cfg = _config(_dataset(tmp_path / "d", box=60, grey=False))
    apply_recipe(cfg)
    assert cfg.data.image_size == 416


def test_grey_data_far_from_imagenet_trains_the_whole_backbone(tmp_path):
    cfg = _config(_dataset(tmp_path / "d", box=60, grey=True))
    recipe = apply_recipe(cfg)
    assert cfg.strategy._target_ == "yolotl.EndToEnd" and cfg.strategy.backbone_lr_mult == 1.0
    assert recipe["profile"]["gray_share"] == 1.0
    colour = _config(_dataset(tmp_path / "c", box=60, grey=False))
    apply_recipe(colour)
    assert colour.strategy._target_ == "yolotl.Finetune"


@pytest.mark.parametrize("strategy", [{"_target_": "yolotl.training.strategies.EndToEnd"},
                                      {"_target_": "yolotl.TransferStrategy", "name": "end_to_end"}])
def test_the_strategy_is_known_by_its_own_name_not_its_target(tmp_path, strategy):
    """Grey data: a strategy that calls itself end_to_end is kept as configured, whatever its _target_."""
    cfg = _config(_dataset(tmp_path / "d", box=60, grey=True))
    with open_dict(cfg):
        cfg.strategy = strategy
    choice = next(c for c in apply_recipe(cfg)["choices"] if c["key"] == "strategy")
    assert choice["value"] == "end_to_end" and not choice["changed"], choice
    assert OmegaConf.to_container(cfg.strategy) == strategy


def test_under_a_running_hydra_the_end_to_end_config_is_composed_there_too(tmp_path):
    root = _dataset(tmp_path / "d", box=60, grey=True)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["recipe=auto", "data=yolo", f"data.root={root}",
                                                      "data.reading.test_split=null", f"paths.output_dir={root}/run"])
        apply_recipe(cfg)
    assert cfg.strategy._target_ == "yolotl.EndToEnd" and cfg.strategy.backbone_lr_mult == 1.0


def test_balanced_classes_turn_balancing_off_and_imbalanced_ones_keep_it(tmp_path):
    balanced = _config(_dataset(tmp_path / "b", box=60, grey=False, counts=(10, 10)))
    apply_recipe(balanced)
    assert balanced.data.selection.balance is None and balanced.model.module.loss.classes is None
    skewed = _config(_dataset(tmp_path / "s", box=60, grey=False, counts=(20, 5)))
    apply_recipe(skewed)
    assert skewed.data.selection.balance == "repeat_factor" and skewed.model.module.loss.classes == "inverse_sqrt"
    empty = _config(_dataset(tmp_path / "e", box=60, grey=False, counts=(10, 0, 5)))
    reasons = {c["key"]: c["reason"] for c in apply_recipe(empty)["choices"]}
    assert empty.data.selection.balance == "repeat_factor"
    assert "1 class(es) without training boxes (c1)" in reasons["data.selection.balance"]


def test_what_the_command_line_gives_wins(tmp_path):
    root = _dataset(tmp_path / "d", box=9, grey=True)
    cfg = _config(root, "data.image_size=320", "strategy=finetune", "strategy.freeze_stages=1")
    HydraConfig.instance().set_config(cfg)
    _keep_given_settings(cfg)
    assert {"data.image_size", "strategy", "strategy.freeze_stages"} <= set(cfg.recipe.keep)
    assert "data" not in cfg.recipe.keep and "data.root" in cfg.recipe.keep  # data=yolo picks a reader only
    recipe = apply_recipe(cfg)
    assert cfg.data.image_size == 320 and cfg.strategy._target_ == "yolotl.Finetune" and cfg.strategy.freeze_stages == 1
    kept = {c["key"]: c for c in recipe["choices"]}
    assert not kept["data.image_size"]["changed"] and kept["data.image_size"]["reason"].startswith("given by you")


def test_auto_is_the_default():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        assert compose(config_name="train").recipe.mode == "auto"
        assert compose(config_name="train", overrides=["experiment=bccd"]).recipe.mode == "auto"


def test_keys_listed_in_recipe_keep_are_left_alone(tmp_path):
    """Grey 9-px objects: the recipe would train at 640 px end to end; a keep list (an experiment
    file's, or set from Python) wins."""
    cfg = _config(_dataset(tmp_path / "d", box=9, grey=True), "recipe.keep=[data.image_size,strategy]")
    apply_recipe(cfg)
    assert cfg.data.image_size == 416 and cfg.strategy._target_ == "yolotl.Finetune"


def test_fixed_changes_nothing_and_a_wrong_mode_is_named(tmp_path):
    cfg = _config(_dataset(tmp_path / "d", box=9, grey=True), "recipe=fixed")
    assert apply_recipe(cfg) == {"mode": "fixed"} and cfg.data.image_size == 416
    cfg.recipe.mode = "automatic"
    with pytest.raises(ConfigError, match="recipe=auto"):
        apply_recipe(cfg)


def test_choices_can_be_made_without_hydra(tmp_path):
    profile = profile_training_split(OmegaConf.create({"format": "yolo", "root": str(_dataset(tmp_path / "d", box=9, grey=False))}))
    current = {"data.image_size": 416, "strategy": "finetune", "data.selection.balance": "repeat_factor",
               "model.module.loss.classes": "inverse_sqrt"}
    choices = {c.key: c for c in choose_recipe(profile, current, keep={"data.image_size"})}
    assert choices["data.image_size"].value == 416 and not choices["data.image_size"].changed


def test_a_semantic_run_keeps_the_box_rules_off_and_the_strategy_rule_on(tmp_path):
    """Tiny, skewed, grey boxes would change size and balancing for a detector; for task=semantic (drawn into
    class maps, no boxes to judge by) only the strategy rule applies."""
    cfg = _config(_dataset(tmp_path / "d", box=9, grey=True, counts=(20, 5)), "model.detector.task=semantic")
    recipe = apply_recipe(cfg)
    choices = {c["key"]: c for c in recipe["choices"]}
    assert cfg.data.image_size == 416 and not choices["data.image_size"]["changed"]
    assert "task=semantic" in choices["data.image_size"]["reason"]
    assert cfg.data.selection.balance == "repeat_factor" and cfg.model.module.loss.classes == "inverse_sqrt"
    assert choices["strategy"]["changed"] and choices["strategy"]["value"] == "end_to_end"
