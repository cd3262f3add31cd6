"""``yolotl-eval``: score a checkpoint on a dataset split with :func:`yolotl.evaluate`.

    yolotl-eval ckpt=outputs/<run>/checkpoints/best.ckpt                 # the run's own data, test split
    yolotl-eval ckpt=best.ckpt data=voc data.root=../shared/datasets/bccd split=val score_threshold=0.4
    yolotl-eval ckpt=semantic.ckpt data=semantic data.root=../shared/datasets/indoor_semseg   # mIoU, IoU per class
"""

from __future__ import annotations

import logging
import math
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
    if "classes" in result:  # a semantic segmenter: IoU and pixels per class
        _print_classes(result["classes"])
    for key, path in result["files"].items():
        print(f"{key:>13}: {path}")


def _print_classes(classes: dict[str, dict[str, Any]]) -> None:
    width = max([len("class"), *(len(name) for name in classes)])
    print(f"{'class':<{width}}  {'IoU':>6}  {'pixels':>12}  {'predicted':>12}")
    for name, row in classes.items():
        iou = "-" if row["iou"] is None or math.isnan(row["iou"]) else f"{row['iou']:.4f}"  # NaN: in neither
        print(f"{name:<{width}}  {iou:>6}  {row['pixels']:>12}  {row['predicted_pixels']:>12}")


main = hydra_command("eval", run)

if __name__ == "__main__":
    main()
