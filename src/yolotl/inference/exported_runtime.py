"""ExportedDetector: what every runtime of an exported yolotl graph shares (ONNX Runtime, OpenVINO).

The graph is the one :func:`~yolotl.inference.onnx_export.export_onnx` writes, whatever runs it: the same
inputs (``images``, and the NMS settings of an ``nms=True`` graph), outputs and metadata. So reading the
metadata, feeding the graph, turning its outputs into detections (NMS, masks) or class maps (a semantic
segmenter's ``logits``) and ``predict`` live here once; a runtime subclass only opens the model and
implements :meth:`ExportedDetector._infer`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolotl.errors import CheckpointError, ConfigError
from yolotl.inference.onnx_export import ONNX_FORMAT, SEMANTIC_OUTPUTS, output_names
from yolotl.inference.predict import Detections, check_semantic_options, predict_class_maps, predict_images
from yolotl.inference.preprocess import ImageInput
from yolotl.ops.masks import process_masks
from yolotl.ops.postprocess import postprocess

NMS_OUTPUTS = ["det_index", "det_boxes", "det_scores"]
REQUIRED_METADATA = ("class_names", "image_size", "strides", "nms")
TASKS = ("detect", "segment", "semantic")  # the ``task`` metadata values this yolotl runs


def check_metadata(meta: Mapping[str, str], path: Path, kind: str) -> dict[str, str]:
    """``meta`` (an exported model's yolotl metadata) when this yolotl can read it; ``kind`` names the
    file type in the message ("an ONNX model", "an OpenVINO model").

    Raises:
        CheckpointError: no yolotl metadata, another format version, or a required key missing.
    """
    if "yolotl_format" not in meta:
        raise CheckpointError(
            f"{path} is {kind} but not one exported by yolotl (no yolotl metadata); "
            "export with yolotl-export ckpt=<best.ckpt>"
        )
    if meta["yolotl_format"] != str(ONNX_FORMAT):
        raise CheckpointError(
            f"{path} has yolotl export format {meta['yolotl_format']} (written by yolotl "
            f"{meta.get('yolotl_version', '?')}); this yolotl reads format {ONNX_FORMAT}. Export it again"
        )
    missing = [key for key in REQUIRED_METADATA if key not in meta]
    if missing:
        raise CheckpointError(f"{path}: yolotl metadata lacks {missing}; export it again")
    task = meta.get("task", "detect")
    if task not in TASKS:
        raise CheckpointError(
            f"{path} was exported from a task={task} model (by yolotl {meta.get('yolotl_version', '?')}), which "
            f"this yolotl cannot run (it runs {', '.join(TASKS)}); upgrade yolotl"
        )
    return dict(meta)


class ExportedDetector:
    """The ``detect``/``predict`` contract of :class:`~yolotl.inference.torch_runtime.TorchDetector` over an
    exported yolotl graph. Subclasses set the attributes below (:meth:`_use_metadata` does, from the
    model's metadata) and implement :meth:`_infer`.

    Attributes:
        path: the model file. class_names, num_classes, image_size, strides, backbone: from its metadata.
        has_nms: NMS runs inside the graph (exported with ``nms=True``).
        nms_free: a one-to-one head's graph: ``detect`` keeps the best scores and runs no NMS (metadata
            ``nms_free``; false in files written before it).
        quantization: ``"int8"`` for a quantised model, else None (float32).
        segments: the graph carries a mask branch (exported from a ``task="segment"`` detector): ``detect``
            and ``predict`` add ``masks`` as :class:`~yolotl.inference.torch_runtime.TorchDetector`'s do.
        semantic: the graph is a semantic segmenter's (``task="semantic"``, one ``logits`` output):
            ``predict`` returns a class map per image, ``logits`` the raw output; ``detect`` is refused.
    """

    path: Path
    runtime = "exported graph"  # how __repr__ and messages name the runtime
    _input_shape: list[Any]  # the ``images`` input's shape: ints where static

    def _use_metadata(self, meta: Mapping[str, str]) -> None:
        """Set the public attributes from checked metadata (:func:`check_metadata`)."""
        self.backbone: str = meta.get("backbone", "")
        self.class_names: list[str] = list(json.loads(meta["class_names"]))
        self.num_classes: int = len(self.class_names)
        self.image_size: int = int(meta["image_size"])
        self.strides: list[int] = list(json.loads(meta["strides"]))
        self.has_nms: bool = bool(json.loads(meta["nms"]))
        self.nms_free: bool = bool(json.loads(meta.get("nms_free", "false")))
        self.quantization: str | None = meta.get("quantization") or None
        self.segments: bool = meta.get("task", "detect") == "segment"
        self.semantic: bool = meta.get("task", "detect") == "semantic"

    def _infer(self, feed: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """Run the graph on ``feed`` (every graph input) and return the named ``outputs`` in order."""
        raise NotImplementedError

    def __repr__(self) -> str:
        nms = ", nms in graph" if self.has_nms else ""
        quantized = f", {self.quantization}" if self.quantization else ""
        masks = ", masks" if self.segments else ", semantic" if self.semantic else ""
        return (f"{type(self).__name__}({str(self.path)!r}, {self.backbone}, {self.num_classes} classes"
                f"{masks}{nms}{quantized})")

    def boxes_and_scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The graph's raw outputs: boxes ``[B, A, 4]`` xyxy input pixels, class probabilities ``[B, A, C]``
        (what ``YoloDetector.decode(detector(images))`` gives)."""
        self._check_boxes()
        boxes, scores = self._run(images, ["boxes", "scores"])
        return torch.from_numpy(boxes), torch.from_numpy(scores)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """A semantic segmenter's raw output: class logits ``[B, C, H/8, W/8]`` for input tensors
        ``[B, 3, H, W]`` in ``[0, 1]`` (what ``detector(images).logits`` gives in PyTorch)."""
        if not self.semantic:
            raise ConfigError(f"{self.path.name} was exported from a task={'segment' if self.segments else 'detect'} "
                              "detector: it has boxes, not logits (use detect() or predict())")
        (logits,) = self._run(images, SEMANTIC_OUTPUTS)
        return torch.from_numpy(logits)

    def detect(
        self,
        images: torch.Tensor,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        classes: Sequence[int] | None = None,
        masks: bool | None = None,
    ) -> Detections:
        """Detections for a batch of input tensors ``[B, 3, H, W]`` in ``[0, 1]``, in input-tensor pixels.

        Per image ``dict(boxes, scores, labels)`` sorted by decreasing score, as ``YoloDetector.detect``;
        only ``classes`` ids when given (the graph's NMS is per class, so filtering its rows before the
        overall ``max_detections`` cut gives what filtering before NMS would). A model with a mask branch
        adds ``masks`` (bool ``[K, H, W]``); ``masks`` as in :meth:`yolotl.YoloDetector.postprocess_outputs`.
        """
        self._check_boxes()
        with_masks = self._with_masks(masks)
        if not self.has_nms:
            outputs = [torch.from_numpy(o) for o in self._run(images, output_names(with_masks))]
            detections = postprocess(
                outputs[0], outputs[1], score_threshold=score_threshold, iou_threshold=iou_threshold,
                max_detections=max_detections, classes=classes, coefficients=outputs[2] if with_masks else None,
                nms=not self.nms_free,
            )
            protos = outputs[3] if with_masks else None
        else:
            names = NMS_OUTPUTS + (["det_coefficients", "protos"] if with_masks else [])
            found = self._run(images, names, score_threshold, iou_threshold, max_detections)
            rows = found[0][:, 1] >= 0
            if classes is not None:
                rows = np.isin(found[0][:, 1], np.asarray(list(classes), dtype=found[0].dtype))
            kept = [f[rows] for f in found[: 4 if with_masks else 3]]
            detections = [_image_detections(kept, i, max_detections) for i in range(images.shape[0])]
            protos = torch.from_numpy(found[-1]) if with_masks else None
        if protos is not None:
            for det, image_protos in zip(detections, protos):
                det["masks"] = process_masks(det.pop("coefficients"), image_protos, det["boxes"], images.shape[-2:])
        return detections

    def _check_boxes(self) -> None:
        if self.semantic:
            raise ConfigError(f"{self.path.name} is a semantic segmenter (task=semantic): it predicts a class per "
                              "pixel, not boxes; predict() returns class maps, logits() the raw output")

    def _with_masks(self, masks: bool | None) -> bool:
        if masks and not self.segments:
            raise ConfigError(f"{self.path.name} has no mask branch (exported from a task=detect detector), so "
                              "it cannot predict masks; export a checkpoint trained with model.detector.task=segment")
        return self.segments if masks is None else bool(masks)

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        classes: Sequence[int | str] | None = None,
        batch_size: int = 16,
        masks: bool | None = None,
        probabilities: bool = False,
    ) -> Detections:
        """Detect objects in image files, PIL images, NumPy arrays or tensors (read as
        :data:`yolotl.inference.preprocess.ImageInput` says; unreadable forms raise ConfigError).

        Exactly :meth:`yolotl.inference.torch_runtime.TorchDetector.predict`: boxes xyxy in original-image
        pixels, one dict per image, and ``masks`` (bool ``[K, h, w]``, original pixels) from a model with a
        mask branch. A semantic segmenter's graph gives ``semantic`` (int64 ``[H0, W0]`` class map) and, with
        ``probabilities=True``, ``probabilities`` (float32 ``[C, H0, W0]``); the graph's logits are resized
        and un-letterboxed by PyTorch on the host, as ``TorchDetector`` does. Detection options other than
        their defaults raise a ConfigError for it (they do not apply to a class map).
        """
        check_semantic_options(
            {"score_threshold": score_threshold, "iou_threshold": iou_threshold, "max_detections": max_detections,
             "classes": classes, "masks": masks}, probabilities, self.semantic, self.path.name)
        if self.semantic:
            return predict_class_maps(images, self.image_size, self.logits, probabilities=probabilities,
                                      batch_size=batch_size)
        detect = partial(
            self.detect, score_threshold=score_threshold, iou_threshold=iou_threshold, max_detections=max_detections,
            masks=self._with_masks(masks),
        )
        return predict_images(
            images, self.image_size, detect, classes=classes, class_names=self.class_names, batch_size=batch_size
        )

    def _run(
        self,
        images: torch.Tensor,
        outputs: list[str],
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
    ) -> list[np.ndarray]:
        """Run the graph, one image at a time when it was exported with a fixed batch of 1.

        The runtimes want every graph input, so the NMS settings are fed even for raw outputs.
        """
        self._check_input(images)
        array = images.detach().cpu().float().contiguous().numpy()
        feed: dict[str, np.ndarray] = {}
        if self.has_nms:
            feed = {
                "score_threshold": np.array(score_threshold, dtype=np.float32),
                "iou_threshold": np.array(iou_threshold, dtype=np.float32),
                "max_detections": np.array(max_detections, dtype=np.int64),
            }
        if self._input_shape[0] != 1 or len(array) == 1:
            return self._infer({"images": array, **feed}, outputs)
        parts = [self._infer({"images": array[i : i + 1], **feed}, outputs) for i in range(len(array))]
        return [_concat_batches([p[k] for p in parts], name) for k, name in enumerate(outputs)]

    def _check_input(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ConfigError(f"expected images [B, 3, H, W], got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise ConfigError(f"image height and width must be multiples of 32, got {height}x{width}")
        fixed = [int(s) for s in self._input_shape[2:] if isinstance(s, int)]
        if len(fixed) == 2 and fixed != [height, width]:
            raise ConfigError(
                f"{self.path.name} was exported for {fixed[0]}x{fixed[1]} inputs (dynamic=False), got "
                f"{height}x{width}; use predict(), or export with dynamic=True"
            )


def _concat_batches(parts: list[np.ndarray], name: str) -> np.ndarray:
    """Join per-image outputs; NMS rows get their image's index back in column 0."""
    if name == "det_index":
        parts = [np.concatenate([np.full_like(p[:, :1], i), p[:, 1:]], axis=1) for i, p in enumerate(parts)]
    return np.concatenate(parts, axis=0)


def _image_detections(found: list[np.ndarray], image: int, max_detections: int) -> dict[str, torch.Tensor]:
    """NMS rows (index, boxes, scores and maybe coefficients) of one image -> ``dict(boxes, scores, labels)``
    (and ``coefficients``), best ``max_detections`` by score."""
    index, boxes, scores = found[:3]
    rows = np.flatnonzero(index[:, 0] == image)
    rows = rows[np.argsort(-scores[rows], kind="stable")][:max_detections]
    det = {
        "boxes": torch.from_numpy(boxes[rows].astype(np.float32)).reshape(-1, 4),
        "scores": torch.from_numpy(scores[rows].astype(np.float32)),
        "labels": torch.from_numpy(index[rows, 1].astype(np.int64)),
    }
    if len(found) > 3:
        det["coefficients"] = torch.from_numpy(found[3][rows].astype(np.float32)).reshape(len(rows), found[3].shape[-1])
    return det
