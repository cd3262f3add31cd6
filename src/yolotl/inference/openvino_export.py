"""Export a YoloDetector as an OpenVINO IR (``model.xml`` + ``model.bin``): the ONNX graph, converted.

:func:`export_openvino` writes the graph :func:`~yolotl.inference.onnx_export.export_onnx` writes (to a
temporary file), converts it with ``openvino.convert_model`` and saves it with ``openvino.save_model`` in
float32 (``compress_to_fp16=False``: OpenVINO's default halves the weights, which moves boxes by a fraction
of a pixel for no speed on a CPU). Going through the ONNX graph keeps one graph for both runtimes: the
same inputs, outputs, NMS (``nms=True``; OpenVINO runs ONNX ``NonMaxSuppression``), mask branch and
metadata, so :class:`~yolotl.inference.openvino_runtime.OpenVinoDetector` shares
:class:`~yolotl.inference.onnx_runtime.OnnxDetector`'s post-processing.

The metadata (``class_names``, ``image_size``, ``strides``, ``nms``, ``task``, ...: the ONNX model's
``metadata_props``, listed in :mod:`yolotl.inference.onnx_export`) goes into the IR's ``rt_info`` under
``yolotl`` (:data:`RT_INFO_SECTION`), as strings.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolotl.errors import YolotlError, first_line
from yolotl.inference.onnx_export import DEFAULT_OPSET, export_onnx, metadata

if TYPE_CHECKING:
    from yolotl.inference.torch_runtime import TorchDetector
    from yolotl.models.detector import YoloDetector

OPENVINO_INSTALL_HINT = 'pip install "yolotl[openvino]"'
RT_INFO_SECTION = "yolotl"  # rt_info path of the metadata: ["yolotl", key]


def export_openvino(
    detector: YoloDetector | TorchDetector,
    path: str | Path,
    *,
    nms: bool = False,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> Path:
    """Write ``detector`` as an OpenVINO IR at ``path`` (the ``.xml``; the ``.bin`` goes beside it) and
    return the ``.xml`` path. The arguments are :func:`~yolotl.inference.onnx_export.export_onnx`'s.

    Raises:
        ConfigError: an unknown exporter or an opset that cannot hold the graph.
        YolotlError: openvino or onnx is not installed, or the export or the conversion failed.
    """
    ov = import_openvino("OpenVINO export")
    from yolotl.inference.torch_runtime import TorchDetector  # here: the runtime must not need the models

    if isinstance(detector, TorchDetector):
        detector = detector.detector
    path = xml_path(path)
    with tempfile.TemporaryDirectory(prefix="yolotl-openvino-") as folder:
        onnx_file = export_onnx(
            detector, Path(folder) / "model.onnx", nms=nms, dynamic=dynamic, opset=opset, exporter=exporter
        )
        try:
            model = ov.convert_model(str(onnx_file))
        except Exception as err:  # OpenVINO raises its own pybind types (OpConversionFailure, ...)
            raise YolotlError(f"OpenVINO could not convert the exported ONNX graph ({first_line(err)})") from err
    set_metadata(model, metadata(detector, nms=nms, dynamic=dynamic))
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def xml_path(path: str | Path) -> Path:
    """``path`` as the IR's ``.xml`` file: ``model`` or ``model.xml`` -> ``model.xml``."""
    path = Path(path)
    return path if path.suffix.lower() == ".xml" else path.with_name(f"{path.name}.xml")


def set_metadata(model: Any, values: dict[str, str]) -> None:
    """Write ``values`` into ``model``'s rt_info under :data:`RT_INFO_SECTION`."""
    for key, value in values.items():
        model.set_rt_info(str(value), [RT_INFO_SECTION, key])


def read_metadata(model: Any) -> dict[str, str]:
    """The yolotl metadata in ``model``'s rt_info (empty when there is none)."""
    if not model.has_rt_info([RT_INFO_SECTION]):
        return {}
    section = model.get_rt_info([RT_INFO_SECTION]).astype(dict)
    return {str(key): value.astype(str) for key, value in section.items()}


def import_openvino(what: str) -> Any:
    """The ``openvino`` module, or a YolotlError naming the extra that installs it."""
    try:
        import openvino
    except ImportError:
        raise YolotlError(f"{what} needs openvino: {OPENVINO_INSTALL_HINT}") from None
    return openvino
