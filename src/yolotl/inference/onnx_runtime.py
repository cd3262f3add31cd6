"""OnnxDetector: a model written by :func:`~yolotl.inference.onnx_export.export_onnx`, run by ONNX Runtime.

Same ``detect`` and ``predict`` contract as :class:`~yolotl.inference.torch_runtime.TorchDetector` (one
code path, :func:`~yolotl.inference.predict.predict_images`), so switching runtimes changes no calling
code. The post-processing is :class:`~yolotl.inference.exported_runtime.ExportedDetector`'s, shared with
:class:`~yolotl.inference.openvino_runtime.OpenVinoDetector`. Needs ``onnxruntime`` only (not torch's
exporter, not onnx).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolotl.errors import CheckpointError, YolotlError, first_line
from yolotl.inference.exported_runtime import ExportedDetector, check_metadata
from yolotl.inference.onnx_export import INSTALL_HINT


class OnnxDetector(ExportedDetector):
    """A yolotl ONNX model in an ONNX Runtime session.

    Attributes:
        path: the ``.onnx`` file. class_names, num_classes, image_size, strides, backbone: from its metadata.
        has_nms: NMS runs inside the graph (exported with ``nms=True``).
        quantization: ``"int8"`` for a model written by :func:`~yolotl.inference.onnx_quantize.quantize_onnx`,
            else None (float32).
        segments: the graph carries a mask branch (exported from a ``task="segment"`` detector): ``detect``
            and ``predict`` add ``masks`` as :class:`~yolotl.inference.torch_runtime.TorchDetector`'s do.
        session: the ``onnxruntime.InferenceSession``.
    """

    runtime = "ONNX Runtime"

    def __init__(
        self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        """Open ``path`` with ``providers`` (default: every available one, best first); ``threads``
        sets ONNX Runtime's intra-op thread count (default: its own choice).

        Raises:
            CheckpointError: the file is missing, not an ONNX model, or not exported by yolotl.
            YolotlError: onnxruntime is not installed.
        """
        ort = _import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model {self.path} not found; write one with yolotl-export ckpt=<best.ckpt>")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=list(providers or ort.get_available_providers())
            )
        except Exception as err:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail, ...)
            raise CheckpointError(
                f"{self.path} cannot be loaded by ONNX Runtime; it is not an ONNX model or it is corrupt "
                f"({first_line(err)}). Export it again with yolotl-export"
            ) from err
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self._use_metadata(check_metadata(meta, self.path, "an ONNX model"))
        self._input_shape: list[Any] = list(self.session.get_inputs()[0].shape)  # ints where static

    def _infer(self, feed: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, feed)


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise YolotlError(f"OnnxDetector needs onnxruntime: {INSTALL_HINT}") from None
    return onnxruntime
