"""TorchDetector: a :class:`~yolotl.YoloDetector` run by PyTorch behind yolotl's ``predict()`` contract.

The PyTorch runtime beside :class:`~yolotl.inference.onnx_runtime.OnnxDetector`: the same ``detect`` and
``predict`` (one code path, :func:`~yolotl.inference.predict.predict_images`), so switching runtimes
changes no calling code. The detector stays a pure nn.Module (``models/`` imports nothing from here);
this wrapper adds reading images and mapping boxes back to them. ``yolotl.load`` returns one.

A semantic segmenter (``task="semantic"``) has the same ``predict`` with a class map per image instead of
boxes (:func:`~yolotl.inference.predict.predict_class_maps`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch

from yolotl.errors import ConfigError
from yolotl.inference.predict import Detections, check_semantic_options, predict_class_maps, predict_images
from yolotl.inference.preprocess import ImageInput
from yolotl.models.detector import YoloDetector


class TorchDetector:
    """A :class:`~yolotl.YoloDetector` that predicts on images.

    Attributes:
        detector: the wrapped nn.Module, read at every call: train it, move it (``.to(device)``) or
            export it (:func:`~yolotl.inference.onnx_export.export_onnx` takes either) and this
            wrapper follows. class_names, num_classes, image_size, segments, semantic, device: the
            detector's.
    """

    def __init__(self, detector: YoloDetector) -> None:
        self.detector = detector

    @property
    def class_names(self) -> list[str]:
        return self.detector.class_names

    @property
    def num_classes(self) -> int:
        return self.detector.num_classes

    @property
    def image_size(self) -> int:
        """The square size ``predict`` letterboxes to (the training size)."""
        return self.detector.config.image_size

    @property
    def segments(self) -> bool:
        """The detector has a mask branch: ``detect`` and ``predict`` add ``masks``."""
        return self.detector.segments

    @property
    def semantic(self) -> bool:
        """The detector is a semantic segmenter: ``predict`` returns a class map per image, not boxes."""
        return self.detector.semantic

    @property
    def device(self) -> torch.device:
        return self.detector.mean.device

    def __repr__(self) -> str:
        masks = ", masks" if self.segments else ", semantic" if self.semantic else ""
        return (f"TorchDetector({self.detector.config.backbone}, {self.num_classes} classes{masks}, "
                f"{self.device})")

    def detect(
        self,
        images: torch.Tensor,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.6,
        max_detections: int = 300,
        classes: Sequence[int] | None = None,
        masks: bool | None = None,
    ) -> Detections:
        """Detections for a batch of input tensors ``[B, 3, H, W]`` in ``[0, 1]``, in input-tensor pixels,
        with the detector in eval mode (:meth:`yolotl.YoloDetector.detect`)."""
        with self._evaluating():
            return self.detector.detect(images.to(self.device), score_threshold, iou_threshold, max_detections,
                                        classes, masks)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """A semantic segmenter's class logits ``[B, C, H/8, W/8]`` for input tensors ``[B, 3, H, W]`` in
        ``[0, 1]`` (the exported graph's ``logits`` output), in eval mode, without gradients."""
        if not self.semantic:
            raise ConfigError(f"logits() is for semantic segmenters (task=semantic); this detector was built with "
                              f"task={self.detector.config.task} (use detect() or predict())")
        with self._evaluating(), torch.no_grad():
            return self.detector(images.to(self.device)).logits

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
        """Detect objects in image files, PIL images, NumPy arrays or tensors (every form and value range
        that :data:`yolotl.inference.preprocess.ImageInput` lists is read right or refused with a ConfigError).

        One image or a list (or a 4-D array or tensor) of them. ``classes`` keeps only these class ids or
        names (before NMS and ``max_detections``). Returns one dict per image with ``boxes`` (xyxy,
        original-image pixels), ``scores`` and ``labels``, sorted by decreasing score; a segmenting detector
        adds ``masks`` (bool ``[K, H, W]``, original-image pixels, one per box). ``masks=False`` skips them;
        ``masks=True`` asks a detection-only detector for them and gets a ConfigError. The detector runs in
        eval mode and gets its training mode back afterwards.

        A semantic segmenter (:attr:`semantic`) returns per image ``{"semantic": int64 [H0, W0]}``, the most
        probable class of every original pixel (the letterbox undone on the logits before the argmax), and
        with ``probabilities=True`` also ``"probabilities"``: float32 ``[C, H0, W0]``, softmax over classes.
        The detection options (thresholds, ``max_detections``, ``classes``, ``masks=True``) do not apply to
        it: left at their defaults they are ignored, set to anything else they raise a ConfigError rather
        than be silently dropped. ``probabilities=True`` for a detector raises a ConfigError too.
        """
        check_semantic_options(
            {"score_threshold": score_threshold, "iou_threshold": iou_threshold, "max_detections": max_detections,
             "classes": classes, "masks": masks}, probabilities, self.semantic, "this model")
        if self.semantic:
            return predict_class_maps(images, self.image_size, self.logits, probabilities=probabilities,
                                      batch_size=batch_size, device=self.device)
        detect = partial(self.detect, score_threshold=score_threshold, iou_threshold=iou_threshold,
                         max_detections=max_detections, masks=masks)
        return predict_images(images, self.image_size, detect, classes=classes, class_names=self.class_names,
                              batch_size=batch_size, device=self.device)

    @contextmanager
    def _evaluating(self) -> Iterator[None]:
        was_training = self.detector.training
        self.detector.eval()
        try:
            yield
        finally:
            self.detector.train(was_training)
