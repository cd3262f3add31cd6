"""Where a ``yolotl-train`` run keeps its files, seen from one of its checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_dir_of(checkpoint: str | Path | None) -> Path | None:
    """The ``yolotl-train`` run folder of ``<run>/checkpoints/<name>.ckpt``, if the file sits in one."""
    if checkpoint is None:
        return None
    run = Path(checkpoint).resolve().parent.parent
    return run if (run / "config.yaml").is_file() else None


def run_data_config(checkpoint: str | Path | None) -> Any:
    """The data config (a DictConfig) the run of ``checkpoint`` trained on, from its ``config.yaml``;
    None when the checkpoint (or a model exported beside it) is not inside a run folder."""
    run = run_dir_of(checkpoint)
    if run is None:
        return None
    from omegaconf import OmegaConf

    from yolotl.api.moved_keys import upgrade_data_config

    return upgrade_data_config(OmegaConf.load(run / "config.yaml").data)  # a run from before 0.2 too
