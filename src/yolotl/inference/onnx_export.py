"""Export a YoloDetector to ONNX: decoded boxes and class probabilities, optionally NMS in the graph.

The graph input is ``images``: float32 ``[B, 3, H, W]`` RGB in ``[0, 1]`` (H and W multiples of 32),
batch, height and width dynamic unless ``dynamic=False``. Outputs, always present:

- ``boxes``: float32 ``[B, A, 4]`` xyxy in input pixels; ``scores``: float32 ``[B, A, C]`` class
  probabilities; exactly ``detector.decode(detector(images))``.

With ``nms=True`` three inputs and three outputs are added around ONNX ``NonMaxSuppression`` (per
class, multi-label) appended to the graph, so the runtime passes the caller's thresholds:

- inputs ``score_threshold`` float32 scalar, ``iou_threshold`` float32 scalar, ``max_detections``
  int64 scalar (the most boxes kept per image *and class*; take the best ``max_detections`` overall);
- ``det_index``: int64 ``[K, 3]`` rows ``(batch, class, anchor)``; ``det_boxes``: float32 ``[K, 4]``;
  ``det_scores``: float32 ``[K]``. Rows are grouped by image and class, not sorted by score.

Candidates are all (anchor, class) pairs with a score above ``score_threshold`` and NMS suppresses at
IoU above ``iou_threshold``, as :func:`yolotl.ops.postprocess` does; unlike it the graph has no cap of
10,000 candidates before NMS, which only matters at very low score thresholds.

``model.metadata_props`` carries what :class:`~yolotl.inference.onnx_runtime.OnnxDetector` needs:
``yolotl_format`` (:data:`ONNX_FORMAT`), ``yolotl_version``, ``backbone``, ``class_names`` (JSON list),
``image_size`` (the square size ``predict`` letterboxes to), ``strides`` (JSON list), ``nms`` and
``dynamic`` (JSON booleans).

A segmenting detector (``task="segment"``) is exported for boxes only (its mask branch is left out of
the graph, and a log line says so): masks in ONNX are not there yet.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from yolotl._version import __version__
from yolotl.errors import ConfigError, YolotlError, first_line

if TYPE_CHECKING:
    import onnx

    from yolotl.models.detector import YoloDetector

ONNX_FORMAT = 1  # bump when inputs, outputs or metadata change; OnnxDetector refuses formats it does not know
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; the graph needs 13 or newer
EXPORTERS = ("torchscript", "dynamo")
INSTALL_HINT = 'pip install "yolotl[onnx]"'
log = logging.getLogger("yolotl.export")


class _Decoded(nn.Module):
    """What torch traces: ``images -> (boxes, scores)``, exactly ``detector.decode(detector(images))``."""

    def __init__(self, detector: YoloDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.detector.decode(self.detector(images))


def export_onnx(
    detector: YoloDetector,
    path: str | Path,
    *,
    nms: bool = False,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> Path:
    """Write ``detector`` as an ONNX model at ``path`` (validated by ``onnx.checker``) and return the path.

    Args:
        nms: append per-class NonMaxSuppression, with its thresholds as graph inputs (module docstring).
        dynamic: dynamic batch, height and width; ``False`` fixes the input to
            ``[1, 3, image_size, image_size]``.
        opset: ONNX opset version (13 to 20 for the TorchScript exporter, 18 or more for dynamo).
        exporter: ``"torchscript"`` (``torch.onnx.export(dynamo=False)``: deprecated in torch but
            about 20x faster on these models, with identical outputs) or ``"dynamo"`` (``torch.export``
            based, the exporter torch keeps developing).

    Raises:
        ConfigError: an unknown exporter or an opset that cannot hold the graph.
        YolotlError: onnx is not installed, or the exporter or the checker failed.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; choose one of {list(EXPORTERS)}")
    if opset < 13:
        raise ConfigError(f"opset {opset} is too old for the exported graph; use 13 or newer (default {DEFAULT_OPSET})")
    onnx = _import_onnx()
    if detector.segments:
        log.warning("%s segments, but the ONNX model gives boxes only: its mask branch is not exported "
                    "(masks come from yolotl.load(<checkpoint>).predict())", detector.config.backbone)
    model = _export_decoded(detector, opset, dynamic, exporter)
    _fix_output_shapes(model, detector.num_classes)
    if nms:
        _append_nms(model)
    onnx.helper.set_model_props(model, metadata(detector, nms=nms, dynamic=dynamic))
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise YolotlError(f"the exported ONNX graph is invalid ({first_line(err)}); try another opset") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise YolotlError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def _export_decoded(detector: YoloDetector, opset: int, dynamic: bool, exporter: str) -> onnx.ModelProto:
    """The ``images -> (boxes, scores)`` graph, traced in eval mode (the detector's mode is restored)."""
    import onnx

    size = detector.config.image_size
    # Two images and at least two stride-32 cells: torch.export specialises dimensions of size 1.
    example = torch.rand(2, 3, max(size, 64), max(size, 64)) if dynamic else torch.rand(1, 3, size, size)
    example = example.to(detector.mean.device)
    module = _Decoded(detector).eval()
    was_training = detector.training
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            if exporter == "dynamo":
                return _export_dynamo(module, example, opset, dynamic)
            buffer = io.BytesIO()
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=["images"],
                output_names=["boxes", "scores"],
                opset_version=opset,
                dynamic_axes=_dynamic_axes() if dynamic else None,
                dynamo=False,
            )
            return onnx.load_from_string(buffer.getvalue())
    except Exception as err:  # the exporters raise many unrelated types; name the model and the way out
        other = EXPORTERS[1 - EXPORTERS.index(exporter)]
        raise YolotlError(
            f"ONNX export of {detector.config.backbone} with the {exporter} exporter (opset {opset}) failed: "
            f"{first_line(err)}. Try exporter={other!r} or another opset"
        ) from err
    finally:
        detector.train(was_training)


