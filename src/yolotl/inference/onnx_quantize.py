"""Static INT8 quantisation of an exported yolotl ONNX model, with ONNX Runtime's own tools.

:func:`quantize_onnx` runs ``onnxruntime.quantization.shape_inference.quant_pre_process`` (symbolic
shape inference and graph optimisation, as ONNX Runtime recommends before quantising), then
``quantize_static`` in QDQ format: uint8 activations, int8 weights per output channel (the depthwise
convolutions of MobileNet / EfficientNet backbones have very different ranges per channel; one range
per tensor loses the small ones), ranges from MinMax calibration over real images letterboxed exactly
as ``predict()`` letterboxes them (:func:`~yolotl.inference.predict.input_batch`).

Only the network body is quantised: every convolution and the operations between them. The decode
(DFL softmax, distances to boxes, class sigmoid) and, in a model exported with ``nms=True``, the NMS
stay float32: they are the nodes from which no convolution can be reached. Quantising them would
round box coordinates to 1/255 of the image and scores to steps of 1/255 for little speed. The
quantised model keeps the float model's inputs, outputs and metadata (plus ``quantization`` and
``calibration_images``), so :class:`~yolotl.inference.onnx_runtime.OnnxDetector` runs it unchanged.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolotl.errors import ConfigError, YolotlError, first_line
from yolotl.inference.onnx_export import INSTALL_HINT
from yolotl.inference.predict import input_batch
from yolotl.inference.preprocess import ImageInput, letterbox, load_image

if TYPE_CHECKING:
    import onnx

MIN_CALIBRATION_IMAGES = 8  # fewer: the activation ranges come from too few scenes to be trusted
QUANTIZATION = "int8"  # the ``quantization`` metadata value of a model written here


def int8_path(path: str | Path) -> Path:
    """Where the INT8 twin of an FP32 model is written: ``best.onnx`` -> ``best.int8.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


class LetterboxCalibration:
    """ONNX Runtime's ``CalibrationDataReader`` (its ``get_next`` protocol) over images: each one read,
    letterboxed to ``image_size`` and scaled to [0, 1] as ``predict()`` does, fed as a batch of one.

    ``extra`` holds the other graph inputs (the NMS settings of an ``nms=True`` model).
    """

    def __init__(self, images: Sequence[ImageInput], image_size: int, extra: dict[str, np.ndarray] | None = None):
        self.images = list(images)
        self.image_size = image_size
        self.extra = dict(extra or {})
        self._next: Iterator[ImageInput] = iter(self.images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next image's graph inputs, or None when every image was fed."""
        image = next(self._next, None)
        if image is None:
            return None
        batch = input_batch([letterbox(load_image(image), self.image_size)])
        return {"images": batch.numpy(), **self.extra}

    def __iter__(self) -> LetterboxCalibration:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        inputs = self.get_next()
        if inputs is None:
            raise StopIteration
        return inputs

    def __len__(self) -> int:
        return len(self.images)


def quantize_onnx(
    model: str | Path,
    images: Sequence[ImageInput],
    output: str | Path | None = None,
    *,
    per_channel: bool = True,
) -> Path:
    """Write a statically quantised INT8 copy of the yolotl ONNX model ``model``; return its path.

    Args:
        model: a float32 model written by :func:`~yolotl.inference.onnx_export.export_onnx`.
        images: calibration images (paths, arrays, ... as ``predict()`` takes), at least
            :data:`MIN_CALIBRATION_IMAGES`; use images like those the model will see (its training
            images): ranges outside what calibration saw are clipped.
        output: default :func:`int8_path` of ``model`` (``best.onnx`` -> ``best.int8.onnx``).
        per_channel: one weight scale per output channel (default); ``False`` is a little faster and
            usually less accurate on depthwise convolutions.

    Raises:
        ConfigError: fewer than :data:`MIN_CALIBRATION_IMAGES` images, or a model that is already quantised.
        CheckpointError: ``model`` is missing or not a yolotl ONNX model.
        YolotlError: onnx or onnxruntime is missing, or ONNX Runtime's quantiser failed.
    """
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise ConfigError(
            f"INT8 calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {len(images)}; "
            "pass more images like those the model will see"
        )
    onnx, quantization, pre_process = _import_tools()
    from yolotl.inference.onnx_runtime import OnnxDetector

    source = OnnxDetector(model, providers=["CPUExecutionProvider"])  # checks the file and its metadata
    if source.quantization:
        raise ConfigError(f"{source.path} is already quantised ({source.quantization}); quantise the float model")
    output = Path(output) if output is not None else int8_path(source.path)
    extra = _nms_settings() if source.has_nms else {}
    reader = LetterboxCalibration(images, source.image_size, extra)
    with tempfile.TemporaryDirectory(prefix="yolotl-int8-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        _pre_process(pre_process, source.path, prepared)
        body = onnx.load(prepared)
        _name_nodes(body)
        onnx.save(body, prepared)
        output.parent.mkdir(parents=True, exist_ok=True)
        try:
            quantization.quantize_static(
                prepared,
                output,
                reader,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
                nodes_to_exclude=decode_tail(body),
            )
        except Exception as err:  # the quantiser raises many types (ValueError, RuntimeError, pybind Fail)
            raise YolotlError(f"ONNX Runtime could not quantise {source.path} ({first_line(err)})") from err
    quantized = onnx.load(output)
    props = {p.key: p.value for p in quantized.metadata_props}
    props.update({"quantization": QUANTIZATION, "calibration_images": json.dumps(len(reader))})
    onnx.helper.set_model_props(quantized, props)
    onnx.save(quantized, output)
    return output


def decode_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that stay float32: those, other than convolutions, from which no
    convolution can be reached (the decode, the class sigmoid and any NMS after the last convolutions)."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[int, bool] = {}
    for node in reversed(model.graph.node):  # ONNX graphs are topologically sorted: consumers come later
        feeds_conv[id(node)] = any(
            child.op_type == "Conv" or feeds_conv.get(id(child), False)
            for name in node.output
            for child in consumers.get(name, [])
        )
    return [n.name for n in model.graph.node if n.op_type != "Conv" and not feeds_conv[id(n)]]


def _nms_settings() -> dict[str, np.ndarray]:
    """NMS inputs for calibration runs of an ``nms=True`` model (its NMS is not quantised)."""
    return {
        "score_threshold": np.array(0.25, dtype=np.float32),
        "iou_threshold": np.array(0.6, dtype=np.float32),
        "max_detections": np.array(300, dtype=np.int64),
    }


def _pre_process(pre_process: Any, source: Path, target: Path) -> None:
    """ONNX Runtime's pre-processing; without symbolic shape inference when that cannot follow the graph."""
    try:
        pre_process(source, target)
    except Exception:  # symbolic shape inference gives up on some dynamic graphs; the rest still helps
        try:
            pre_process(source, target, skip_symbolic_shape=True)
        except Exception as err:
            raise YolotlError(f"ONNX Runtime could not prepare {source} for quantisation ({first_line(err)})") from err


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a name: the quantiser excludes nodes by name."""
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _import_tools() -> tuple[Any, Any, Any]:
    try:
        import onnx
        import onnxruntime.quantization as quantization
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise YolotlError(f"INT8 quantisation needs onnx and onnxruntime: {INSTALL_HINT}") from None
    return onnx, quantization, quant_pre_process
