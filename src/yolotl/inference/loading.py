"""Open a trained model for predicting: a yolotl checkpoint (.ckpt), an exported ONNX model or OpenVINO IR.

:func:`load` is ``yolotl.load``: a checkpoint as a :class:`~yolotl.inference.torch_runtime.TorchDetector`.
Training code that needs the bare nn.Module (``init_from``, a distillation teacher) reads it with
:func:`yolotl.models.checkpoint.load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from yolotl.inference.torch_runtime import TorchDetector
from yolotl.models import checkpoint

if TYPE_CHECKING:
    from yolotl.inference.onnx_runtime import OnnxDetector
    from yolotl.inference.openvino_runtime import OpenVinoDetector


def load(path: str | Path, map_location: str | torch.device = "cpu") -> TorchDetector:
    """The trained detector in a ``yolotl-train`` checkpoint (EMA weights when EMA ran), ready to ``predict``.

    Reads weights only (``torch.load(weights_only=True)``), with no Hydra and no training code; the
    nn.Module, in eval mode on ``map_location``, is the result's ``detector``. Raises
    :class:`~yolotl.CheckpointError` naming the file and the fix when the file is missing, corrupt, not a
    yolotl checkpoint, or written by an unsupported format version.
    """
    return TorchDetector(checkpoint.load(path, map_location))


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` (or None): ``"cuda"`` when a CUDA GPU is there, else ``"mps"`` on Apple silicon, else
    ``"cpu"``; any other value is returned as given."""
    if device not in (None, "auto"):
        return str(device)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def load_predictor(path: str | Path, device: str = "auto") -> TorchDetector | OnnxDetector | OpenVinoDetector:
    """A model with yolotl's ``predict()``: :func:`load` for checkpoints (on ``device``, see
    :func:`resolve_device`), ``OnnxDetector`` for ``.onnx`` (ONNX Runtime's best available provider),
    ``OpenVinoDetector`` for an OpenVINO ``.xml`` or a folder holding one (on the CPU)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from yolotl.inference.onnx_runtime import OnnxDetector

        return OnnxDetector(path)
    if is_openvino(path):
        from yolotl.inference.openvino_runtime import OpenVinoDetector

        return OpenVinoDetector(path)
    return load(path, resolve_device(device))


def is_openvino(path: str | Path) -> bool:
    """``path`` names an OpenVINO IR: an ``.xml`` file, or a folder with ``.xml`` files in it."""
    path = Path(path)
    return path.suffix.lower() == ".xml" or (path.is_dir() and any(path.glob("*.xml")))
