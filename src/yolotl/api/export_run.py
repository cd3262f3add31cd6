"""``export(checkpoint)``: a trained detector as an ONNX file or an OpenVINO IR, optionally with a
statically quantised INT8 twin; ``yolotl-export`` (:mod:`yolotl.cli.export`) is its shell.

    yolotl-export ckpt=outputs/<run>/checkpoints/best.ckpt                 # -> best.onnx next to it
    yolotl-export ckpt=best.ckpt nms=true output=model.onnx
    yolotl-export ckpt=best.ckpt quantize=int8                             # -> best.onnx and best.int8.onnx
    yolotl-export ckpt=best.ckpt format=openvino quantize=int8             # -> best.xml/.bin, best.int8.xml/.bin

The CLI prints the written paths and how closely the runtime reproduces PyTorch on a random batch.
INT8 calibration reads ``calibration_images`` training images of the checkpoint's run (its
``config.yaml``), or the images of ``calibration`` (a folder or a glob) when given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolotl.api.predict_run import find_images
from yolotl.api.run_folder import run_data_config
from yolotl.errors import ConfigError, DatasetError, first_line
from yolotl.inference.onnx_export import DEFAULT_OPSET, export_onnx
from yolotl.models.checkpoint import load
from yolotl.models.detector import YoloDetector

FORMATS = ("onnx", "openvino")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}  # the file each format writes (OpenVINO: its .bin beside it)
QUANTIZATIONS = ("int8",)
DEFAULT_CALIBRATION_IMAGES = 64

log = logging.getLogger("yolotl.export")


def export(
    checkpoint: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    nms: bool = False,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    quantize: str | None = None,
    calibration: str | Path | None = None,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> Path:
    """Export the detector in a ``yolotl-train`` checkpoint; returns the written model (the INT8 one with
    ``quantize="int8"``).

    ``format``: ``"onnx"`` (ONNX Runtime) or ``"openvino"`` (an OpenVINO IR, ``.xml`` + ``.bin``: the same
    graph converted, see :func:`~yolotl.inference.openvino_export.export_openvino`). ``output`` is the
    float32 model, default :func:`output_path` (``best.ckpt`` -> ``best.onnx`` / ``best.xml``). The
    other export arguments are :func:`~yolotl.inference.onnx_export.export_onnx`'s. With
    ``quantize="int8"`` a statically quantised copy is written beside it (``best.int8.onnx`` by
    :func:`~yolotl.inference.onnx_quantize.quantize_onnx`, ``best.int8.xml`` by NNCF in
    :func:`~yolotl.inference.openvino_quantize.quantize_openvino`), calibrated on ``calibration_images`` images:
    spread evenly over the training split of the checkpoint's run, or over the images of
    ``calibration`` (an image folder or a glob) when given. The calibration images are found before
    anything is exported.

    A semantic segmenter (``task=semantic``) exports its stride-8 class ``logits`` (no ``nms``: a
    ConfigError); every format and ``quantize="int8"`` work for it as for a detector, and the runtimes'
    ``predict()`` returns its class maps.

    Raises:
        ConfigError: an unknown format or quantisation, no or too few calibration images.
        CheckpointError: a bad checkpoint. YolotlError: export or quantisation failed.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; supported formats: {list(FORMATS)}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ConfigError(f"unknown quantize={quantize!r}; use one of {list(QUANTIZATIONS)} or null (float32 only)")
    images = calibration_set(checkpoint, calibration, calibration_images) if quantize else []
    detector = load(checkpoint)
    target = output_path(checkpoint, output, format)
    if format == "openvino":
        from yolotl.inference.openvino_export import export_openvino

        path = export_openvino(detector, target, nms=nms, dynamic=dynamic, opset=opset, exporter=exporter)
    else:
        path = export_onnx(detector, target, nms=nms, dynamic=dynamic, opset=opset, exporter=exporter)
    if not quantize:
        return path
    if format == "openvino":
        from yolotl.inference.openvino_quantize import quantize_openvino

        return quantize_openvino(path, images)
    from yolotl.inference.onnx_quantize import quantize_onnx

    return quantize_onnx(path, images)


def output_path(checkpoint: str | Path, output: str | Path | None = None, format: str = "onnx") -> Path:
    """Where :func:`export` writes the float32 model: ``output``, else the checkpoint's path with the
    format's suffix (``best.ckpt`` -> ``best.onnx``; ``format="openvino"``: ``best.xml``, and an
    ``output`` without ``.xml`` gains it)."""
    if format == "openvino":
        from yolotl.inference.openvino_export import xml_path

        return xml_path(output or Path(checkpoint).with_suffix(""))
    return Path(output) if output else Path(checkpoint).with_suffix(SUFFIXES.get(format, f".{format}"))


