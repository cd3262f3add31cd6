"""Open whatever a user points a command at: a yolotl checkpoint (.ckpt) or an exported ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolotl.models.checkpoint import load


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` (or None): ``"cuda"`` when a CUDA GPU is there, else ``"mps"`` on Apple silicon, else
    ``"cpu"``; any other value is returned as given."""
    if device not in (None, "auto"):
        return str(device)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_predictor(path: str | Path, device: str = "auto") -> Any:
    """A detector with yolotl's ``predict()``: ``YoloDetector`` for checkpoints (on ``device``, see
    :func:`resolve_device`), ``OnnxDetector`` for ``.onnx`` (ONNX Runtime's best available provider)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from yolotl.inference.onnx_runtime import OnnxDetector

        return OnnxDetector(path)
    return load(path, resolve_device(device))
