"""``export(checkpoint)``: a trained detector as an ONNX file; ``yolotl-export`` (:mod:`yolotl.cli.export`) is its shell.

    yolotl-export ckpt=outputs/<run>/checkpoints/best.ckpt                 # -> best.onnx next to it
    yolotl-export ckpt=best.ckpt nms=true output=model.onnx

The CLI prints the written path and how closely ONNX Runtime reproduces PyTorch on a random batch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from yolotl.models.checkpoint import load
from yolotl.errors import ConfigError
from yolotl.inference.onnx_export import DEFAULT_OPSET, export_onnx
from yolotl.models.detector import YoloDetector

FORMATS = ("onnx",)


def export(
    checkpoint: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    nms: bool = False,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> Path:
    """Export the detector in a ``yolotl-train`` checkpoint; returns the written file.

    ``output`` defaults to the checkpoint's path with the format's suffix (``best.ckpt`` -> ``best.onnx``).
    The other arguments are :func:`~yolotl.inference.onnx_export.export_onnx`'s.

    Raises:
        ConfigError: an unknown format. CheckpointError: a bad checkpoint. YolotlError: export failed.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; supported formats: {list(FORMATS)}")
    checkpoint = Path(checkpoint)
    detector = load(checkpoint)
    path = Path(output) if output else checkpoint.with_suffix(f".{format}")
    return export_onnx(detector, path, nms=nms, dynamic=dynamic, opset=opset, exporter=exporter)


def parity_summary(detector: YoloDetector, path: str | Path, batch: int = 2, seed: int = 0) -> str:
    """One line: largest box and score differences between PyTorch and ONNX Runtime on random images."""
    from yolotl.inference.onnx_runtime import OnnxDetector

    runtime = OnnxDetector(path, providers=["CPUExecutionProvider"])
    size = detector.config.image_size
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        boxes, scores = detector.decode(detector(images.to(detector.mean.device)))
    onnx_boxes, onnx_scores = runtime.boxes_and_scores(images)
    box_diff = float((onnx_boxes - boxes.cpu()).abs().max())
    score_diff = float((onnx_scores - scores.cpu()).abs().max())
    return (
        f"parity on a random batch of {batch} at {size}x{size}: max |box diff| {box_diff:.2e} px, "
        f"max |score diff| {score_diff:.2e} (ONNX Runtime vs PyTorch)"
    )
