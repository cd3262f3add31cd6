"""Resuming a ``yolotl-train`` run: its folder, its stored config, its last checkpoint.

``yolotl-train resume=<run folder | one of its checkpoints>`` continues the run in its own folder with
the config it started with (``<run>/config.yaml``) from ``checkpoints/last.ckpt`` (or the checkpoint
named): Lightning restores the weights, the EMA, the optimizer, the LR schedule, the epoch and step,
and every callback's state (best score, early stopping, the strategy's milestones). Settings that
change only how the run is carried out may be given again; one that would change what it trains
(data, model, strategy, budget, seed) is refused, naming it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from yolotl.api.configs import override_key
from yolotl.api.moved_keys import upgrade_data_config
from yolotl.errors import ConfigError

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = "last.ckpt"
# Overrides a resumed run accepts: they change where and how fast it runs, not what it learns.
RESUMABLE_KEYS = (
    "resume", "data.loader.num_workers", "data.loader.cache_dir", "data.checks.health_cache", "trainer.max_time",
    "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.accelerator", "test_after_fit",
)


def resume_point(resume: str | Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint)`` for a run folder (its ``checkpoints/last.ckpt``) or a checkpoint
    inside one; ConfigError naming what is missing otherwise."""
    path = Path(resume).expanduser()
    if path.is_dir():
        run, checkpoint = path, path / "checkpoints" / LAST_CHECKPOINT
    elif path.is_file():
        run, checkpoint = path.resolve().parent.parent, path
    else:
        raise ConfigError(f"resume={resume}: no such run folder or checkpoint")
    if not (run / CONFIG_FILE).is_file():
        raise ConfigError(f"resume={resume}: {run} holds no {CONFIG_FILE}, so it is not a yolotl-train run folder "
                          "(pass the run folder, e.g. outputs/latest, or <run>/checkpoints/last.ckpt)")
    if not checkpoint.is_file():
        raise ConfigError(f"resume={resume}: {checkpoint} not found; the run stopped before its first "
                          "checkpoint, so start it again instead")
    return run.resolve(), checkpoint.resolve()


def resumed_config(given: DictConfig, overrides: list[str]) -> tuple[DictConfig, Path]:
    """The stored config of the run ``given.resume`` names, with the values ``given`` (the config the
    command composed) has for the allowed ``overrides``, and the checkpoint to resume from."""
    resume = given.resume
    run, checkpoint = resume_point(resume)
    refused = [o for o in overrides if override_key(o) not in RESUMABLE_KEYS]
    if refused:
        raise ConfigError(
            f"resume continues {run} as it was configured; {', '.join(refused)} would change what it trains. "
            f"Only {', '.join(RESUMABLE_KEYS[1:])} may be given again; for a new run from its weights use "
            f"init_from={checkpoint}"
        )
    cfg = OmegaConf.load(run / CONFIG_FILE)
    cfg.data = upgrade_data_config(cfg.data)  # a run started before 0.2
    OmegaConf.set_struct(cfg, False)
    for key in {override_key(o) for o in overrides} - {"resume"}:
        OmegaConf.update(cfg, key, OmegaConf.select(given, key), merge=False)
    cfg.paths.output_dir = str(run)
    cfg.resume = str(checkpoint)
    return cfg, checkpoint