def calibration_set(
    checkpoint: str | Path, calibration: str | Path | None = None, count: int = DEFAULT_CALIBRATION_IMAGES
) -> list[Path]:
    """Up to ``count`` image files for INT8 calibration, spread evenly over their sorted list: those of
    ``calibration`` (a file, a folder or a glob) when given, else the training split of the
    checkpoint's run.

    Raises:
        ConfigError: no images, fewer than the minimum, or no run folder and no ``calibration``.
    """
    from yolotl.inference.onnx_quantize import MIN_CALIBRATION_IMAGES

    if count < MIN_CALIBRATION_IMAGES:
        raise ConfigError(
            f"calibration_images={count} is below the minimum of {MIN_CALIBRATION_IMAGES} for INT8 calibration"
        )
    if calibration is not None:
        try:
            found = find_images(calibration)
        except DatasetError:  # not found, or no images there: the message below says what to pass
            found = []
        where = f"calibration={calibration} (a file, an image folder or a glob)"
    else:
        found, where = _training_images(checkpoint), "the run's training split"
    if len(found) < MIN_CALIBRATION_IMAGES:
        raise ConfigError(
            f"INT8 calibration needs at least {MIN_CALIBRATION_IMAGES} images; {where} has {len(found)}. "
            "Pass calibration=<a folder or glob of images like the training images>"
        )
    picks = np.unique(np.linspace(0, len(found) - 1, min(count, len(found))).round().astype(int))
    chosen = [found[i] for i in picks]
    log.info("INT8 calibration: %d of %d images from %s", len(chosen), len(found), where)
    return chosen


def _training_images(checkpoint: str | Path) -> list[Path]:
    """The image files of the training split the checkpoint's run trained on (its ``config.yaml``)."""
    from hydra.utils import instantiate

    data = run_data_config(checkpoint)
    if data is None:
        raise ConfigError(
            f"no calibration images: {checkpoint} is not inside a yolotl-train run folder (no config.yaml); "
            "pass calibration=<a folder or glob of images like the training images>"
        )
    data.loader.cache = "none"  # only the paths are needed: no decoded images kept in memory
    try:
        records = instantiate(data, _convert_="all").split("train").records
    except DatasetError as err:
        raise ConfigError(
            f"the run's training images ({data.get('root')}) cannot be read for INT8 calibration "
            f"({first_line(err)}); pass calibration=<a folder or glob of images like them>"
        ) from err
    return sorted({Path(r.image_path) for r in records})


def parity_summary(detector: YoloDetector, path: str | Path, batch: int = 2, seed: int = 0) -> str:
    """One line: largest box and score differences between PyTorch and the exported model's runtime (ONNX
    Runtime for ``.onnx``, OpenVINO for an ``.xml``) on random images; for a semantic segmenter the largest
    logit difference and the share of input pixels given the same class."""
    from yolotl.inference.loading import is_openvino

    if is_openvino(path):
        from yolotl.inference.openvino_runtime import OpenVinoDetector

        runtime = OpenVinoDetector(path)
    else:
        from yolotl.inference.onnx_runtime import OnnxDetector

        runtime = OnnxDetector(path, providers=["CPUExecutionProvider"])
    size = detector.config.image_size
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    if detector.semantic:
        return _semantic_parity(detector, runtime, images)
    with torch.no_grad():
        boxes, scores = detector.decode(detector(images.to(detector.mean.device)))
    onnx_boxes, onnx_scores = runtime.boxes_and_scores(images)
    box_diff = float((onnx_boxes - boxes.cpu()).abs().max())
    score_diff = float((onnx_scores - scores.cpu()).abs().max())
    return (
        f"parity on a random batch of {batch} at {size}x{size}: max |box diff| {box_diff:.2e} px, "
        f"max |score diff| {score_diff:.2e} ({runtime.runtime} vs PyTorch)"
    )


def _semantic_parity(detector: YoloDetector, runtime: Any, images: torch.Tensor) -> str:
    """:func:`parity_summary`'s line for a semantic segmenter: logits and class maps at the input size."""
    from yolotl.ops.semantic import upsample_logits

    was_training = detector.training
    detector.eval()
    try:
        with torch.no_grad():
            want = detector(images.to(detector.mean.device)).logits.float().cpu()
    finally:
        detector.train(was_training)
    got = runtime.logits(images)
    size = images.shape[-2:]
    same = upsample_logits(got, size).argmax(1) == upsample_logits(want, size).argmax(1)
    return (
        f"parity on a random batch of {len(images)} at {size[0]}x{size[1]}: max |logit diff| "
        f"{float((got - want).abs().max()):.2e}, same class on {100 * float(same.float().mean()):.2f}% of pixels "
        f"({runtime.runtime} vs PyTorch)"
    )
