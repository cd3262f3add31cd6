"""Inference shared by every runtime (PyTorch, ONNX Runtime, OpenVINO): image inputs -> boxes (or a semantic
segmenter's class maps) in original pixels.

``TorchDetector`` (PyTorch), ``OnnxDetector`` (ONNX Runtime) and ``OpenVinoDetector`` (OpenVINO) share one
``predict()``. They, ``export_onnx``/``export_openvino`` and ``quantize_onnx``/``quantize_openvino`` load on
first use, so this package imports without the models, onnx/onnxruntime or openvino/nncf installed
(``pip install "yolotl[onnx]"`` / ``"yolotl[openvino]"`` add them).
"""

from __future__ import annotations

import importlib
from typing import Any

from yolotl.inference.predict import (
    DetectFn, Detections, LogitsFn, predict_class_maps, predict_images, resolve_classes,
)

_LAZY = {
    "OnnxDetector": "yolotl.inference.onnx_runtime",
    "OpenVinoDetector": "yolotl.inference.openvino_runtime",
    "TorchDetector": "yolotl.inference.torch_runtime",
    "export_onnx": "yolotl.inference.onnx_export",
    "quantize_onnx": "yolotl.inference.onnx_quantize",
    "export_openvino": "yolotl.inference.openvino_export",
    "quantize_openvino": "yolotl.inference.openvino_quantize",
}

__all__ = [
    "DetectFn", "Detections", "LogitsFn", "OnnxDetector", "OpenVinoDetector", "TorchDetector", "export_onnx",
    "export_openvino", "predict_class_maps", "predict_images", "quantize_onnx", "quantize_openvino", "resolve_classes",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
