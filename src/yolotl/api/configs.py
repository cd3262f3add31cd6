"""Where yolotl's Hydra configs live (packaged in the wheel, or ``conf/`` of a source checkout), and one
option of a config group composed from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig


def config_dir() -> str:
    """The packaged configs (wheel) or the repository's conf/ (source checkout, editable install)."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    source = package.parents[1] / "conf"
    if (source / "train.yaml").is_file():
        return str(source)
    raise FileNotFoundError(f"yolotl configs not found in {packaged} or {source}; reinstall yolotl")


def override_key(override: str) -> str:
    """The config key a command-line override sets: ``+trainer.max_time=1`` -> ``trainer.max_time``."""
    return override.lstrip("+~").split("=", 1)[0]


def config_option(group: str, option: str) -> DictConfig:
    """One option of a config group (``strategy``, ``end_to_end``) as Hydra composes it, interpolations left
    for the config it joins: through the running app's search path under Hydra (``yolotl-train``), else
    from :func:`config_dir`. What ``group=option`` on the command line would put under ``group``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"+{group}={option}"]
    if GlobalHydra.instance().is_initialized():
        return compose(overrides=overrides)[group]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(overrides=overrides)[group]
