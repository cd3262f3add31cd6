"""The ``predict()`` contract every yolotl runtime shares.

Inputs: one image or a list of them, each a file path, a PIL image, a NumPy array or a tensor (a 4-D
array or tensor is a batch); :data:`yolotl.inference.preprocess.ImageInput` says how each form is read
(layout, channels, value range, EXIF orientation) and which are refused with a ConfigError. Each image
is letterboxed exactly as the eval data pipeline does, a runtime-specific ``detect_fn`` finds boxes in
network-input pixels, and the boxes are mapped back to the original image. Output: one
``dict(boxes, scores, labels)`` per image (the torchvision detection contract), boxes xyxy in original
pixels, sorted by decreasing score; ``masks`` (bool ``[K, H, W]``, original pixels) where ``detect_fn``
gives input-size masks (a segmenting detector).

A semantic segmenter (``task="semantic"``) goes through :func:`predict_class_maps` instead: the same
reading and letterbox, a ``logits_fn`` for the network, and per image a class map in original pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from yolotl.errors import ConfigError
from yolotl.inference.preprocess import ImageInput, Letterboxed, letterbox, load_image
from yolotl.ops.masks import scale_masks_to_original
from yolotl.ops.postprocess import scale_boxes_to_original
from yolotl.ops.semantic import unletterbox_logits

Detections = list[dict[str, torch.Tensor]]
# detect_fn(images, classes=ids or None): float [B, 3, S, S] RGB in [0, 1] -> detections in input
# pixels (thresholds bound by the caller; the class filter applies before NMS and the max-detections cut)
DetectFn = Callable[..., Detections]
# logits_fn(images): float [B, 3, S, S] RGB in [0, 1] -> class logits float [B, C, S/8, S/8] (a semantic segmenter)
LogitsFn = Callable[[torch.Tensor], torch.Tensor]
# What detection-only options of predict() are by default: a semantic segmenter accepts these values only.
DETECTION_DEFAULTS = {"score_threshold": 0.25, "iou_threshold": 0.6, "max_detections": 300, "classes": None,
                      "masks": None}


def predict_images(
    images: Union[ImageInput, Sequence[ImageInput]],
    image_size: int,
    detect_fn: DetectFn,
    classes: Sequence[int | str] | None = None,
    class_names: Sequence[str] = (),
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Detections:
    """Letterbox, detect ``classes`` in chunks of ``batch_size``, map boxes back to the originals."""
    batch = list(images) if is_image_batch(images) else [images]
    keep = resolve_classes(classes, class_names)
    results: Detections = []
    for start in range(0, len(batch), max(1, batch_size)):
        arrays = [load_image(item) for item in batch[start : start + batch_size]]
        boxed = [letterbox(a, image_size) for a in arrays]
        detections = detect_fn(input_batch(boxed, device), classes=keep)
        for det, b, a in zip(detections, boxed, arrays):
            det = dict(det)
            det["boxes"] = scale_boxes_to_original(det["boxes"], b.scale, b.pad, a.shape[:2])
            if "masks" in det:
                det["masks"] = scale_masks_to_original(det["masks"], b.scale, b.pad, a.shape[:2])
            results.append(det)
    return results


def predict_class_maps(
    images: Union[ImageInput, Sequence[ImageInput]],
    image_size: int,
    logits_fn: LogitsFn,
    probabilities: bool = False,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Detections:
    """A semantic segmenter's ``predict()``: letterbox as :func:`predict_images` does, run ``logits_fn`` in
    chunks of ``batch_size``, and per image undo the letterbox on the logits
    (:func:`~yolotl.ops.semantic.unletterbox_logits`: resized to the input, padding cropped, resized to the
    original, bilinear) before the argmax.

    Returns one dict per image: ``semantic`` int64 ``[H0, W0]`` (the class of each original pixel) and, with
    ``probabilities``, ``probabilities`` float32 ``[C, H0, W0]`` (softmax over classes; they sum to 1). Both
    are on the CPU. Memory per image is ``C x H0 x W0`` floats while it is resized (21 classes at 12 MP: 1 GB).
    """
    batch = list(images) if is_image_batch(images) else [images]
    results: Detections = []
    for start in range(0, len(batch), max(1, batch_size)):
        arrays = [load_image(item) for item in batch[start : start + batch_size]]
        boxed = [letterbox(a, image_size) for a in arrays]
        logits = logits_fn(input_batch(boxed, device))
        for image_logits, b, a in zip(logits, boxed, arrays):
            original = unletterbox_logits(image_logits.float(), image_size, b.scale, b.pad, a.shape[:2])
            result = {"semantic": original.argmax(0).cpu()}
            if probabilities:
                result["probabilities"] = original.softmax(0).cpu()
            results.append(result)
    return results


def check_semantic_options(options: dict[str, Any], probabilities: bool, semantic: bool, what: str) -> None:
    """Refuse options that do not apply to the model ``what`` names: detection-only ``options`` (score and
    IoU thresholds, ``max_detections``, ``classes``, ``masks``) other than their defaults for a semantic
    segmenter, whose every pixel simply gets its most probable class; ``probabilities`` for a detector."""
    if not semantic:
        if probabilities:
            raise ConfigError(f"probabilities=True is for semantic segmenters (task=semantic); {what} detects "
                              "objects: its scores are in predict()'s 'scores'")
        return
    changed = [f"{key}={value!r}" for key, value in options.items() if _changed(key, value)]
    if changed:
        raise ConfigError(
            f"{', '.join(changed)}: {'detection options' if len(changed) > 1 else 'a detection option'}, but "
            f"{what} is a semantic segmenter (task=semantic) that "
            "gives every pixel its most probable class; leave them out, or pass probabilities=True and "
            "threshold or filter the class probabilities yourself"
        )


def _changed(key: str, value: Any) -> bool:
    """``value`` asks for something else than the detection option ``key``'s default (``masks=False``, "no
    masks", asks for nothing a class map lacks)."""
    if key == "masks":
        return bool(value)
    default = DETECTION_DEFAULTS.get(key)
    if default is None:
        return key in DETECTION_DEFAULTS and value is not None
    return bool(value != default)


def input_batch(boxed: Sequence[Letterboxed], device: torch.device | str = "cpu") -> torch.Tensor:
    """Letterboxed images -> the network input, float ``[B, 3, S, S]`` RGB in [0, 1] (every runtime's, and
    INT8 calibration's)."""
    tensor = torch.stack([torch.from_numpy(b.image).permute(2, 0, 1) for b in boxed]).to(device)
    return tensor.float() / 255.0


def resolve_classes(classes: Sequence[int | str] | None, class_names: Sequence[str]) -> list[int] | None:
    """Class ids to keep, from ids or names; ``None`` keeps all. Unknown entries raise ConfigError."""
    if classes is None:
        return None
    if isinstance(classes, (str, int)):
        classes = [classes]
    ids = []
    for item in classes:
        if isinstance(item, str) and item in class_names:
            ids.append(list(class_names).index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item < len(class_names):
            ids.append(int(item))
        else:
            raise ConfigError(f"unknown class {item!r} in classes=; the detector's classes are {list(class_names)}")
    return ids


def is_image_batch(images: Any) -> bool:
    """True for a list/tuple of images or a 4-D array / tensor; False for one image."""
    if isinstance(images, (str, Path)):
        return False
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return images.ndim == 4
    return isinstance(images, Sequence)
