"""Open whatever a user points a command at: a yolotl checkpoint (.ckpt) or an exported ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolotl.models.checkpoint import load


def load_predictor(path: str | Path, device: str = "cpu") -> Any:
    """A detector with yolotl's ``predict()``: ``YoloDetector`` for checkpoints, ``OnnxDetector`` for ``.onnx``."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from yolotl.inference.onnx_runtime import OnnxDetector

        return OnnxDetector(path)
    return load(path, device)
