"""``evaluate(...)``: score a trained checkpoint on a dataset split; write metrics, COCO JSON and a report.

A plain function (notebooks, tests); ``yolotl-eval`` (:mod:`yolotl.cli.eval`) is its Hydra shell::

    yolotl-eval ckpt=outputs/<run>/checkpoints/best.ckpt                 # the run's own data, test split
    yolotl-eval ckpt=best.ckpt data=voc data.root=../shared/datasets/bccd split=val score_threshold=0.4
    yolotl-eval ckpt=semantic.ckpt data=semantic data.root=../shared/datasets/indoor_semseg   # mIoU report
"""

from __future__ import annotations

import json
import logging
import math
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
from yolotl.evaluation.semantic_eval import collect_semantic
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

    A semantic segmenter (``task=semantic``: a checkpoint, an exported model or a loaded one) is scored on the
    data module's eval batches (``masks="semantic"``, letterboxed to the model's input size; ``batch_size`` is then
    the data module's), the padding left out: mIoU, pixel accuracy, per-class IoU and pixel counts, the pixel
    confusion matrix in ``metrics.json`` (NaN IoUs written as null); ``score_threshold``/``iou_threshold`` do not
    apply, and the report shows the ``max_grid_images // 2`` worst images
    (:mod:`yolotl.evaluation.semantic_report`).
    """
    start = time.perf_counter()
    if isinstance(checkpoint, YoloDetector):
        checkpoint = TorchDetector(checkpoint)
    detector = checkpoint if hasattr(checkpoint, "predict") else load_predictor(checkpoint, device)
    ckpt_path = None if hasattr(checkpoint, "predict") else Path(checkpoint)
    if _is_semantic(detector):
        return _evaluate_semantic(detector, data, ckpt_path, split, output_dir, report, max_grid_images // 2, start)
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


def _is_semantic(detector: Any) -> bool:
    """A semantic segmenter's runtime (TorchDetector, ONNX, OpenVINO): a class per pixel, ``logits()``."""
    return bool(getattr(detector, "semantic", False))


def _evaluate_semantic(
    detector: Any, data: Any, ckpt_path: Path | None, split: str, output_dir: str | Path | None, report: bool,
    max_overlays: int, start: float,
) -> dict[str, Any]:
    """:func:`evaluate` for a semantic segmenter: class maps scored at the model's input size (as ``predict``
    letterboxes), the padding left out."""
    datamodule = _datamodule(data, ckpt_path, semantic=True, image_size=int(detector.image_size))
    datamodule.split(split)  # refuses an unknown or missing split with the fix
    label_map = check_class_names(detector.class_names, datamodule.class_names, f"{datamodule.root} ({split})")
    evaluation = collect_semantic(detector, datamodule._eval_loader(split), label_map, max_overlays)
    out = Path(output_dir) if output_dir is not None else _default_output(ckpt_path, split)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": str(out / "metrics.json")}
    if report:
        from yolotl.evaluation.semantic_report import write_semantic_report

        files["report"] = str(write_semantic_report(out / "report", evaluation, run_dir_of(ckpt_path)))
    result = {
        "checkpoint": str(ckpt_path) if ckpt_path else type(detector).__name__,
        "data": str(datamodule.root),
        "split": split,
        "task": "semantic",
        "metrics": evaluation.metrics,
        "classes": evaluation.class_table(),
        "confusion_matrix": evaluation.matrix.tolist(),  # pixels, rows truth, columns prediction
        "files": files,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    (out / "metrics.json").write_text(json.dumps(_no_nan(result), indent=2))  # NaN (no IoU) as null
    return result


def _no_nan(value: Any) -> Any:
    """``value`` with every NaN float replaced by None, so the JSON file is standard JSON."""
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_nan(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _default_output(checkpoint: Path | None, split: str) -> Path:
    run = run_dir_of(checkpoint)
    if run is not None:
        if checkpoint is not None and checkpoint.suffix.lower() in (".onnx", ".xml"):
            return run / "eval" / f"{split}_{checkpoint.name.replace('.', '_')}"
        return run / "eval" / split
    stem = checkpoint.stem if checkpoint is not None else "detector"
    return Path(f"eval_{stem}_{split}")


def _datamodule(data: Any, checkpoint: Path | None, semantic: bool = False, image_size: int | None = None) -> Any:
    """The data module to score on; ``semantic``: one whose targets carry class maps, letterboxed to
    ``image_size`` (a data config's own size is replaced; a data module's is kept, with a warning)."""
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
        extra = {"masks": "semantic"} if semantic else {}
        data = instantiate(data, _convert_="all", **extra, **({"image_size": image_size} if image_size else {}))
    elif semantic and not getattr(data, "semantic", False):
        raise ConfigError("a semantic segmenter is scored on class maps: build the data module with "
                          "DetectionDataModule(..., masks='semantic')")
    elif semantic and image_size is not None and data.image_size != image_size:
        log.warning("scoring at the data module's input size %d; the model was trained at %d (predict() uses %d)",
                    data.image_size, image_size, image_size)
    data.prepare_data()
    return data
