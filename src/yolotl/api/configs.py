"""Where yolotl's Hydra configs live: packaged in the wheel, or ``conf/`` of a source checkout."""

from __future__ import annotations

from pathlib import Path


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