def _dynamic_axes() -> dict[str, dict[int, str]]:
    return {
        "images": {0: "batch", 2: "height", 3: "width"},
        "boxes": {0: "batch", 1: "anchors"},
        "scores": {0: "batch", 1: "anchors"},
    }


def _export_dynamo(module: nn.Module, example: torch.Tensor, opset: int, dynamic: bool) -> onnx.ModelProto:
    dynamic_shapes = None
    if dynamic:
        cells_y, cells_x = torch.export.Dim("cells_y"), torch.export.Dim("cells_x")  # stride-32 cells
        dynamic_shapes = {"images": {0: torch.export.Dim("batch"), 2: 32 * cells_y, 3: 32 * cells_x}}
    program = torch.onnx.export(
        module,
        (example,),
        input_names=["images"],
        output_names=["boxes", "scores"],
        opset_version=opset,
        dynamic_shapes=dynamic_shapes,
        dynamo=True,
        verbose=False,
    )
    return program.model_proto


def _fix_output_shapes(model: onnx.ModelProto, num_classes: int) -> None:
    """Name the output axes the exporters leave anonymous: boxes ``[batch, anchors, 4]``, scores ``[.., C]``."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) != 3:
            continue
        for dim, name in zip(dims, ("batch", "anchors")):
            if not dim.HasField("dim_value"):
                dim.dim_param = name
        dims[2].dim_value = 4 if output.name == "boxes" else num_classes


def _append_nms(model: onnx.ModelProto) -> None:
    """Per-class NonMaxSuppression over ``boxes`` / ``scores``, its settings as scalar inputs, and the
    gathers of the kept rows."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    graph.input.extend(
        [
            helper.make_tensor_value_info("score_threshold", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("iou_threshold", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("max_detections", TensorProto.INT64, []),
        ]
    )
    graph.initializer.append(numpy_helper.from_array(np.array([0, 2], dtype=np.int64), "nms_batch_anchor_columns"))
    graph.node.extend(
        [
            helper.make_node("Transpose", ["scores"], ["nms_scores_by_class"], perm=[0, 2, 1]),  # [B, C, A]
            helper.make_node(
                "NonMaxSuppression",
                ["boxes", "nms_scores_by_class", "max_detections", "iou_threshold", "score_threshold"],
                ["det_index"],
                center_point_box=0,
            ),
            helper.make_node("Gather", ["det_index", "nms_batch_anchor_columns"], ["nms_batch_anchor"], axis=1),
            helper.make_node("GatherND", ["boxes", "nms_batch_anchor"], ["det_boxes"]),  # [K, 4]
            helper.make_node("GatherND", ["nms_scores_by_class", "det_index"], ["det_scores"]),  # [K]
        ]
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info("det_index", TensorProto.INT64, ["detections", 3]),
            helper.make_tensor_value_info("det_boxes", TensorProto.FLOAT, ["detections", 4]),
            helper.make_tensor_value_info("det_scores", TensorProto.FLOAT, ["detections"]),
        ]
    )


def metadata(detector: YoloDetector, *, nms: bool, dynamic: bool) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (listed in the module docstring)."""
    return {
        "yolotl_format": str(ONNX_FORMAT),
        "yolotl_version": __version__,
        "backbone": detector.config.backbone,
        "class_names": json.dumps(detector.class_names),
        "image_size": str(detector.config.image_size),
        "strides": json.dumps(list(detector.strides)),
        "nms": json.dumps(nms),
        "dynamic": json.dumps(dynamic),
    }
