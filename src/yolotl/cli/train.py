"""``yolotl-train``: compose data + model + strategy + trainer with Hydra and run :func:`yolotl.train`.

    yolotl-train experiment=bccd data.root=../shared/datasets/bccd strategy=feature_extract
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from yolotl.cli.console import console_to_hydra_logging
from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> float:
    """Train, print the run folder and the final mAP; returns val mAP50-95 (the sweep objective).

    The console shows yolotl's own lines, warnings and the progress bar; everything else goes to
    ``<run>/train.log`` (``conf/hydra/job_logging/yolotl.yaml``). A failed run's folder is removed
    or marked ``FAILED`` (:func:`yolotl.train`); a finished single run becomes ``outputs/latest``.
    """
    from yolotl.api import train

    console_to_hydra_logging()
    # Frozen norm layers are in eval mode on purpose (see yolotl.models.freezing.apply_freeze).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # Lightning's own use of a torch.utils._pytree name torch deprecated: nothing for a user to change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Under DDP the val/test scores come from torchmetrics, which gathers every rank's boxes before it
    # computes: each rank logs the same number, so Lightning's advice to sync them does not apply.
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('(val|test)/")
    with cli_errors():
        if cfg.get("resume"):
            from hydra.core.hydra_config import HydraConfig

            from yolotl.api.resume import resumed_config

            cfg, _ = resumed_config(cfg, list(HydraConfig.get().overrides.task))
        else:
            _keep_given_settings(cfg)
        metrics = train(cfg)
    if metrics.get("rank"):  # another DDP process: rank 0 reports
        return 0.0
    latest = _link_latest(metrics["run_dir"])
    _report(metrics, latest)
    return float(metrics.get("val", {}).get("map", 0.0))


def _keep_given_settings(cfg: DictConfig) -> None:
    """recipe=auto: what the command line sets (``data.image_size=512``, ``strategy=finetune``) is the
    user's, so the recipe keeps it (``recipe.keep``)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from yolotl.api.configs import override_key

    if not cfg.get("recipe") or cfg.recipe.get("mode") != "auto" or not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    groups = set(hydra.runtime.choices) - {"strategy"}  # data=coco chooses a reader, not data.image_size
    given = [key for key in map(override_key, hydra.overrides.task) if key not in groups]
    with open_dict(cfg):
        cfg.recipe.keep = sorted({*(cfg.recipe.get("keep") or []), *given} - {"recipe", "recipe.mode"})


def _link_latest(run_dir: str) -> Path | None:
    """``latest`` -> the run folder, in the top folder of a run folder under the working folder
    (``outputs/latest``), else beside the run folder; sweeps (``-m``) keep their own folders."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from yolotl.training.run import link_latest

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.RUN:
        return None
    run = Path(run_dir).resolve()
    try:
        inside = run.relative_to(Path.cwd().resolve()).parts
    except ValueError:
        inside = ()
    home = Path.cwd() / inside[0] if len(inside) > 1 else run.parent
    return link_latest(run, home)


def _report(metrics: dict[str, Any], latest: Path | None = None) -> None:
    from yolotl.api.run_summary import plural  # imported by training already
    from yolotl.evaluation.score_line import BRIEF, score_line

    final = metrics.get("test") or metrics.get("val") or {}
    split = "test" if metrics.get("test") else "val"
    print(f"\nrun folder: {metrics['run_dir']}" + (f"  (also {_shown(latest)})" if latest else ""))
    if not final:
        print(f"no scores: validation was off ({metrics['strategy']}, {metrics['backbone']}, "
              f"{plural(metrics['epochs'], 'epoch')}, {metrics['wall_time_s']} s)")
        return
    print(f"{score_line(split, final, BRIEF)}  ({metrics['strategy']}, {metrics['backbone']}, "
          f"{plural(metrics['epochs'], 'epoch')}, {metrics['wall_time_s']} s)")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


main = hydra_command("train", run)

if __name__ == "__main__":
    main()
