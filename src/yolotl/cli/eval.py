"""``yolotl-eval``: score a checkpoint on a dataset split with :func:`yolotl.evaluate`.

    yolotl-eval ckpt=outputs/<run>/checkpoints/best.ckpt                 # the run's own data, test split
    yolotl-eval ckpt=best.ckpt data=voc data.root=../shared/datasets/bccd split=val score_threshold=0.4
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from yolotl.cli.shell import cli_errors, hydra_command


def run(cfg: DictConfig) -> None:
    """Evaluate, print the headline numbers and where the files are."""
    from yolotl.api import evaluate

    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)  # its summary table duplicates ours
    with cli_errors():
        result = evaluate(
            cfg.ckpt,
            data=cfg.get("data"),
            split=cfg.split,
            output_dir=cfg.output_dir,
            score_threshold=cfg.score_threshold,
            iou_threshold=cfg.iou_threshold,
            report=cfg.report,
            batch_size=cfg.batch_size,
            device=cfg.device,
            max_grid_images=cfg.max_grid_images,
        )
    _print_summary(result)


def _print_summary(result: dict[str, Any]) -> None:
    from yolotl.evaluation.score_line import score_line

    print(score_line(result["split"], result["metrics"]))  # P, R, F1 at the best-F1 confidence (conf)
    for key, path in result["files"].items():
        print(f"{key:>13}: {path}")


main = hydra_command("eval", run)

if __name__ == "__main__":
    main()
