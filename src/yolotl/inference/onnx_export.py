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
``dynamic`` (JSON booleans), ``task`` and ``num_protos``, and ``nms_free`` (JSON boolean: a one-to-one head,
whose ``boxes`` and ``scores`` the runtime cuts to the best ones without NMS; absent in older files: false).

A segmenting detector (``task="segment"``) adds its mask branch:

- ``coefficients``: float32 ``[B, A, P]`` each anchor's mask coefficients; ``protos``: float32
  ``[B, P, H/4, W/4]`` the image's prototype masks (``yolotl.ops.masks.process_masks`` turns a
  detection's coefficients, the prototypes and its box into its mask);
- with ``nms=True`` also ``det_coefficients``: float32 ``[K, P]``, the kept rows' coefficients;
- metadata ``task`` (``"segment"``; absent or ``"detect"`` for a detector) and ``num_protos``.

A semantic segmenter (``task="semantic"``) has no boxes: its graph has one output instead of the above,

- ``logits``: float32 ``[B, C, H/8, W/8]`` class logits at stride 8 (``detector(images).logits``); the
  runtime resizes them to the original image and takes the argmax (bilinear resizing stays outside the
  graph, which keeps it small and lets one graph serve every original size);
- metadata ``task`` ``"semantic"`` and ``output_stride`` (``8``); ``nms=True`` is refused.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from yolotl._version import __version__
from yolotl.errors import ConfigError, YolotlError, first_line
from yolotl.ops.masks import flatten_coefficients

if TYPE_CHECKING:
    import onnx

    from yolotl.inference.torch_runtime import TorchDetector
    from yolotl.models.detector import YoloDetector

ONNX_FORMAT = 1  # bump when inputs, outputs or metadata change; OnnxDetector refuses formats it does not know
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; the graph needs 13 or newer
EXPORTERS = ("torchscript", "dynamo")
INSTALL_HINT = 'pip install "yolotl[onnx]"'


