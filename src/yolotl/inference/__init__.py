"""Inference shared by every runtime (PyTorch, ONNX Runtime): image inputs -> boxes in original pixels.

``TorchDetector`` (PyTorch) and ``OnnxDetector`` (ONNX Runtime) share one ``predict()``. They,
``export_onnx`` and ``quantize_onnx`` load on first use, so this package imports without the models or
onnx/onnxruntime installed (``pip install "yolotl[onnx]"`` adds them).
"""

from __future__ import annotations

import importlib
from typing import Any

from yolotl.inference.predict import DetectFn, Detections, predict_images, resolve_classes

_LAZY = {
    "OnnxDetector": "yolotl.inference.onnx_runtime",
    "TorchDetector": "yolotl.inference.torch_runtime",
    "export_onnx": "yolotl.inference.onnx_export",
    "quantize_onnx": "yolotl.inference.onnx_quantize",
}

__all__ = [
    "DetectFn", "Detections", "OnnxDetector", "TorchDetector", "export_onnx", "predict_images", "quantize_onnx",
    "resolve_classes",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
