"""``yolotl-train``: compose data + model + strategy + trainer with Hydra and run :func:`yolotl.train`.

    yolotl-train experiment=bccd data.root=../shared/datasets/bccd strategy=feature_extract
"""

from __future__ import annotations

import warnings
from typing import Any

from omegaconf import DictConfig

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> float:
    """Train, print the run folder and the final mAP; returns val mAP50-95 (the sweep objective)."""
    from yolotl.api import train

    # Frozen norm layers are in eval mode on purpose (see TimmBackbone.freeze).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    with cli_errors():
        metrics = train(cfg)
    _report(metrics)
    return float(metrics.get("val", {}).get("map", 0.0))


def _report(metrics: dict[str, Any]) -> None:
    final = metrics.get("test") or metrics.get("val") or {}
    split = "test" if metrics.get("test") else "val"
    print(f"\nrun folder: {metrics['run_dir']}")
    print(
        f"{split} mAP50 = {final.get('map_50', float('nan')):.4f}, "
        f"mAP50-95 = {final.get('map', float('nan')):.4f} ({metrics['strategy']}, {metrics['backbone']}, "
        f"{metrics['epochs']} epochs, {metrics['wall_time_s']} s)"
    )


main = hydra_command("train", run)

if __name__ == "__main__":
    main()
