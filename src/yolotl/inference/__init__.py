"""Inference shared by every runtime (PyTorch, ONNX Runtime): image inputs -> boxes in original pixels."""

from yolotl.inference.predict import Detections, DetectFn, predict_images, resolve_classes

__all__ = ["DetectFn", "Detections", "predict_images", "resolve_classes"]
