"""OpenVinoDetector: an IR written by :func:`~yolotl.inference.openvino_export.export_openvino`, run by OpenVINO.

The IR holds the graph yolotl exports to ONNX (same inputs, outputs and metadata, the metadata in its
``rt_info``), so detecting, NMS, masks and ``predict`` are
:class:`~yolotl.inference.exported_runtime.ExportedDetector`'s, shared with
:class:`~yolotl.inference.onnx_runtime.OnnxDetector`: switching runtimes changes no calling code.
Needs ``openvino`` only (not nncf, not onnx).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from yolotl.errors import CheckpointError, first_line
from yolotl.inference.exported_runtime import ExportedDetector, check_metadata
from yolotl.inference.openvino_export import import_openvino, read_metadata
from yolotl.inference.signal_stack import keep_signal_stack


class OpenVinoDetector(ExportedDetector):
    """A yolotl OpenVINO IR compiled for a device (the CPU by default).

    Attributes:
        path: the ``.xml`` file (its weights are the ``.bin`` beside it). class_names, num_classes,
            image_size, strides, backbone: from its metadata.
        has_nms: NMS runs inside the graph (exported with ``nms=True``).
        quantization: ``"int8"`` for a model written by
            :func:`~yolotl.inference.openvino_quantize.quantize_openvino`, else None (float32).
        segments: the graph carries a mask branch: ``detect`` and ``predict`` add ``masks``.
        compiled: the ``openvino.CompiledModel``.
    """

    runtime = "OpenVINO"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        device: str = "CPU",
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Read the IR at ``path`` (the ``.xml``, or a folder holding exactly one) and compile it for
        ``device``.

        On the CPU it compiles with ``PERFORMANCE_HINT=LATENCY`` (one image at a time, as ``predict``
        runs) and ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO would otherwise run float layers in bf16 on
        CPUs that have it, which moves scores by about 1e-2); ``threads`` sets ``INFERENCE_NUM_THREADS``
        (default: OpenVINO's choice). ``properties`` adds or overrides compile properties, e.g.
        ``{"INFERENCE_PRECISION_HINT": "bf16"}``. Calls are serialised (one infer request): open one
        detector per thread to run several at once.

        Raises:
            CheckpointError: the ``.xml`` or its ``.bin`` is missing, not an OpenVINO IR, corrupt, or not
                exported by yolotl.
            YolotlError: openvino is not installed.
        """
        ov = import_openvino("OpenVinoDetector")
        self.path = _find_xml(Path(path))
        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise CheckpointError(
                f"{self.path} has no weights file {weights.name} beside it; copy the .xml and .bin together "
                "or export again with yolotl-export format=openvino"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(self.path), str(weights))
        except Exception as err:  # OpenVINO raises its own pybind types
            raise CheckpointError(
                f"{self.path} cannot be read by OpenVINO; it is not an OpenVINO IR or it is corrupt "
                f"({first_line(err)}). Export it again with yolotl-export format=openvino"
            ) from err
        self._use_metadata(check_metadata(read_metadata(model), self.path, "an OpenVINO model"))
        config: dict[str, Any] = {}
        if device.upper() == "CPU":
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
        config.update(properties or {})
        try:
            with keep_signal_stack():  # the CPU plugin's own signal stack can outlive it (signal_stack.py)
                self.compiled = core.compile_model(model, device, config)
        except Exception as err:
            raise CheckpointError(
                f"OpenVINO cannot compile {self.path} for {device} ({first_line(err)}); a truncated {weights.name} "
                "gives this too: export it again with yolotl-export format=openvino"
            ) from err
        self._ports = {name: port for port in self.compiled.outputs for name in port.get_names()}
        self._input_shape: list[Any] = [
            dim.get_length() if dim.is_static else None for dim in model.input("images").get_partial_shape()
        ]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def _infer(self, feed: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        with self._lock:
            results = self._request.infer(feed)  # copies of the outputs (share_outputs=False)
            return [results[self._ports[name]] for name in outputs]


def _find_xml(path: Path) -> Path:
    """``path`` itself, or the one ``.xml`` in the folder ``path``."""
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if len(found) != 1:
            what = "no .xml file" if not found else f"{len(found)} .xml files ({', '.join(p.name for p in found)})"
            raise CheckpointError(f"{path} holds {what}; pass the OpenVINO model's .xml file itself")
        return found[0]
    if not path.is_file():
        raise CheckpointError(
            f"OpenVINO model {path} not found; write one with yolotl-export ckpt=<best.ckpt> format=openvino"
        )
    return path
