"""The ``predict()`` contract every yolotl runtime shares.

Inputs: one image or a list of them, each a file path, a PIL image, a NumPy array or a tensor (a 4-D
array or tensor is a batch); :data:`yolotl.inference.preprocess.ImageInput` says how each form is read
(layout, channels, value range, EXIF orientation) and which are refused with a ConfigError. Each image
is letterboxed exactly as the eval data pipeline does, a runtime-specific ``detect_fn`` finds boxes in
network-input pixels, and the boxes are mapped back to the original image. Output: one
``dict(boxes, scores, labels)`` per image (the torchvision detection contract), boxes xyxy in original
pixels, sorted by decreasing score; ``masks`` (bool ``[K, H, W]``, original pixels) where ``detect_fn``
gives input-size masks (a segmenting detector).
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

Detections = list[dict[str, torch.Tensor]]
# detect_fn(images, classes=ids or None): float [B, 3, S, S] RGB in [0, 1] -> detections in input
# pixels (thresholds bound by the caller; the class filter applies before NMS and the max-detections cut)
DetectFn = Callable[..., Detections]


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