class _Decoded(nn.Module):
    """What torch traces: ``images -> (boxes, scores)``, exactly ``detector.decode(detector(images))``;
    a segmenting detector adds ``(coefficients, protos)``; a semantic segmenter gives ``(logits,)``."""

    def __init__(self, detector: YoloDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.detector(images)
        if self.detector.semantic:
            return (outputs.logits,)
        boxes, scores = self.detector.decode(outputs)
        if not self.detector.segments:
            return boxes, scores
        return boxes, scores, flatten_coefficients(outputs.coef_maps), outputs.protos


SEMANTIC_OUTPUTS = ["logits"]  # a semantic segmenter's graph outputs


def output_names(segments: bool) -> list[str]:
    """The graph's outputs before NMS: boxes and scores, and a segmenting detector's mask branch (a
    semantic segmenter's: :data:`SEMANTIC_OUTPUTS`)."""
    return ["boxes", "scores", *(["coefficients", "protos"] if segments else [])]


def export_onnx(
    detector: YoloDetector | TorchDetector,
    path: str | Path,
    *,
    nms: bool = False,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> Path:
    """Write ``detector`` as an ONNX model at ``path`` (validated by ``onnx.checker``) and return the path.

    Args:
        detector: a YoloDetector, or the TorchDetector that ``yolotl.load`` returns.
        nms: append per-class NonMaxSuppression, with its thresholds as graph inputs (module docstring).
        dynamic: dynamic batch, height and width; ``False`` fixes the input to
            ``[1, 3, image_size, image_size]``.
        opset: ONNX opset version (13 to 20 for the TorchScript exporter, 18 or more for dynamo).
        exporter: ``"torchscript"`` (``torch.onnx.export(dynamo=False)``: deprecated in torch but
            about 20x faster on these models, with identical outputs) or ``"dynamo"`` (``torch.export``
            based, the exporter torch keeps developing).

    Raises:
        ConfigError: an unknown exporter, an opset that cannot hold the graph, or ``nms=True`` for an NMS-free
            detector or a semantic segmenter.
        YolotlError: onnx is not installed, or the exporter or the checker failed.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; choose one of {list(EXPORTERS)}")
    if opset < 13:
        raise ConfigError(f"opset {opset} is too old for the exported graph; use 13 or newer (default {DEFAULT_OPSET})")
    onnx = _import_onnx()
    # imported here: OnnxDetector imports this module and must not need the models
    from yolotl.inference.torch_runtime import TorchDetector

    if isinstance(detector, TorchDetector):
        detector = detector.detector
    if nms and detector.semantic:
        raise ConfigError("this model is a semantic segmenter (task=semantic): it predicts a class per pixel and "
                          "has no boxes to suppress, so export it without nms=true")
    if nms and detector.config.nms_free:
        raise ConfigError("this detector is NMS-free (nms_free=true): its predictions need no NMS, so export it "
                          "without nms=true")
    model = _export_decoded(detector, opset, dynamic, exporter)
    _fix_output_shapes(model, detector.num_classes, detector.config.num_protos)
    if detector.semantic:
        _fix_logits_shape(model, detector.num_classes)
    if nms:
        _append_nms(model, segments=detector.segments)
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
    names = SEMANTIC_OUTPUTS if detector.semantic else output_names(detector.segments)
    was_training = detector.training
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            if exporter == "dynamo":
                return _export_dynamo(module, example, opset, dynamic, names)
            buffer = io.BytesIO()
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=["images"],
                output_names=names,
                opset_version=opset,
                dynamic_axes=_dynamic_axes(names) if dynamic else None,
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


def _dynamic_axes(names: list[str]) -> dict[str, dict[int, str]]:
    axes = {"images": {0: "batch", 2: "height", 3: "width"},
            "protos": {0: "batch", 2: "proto_height", 3: "proto_width"},
            "logits": {0: "batch", 2: "logit_height", 3: "logit_width"}}
    return {name: axes.get(name, {0: "batch", 1: "anchors"}) for name in ["images", *names]}


def _export_dynamo(
    module: nn.Module, example: torch.Tensor, opset: int, dynamic: bool, names: list[str]
) -> onnx.ModelProto:
    dynamic_shapes = None
    if dynamic:
        cells_y, cells_x = torch.export.Dim("cells_y"), torch.export.Dim("cells_x")  # stride-32 cells
        dynamic_shapes = {"images": {0: torch.export.Dim("batch"), 2: 32 * cells_y, 3: 32 * cells_x}}
    program = torch.onnx.export(
        module,
        (example,),
        input_names=["images"],
        output_names=names,
        opset_version=opset,
        dynamic_shapes=dynamic_shapes,
        dynamo=True,
        verbose=False,
    )
    return program.model_proto


def _fix_output_shapes(model: onnx.ModelProto, num_classes: int, num_protos: int) -> None:
    """Name the output axes the exporters leave anonymous: boxes ``[batch, anchors, 4]``, scores ``[.., C]``,
    coefficients ``[.., P]``, protos ``[batch, P, proto_height, proto_width]``."""
    last = {"boxes": 4, "scores": num_classes, "coefficients": num_protos}
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.name == "protos":
            for dim, name in zip(dims, ("batch", None, "proto_height", "proto_width")):
                if name and not dim.HasField("dim_value"):
                    dim.dim_param = name
            dims[1].dim_value = num_protos
            continue
        if len(dims) != 3 or output.name not in last:
            continue
        for dim, name in zip(dims, ("batch", "anchors")):
            if not dim.HasField("dim_value"):
                dim.dim_param = name
        dims[2].dim_value = last[output.name]


def _fix_logits_shape(model: onnx.ModelProto, num_classes: int) -> None:
    """Name the axes of a semantic segmenter's ``logits``: ``[batch, C, logit_height, logit_width]``."""
    for output in model.graph.output:
        if output.name != "logits":
            continue
        dims = output.type.tensor_type.shape.dim
        for dim, name in zip(dims, ("batch", None, "logit_height", "logit_width")):
            if name and not dim.HasField("dim_value"):
                dim.dim_param = name
        if len(dims) == 4:
            dims[1].dim_value = num_classes


def _append_nms(model: onnx.ModelProto, segments: bool = False) -> None:
    """Per-class NonMaxSuppression over ``boxes`` / ``scores``, its settings as scalar inputs, and the
    gathers of the kept rows (and of their mask coefficients for a segmenting detector)."""
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
    if segments:
        graph.node.append(helper.make_node("GatherND", ["coefficients", "nms_batch_anchor"], ["det_coefficients"]))
        num_protos = next(o for o in graph.output if o.name == "coefficients").type.tensor_type.shape.dim[2].dim_value
        graph.output.append(
            helper.make_tensor_value_info("det_coefficients", TensorProto.FLOAT, ["detections", num_protos])
        )


def metadata(detector: YoloDetector, *, nms: bool, dynamic: bool) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (listed in the module docstring)."""
    task = "semantic" if detector.semantic else "segment" if detector.segments else "detect"
    extra = {}
    if detector.semantic:
        from yolotl.models.semantic_head import OUTPUT_STRIDE  # a detector exists: the models are loaded

        extra["output_stride"] = str(OUTPUT_STRIDE)
    return {
        "yolotl_format": str(ONNX_FORMAT),
        "yolotl_version": __version__,
        "backbone": detector.config.backbone,
        "class_names": json.dumps(detector.class_names),
        "image_size": str(detector.config.image_size),
        "strides": json.dumps(list(detector.strides)),
        "nms": json.dumps(nms),
        "dynamic": json.dumps(dynamic),
        "task": task,
        "num_protos": str(detector.config.num_protos if detector.segments else 0),
        # one-to-one predictions: the runtime keeps the best scores and runs no NMS
        "nms_free": json.dumps(bool(detector.config.nms_free)),
        **extra,
    }
