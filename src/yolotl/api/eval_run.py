"""``evaluate(...)``: score a trained checkpoint on a dataset split; write metrics, COCO JSON and a report.

A plain function (notebooks, tests); ``yolotl-eval`` (:mod:`yolotl.cli.eval`) is its Hydra shell::

    yolotl-eval ckpt=outputs/<run>/checkpoints/best.ckpt                 # the run's own data, test split
    yolotl-eval ckpt=best.ckpt data=voc data.root=../shared/datasets/bccd split=val score_threshold=0.4
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from yolotl.api.run_folder import run_data_config, run_dir_of
from yolotl.errors import ConfigError
from yolotl.evaluation.coco_json import coco_ground_truth, coco_results, write_json
from yolotl.evaluation.evaluator import (
    Evaluation,
    Predictor,
    check_class_names,
    collect,
    score,
)
from yolotl.inference.loading import load_predictor
from yolotl.inference.torch_runtime import TorchDetector
from yolotl.models.detector import YoloDetector

log = logging.getLogger("yolotl.evaluate")


def evaluate(
    checkpoint: str | Path | Predictor | YoloDetector,
    data: Any = None,
    split: str = "test",
    output_dir: str | Path | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    report: bool = True,
    batch_size: int = 8,
    device: str = "auto",
    max_grid_images: int = 16,
) -> dict[str, Any]:
    """Evaluate a checkpoint, an exported ``.onnx`` model or OpenVINO ``.xml`` (FP32 or INT8, run by ONNX
    Runtime or OpenVINO; ``device`` is then not used) or a loaded detector (what ``yolotl.load`` returns, an ``OnnxDetector`` or a bare
    ``YoloDetector``) on ``split`` of ``data``; write and return the results.

    ``data`` is a :class:`~yolotl.DetectionDataModule`, a data config (dict / DictConfig with
    ``_target_``), or ``None`` for the data the checkpoint's run trained on (its ``config.yaml``).
    ``score_threshold`` is the operating point for the chosen-confidence P/R/F1, the confusion
    matrix and the prediction grid; mAP and the curves use every detection down to 0.001.

    Writes to ``output_dir`` (default ``<run>/eval/<split>``, for an ONNX or OpenVINO model ``<run>/eval/<split>_<file
    name>``, e.g. ``test_best_int8_onnx``, so it does not replace the checkpoint's): ``metrics.json``,
    ``predictions.json`` (COCO results), ``ground_truth.json`` (COCO) and ``report/``; a segmenting
    detector's masks are scored too and both JSON files carry them as RLE (``COCOeval(..., "segm")``).
    """
    start = time.perf_counter()
    if isinstance(checkpoint, YoloDetector):
        checkpoint = TorchDetector(checkpoint)
    detector = checkpoint if hasattr(checkpoint, "predict") else load_predictor(checkpoint, device)
    ckpt_path = None if hasattr(checkpoint, "predict") else Path(checkpoint)
    datamodule = _datamodule(data, ckpt_path)
    records = datamodule.split(split).records
    label_map = check_class_names(detector.class_names, datamodule.class_names, f"{datamodule.root} ({split})")
    evaluation = score(collect(detector, records, iou_threshold=iou_threshold, batch_size=batch_size,
                               label_map=label_map), score_threshold)
    out = Path(output_dir) if output_dir is not None else _default_output(ckpt_path, split)
    result = {
        "checkpoint": str(ckpt_path) if ckpt_path else type(detector).__name__,
        "data": str(datamodule.root),
        "split": split,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "metrics": evaluation.metrics,
        "files": _write(evaluation, out, ckpt_path, score_threshold, report, max_grid_images),
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def _write(
    evaluation: Evaluation, out: Path, ckpt: Path | None, threshold: float, report: bool, grid: int
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    gt = coco_ground_truth(evaluation.targets, evaluation.image_paths, evaluation.image_sizes, evaluation.class_names)
    files = {
        "metrics": str(out / "metrics.json"),
        "predictions": str(write_json(coco_results(evaluation.predictions), out / "predictions.json")),
        "ground_truth": str(write_json(gt, out / "ground_truth.json")),
    }
    if report:
        from yolotl.evaluation.report import write_report

        page = write_report(
            out / "report",
            class_names=evaluation.class_names,
            predictions=evaluation.predictions,
            targets=evaluation.targets,
            image_paths=evaluation.image_paths,
            metrics=evaluation.metrics,
            coco_precision=evaluation.coco_precision,
            coco_classes=evaluation.coco_classes,
            mask_precision=evaluation.mask_precision,
            mask_classes=evaluation.mask_classes,
            run_dir=run_dir_of(ckpt),
            score_threshold=threshold,
            max_grid_images=grid,
        )
        files["report"] = str(page)
    return files


def _default_output(checkpoint: Path | None, split: str) -> Path:
    run = run_dir_of(checkpoint)
    if run is not None:
        if checkpoint is not None and checkpoint.suffix.lower() in (".onnx", ".xml"):
            return run / "eval" / f"{split}_{checkpoint.name.replace('.', '_')}"
        return run / "eval" / split
    stem = checkpoint.stem if checkpoint is not None else "detector"
    return Path(f"eval_{stem}_{split}")


def _datamodule(data: Any, checkpoint: Path | None) -> Any:
    from hydra.utils import instantiate

    if data is None:
        data = run_data_config(checkpoint)
        if data is None:
            raise ConfigError(
                f"no data given and {checkpoint} is not inside a yolotl-train run folder (no config.yaml); "
                "pass data=<synthetic|yolo|voc|coco> data.root=<dataset folder>"
            )
        log.info("data: the run's own dataset (%s)", data.get("root"))
    if isinstance(data, (dict, DictConfig)):
        data = instantiate(data, _convert_="all")
    data.prepare_data()
    return data
