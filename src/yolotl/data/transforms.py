"""Albumentations pipelines: a letterbox for evaluation, letterbox + augmentation for training.

Both take ``image`` (uint8 RGB HxWx3), ``bboxes`` (pascal_voc: absolute xyxy) and ``labels``
and return a square ``image_size`` image. The eval letterbox scales the longest side to
``image_size`` and pads the rest centred with grey 114, so input pixels map back to original
pixels as ``(input - pad) / scale`` (see :func:`letterbox_params`).

A ``mask`` passed along moves with the image (nearest-neighbour resampling); what the letterbox, the
mosaic or the affine fill gets ``mask_fill``: 0 (no object) for instance masks, the ignore index
(:data:`~yolotl.constants.IGNORE_INDEX`) for semantic class maps.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING

import cv2

from yolotl.errors import ConfigError

if TYPE_CHECKING:
    import albumentations as A

__all__ = [
    "build_eval_transforms",
    "build_train_transforms",
    "check_image_size",
    "letterbox_params",
]

PAD_VALUE = 114
_NO_UPDATE = "NO_ALBUMENTATIONS_UPDATE"
# Masks are resized with exact nearest neighbour: each output pixel takes the input pixel under its
# centre, as the image's INTER_LINEAR samples it. Plain INTER_NEAREST takes input floor(i / scale),
# which shifts an enlarged mask by up to a pixel right/down of its image. (Affine's warp rounds the
# mapped centre already, and does not accept INTER_NEAREST_EXACT.)
_MASK_RESIZE = cv2.INTER_NEAREST_EXACT


def _albumentations() -> ModuleType:
    """albumentations, imported on first use with its PyPI update check switched off.

    albumentations 2.x asks PyPI for a newer version when imported unless
    ``NO_ALBUMENTATIONS_UPDATE`` is set; library code must stay offline. The variable is set
    only around that first import and then restored, so yolotl leaves the environment as it
    found it (and importing yolotl does nothing of the kind).
    """
    module = sys.modules.get("albumentations")
    if module is not None:
        return module
    previous = os.environ.get(_NO_UPDATE)
    os.environ[_NO_UPDATE] = "1"
    try:
        import albumentations
    finally:
        if previous is None:
            os.environ.pop(_NO_UPDATE, None)
        else:
            os.environ[_NO_UPDATE] = previous
    return albumentations


def letterbox_params(height: int, width: int, image_size: int) -> tuple[float, float, float]:
    """(scale, pad_x, pad_y) of the eval letterbox for an image of ``height`` x ``width``.

    Mirrors ``LongestMaxSize`` (scale = image_size / longest side, sizes rounded) followed by
    centred ``PadIfNeeded`` (the smaller half of the padding before the image). Mapping back
    with one ``scale`` is exact along the longest side; along the other it is off by the
    rounding of the resized side to whole pixels, at most half an input pixel.
    """
    scale = image_size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    return scale, float((image_size - new_w) // 2), float((image_size - new_h) // 2)


def _letterbox(image_size: int, mask_fill: int = 0) -> list[A.BasicTransform]:
    A = _albumentations()
    return [
        A.LongestMaxSize(max_size=image_size, interpolation=cv2.INTER_LINEAR,
                         mask_interpolation=_MASK_RESIZE),
        A.PadIfNeeded(image_size, image_size, position="center",
                      border_mode=cv2.BORDER_CONSTANT, fill=PAD_VALUE, fill_mask=mask_fill),
    ]


def check_image_size(image_size: int) -> None:
    """Raise ConfigError unless ``image_size`` is a positive multiple of 32."""
    if not isinstance(image_size, int) or image_size < 32 or image_size % 32:
        raise ConfigError(f"image_size={image_size!r} must be a positive multiple of 32 "
                          f"(the detector's largest stride); use e.g. 320, 416 or 640.")


def build_eval_transforms(image_size: int, mask_fill: int = 0) -> A.Compose:
    """Letterbox to ``image_size`` x ``image_size``; boxes follow, none are dropped; a ``mask``'s
    padding is ``mask_fill``."""
    A = _albumentations()
    check_image_size(image_size)
    return A.Compose(
        _letterbox(image_size, mask_fill),
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True),
    )


def build_train_transforms(
    image_size: int,
    hflip: float = 0.5,
    vflip: float = 0.0,
    scale: tuple[float, float] = (0.5, 1.5),
    translate: float = 0.1,
    degrees: float = 0.0,
    shear: float = 0.0,
    hsv: float = 1.0,
    min_visibility: float = 0.3,
    min_area: float = 4.0,
    mosaic: bool = False,
    mask_fill: int = 0,
) -> A.Compose:
    """Letterbox (or, with ``mosaic=True``, a 2x2 mosaic), then random affine, flips and HSV.

    ``scale`` is the zoom range and ``translate`` the shift as a fraction of ``image_size``,
    ``degrees``/``shear`` the rotation/shear ranges, all applied to the square (grey fill
    outside); ``hsv`` scales the colour jitter (0 turns it off, 1 is hue +-10, saturation +-40,
    value +-30). Boxes are clipped to the image; a box keeping less than ``min_visibility`` of
    its area or under ``min_area`` px^2 is dropped. A ``mask`` gets ``mask_fill`` wherever the
    image gets the grey fill (0 for instance masks; the ignore index for semantic class maps).

    A mosaic pipeline needs the three other images in the call:
    ``transform(image=..., bboxes=..., labels=..., mosaic_metadata=[{"image", "bboxes",
    "labels"}] * 3)``; albumentations' ``Mosaic`` fits each image into an ``image_size`` cell
    (aspect kept, like the letterbox) and crops an ``image_size`` view around a random centre.
    """
    A = _albumentations()
    check_image_size(image_size)
    if not 0 < scale[0] <= scale[1]:
        raise ConfigError(f"scale={scale} must be (low, high) with 0 < low <= high.")
    for name, p in (("hflip", hflip), ("vflip", vflip)):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{name}={p} is a probability; use a value in [0, 1].")
    first = [_mosaic(image_size, mask_fill)] if mosaic else _letterbox(image_size, mask_fill)
    transforms = first + _affine(tuple(scale), translate, degrees, shear, mask_fill)
    transforms += [A.HorizontalFlip(p=hflip), A.VerticalFlip(p=vflip)]
    if hsv > 0:
        transforms.append(A.HueSaturationValue(10 * hsv, 40 * hsv, 30 * hsv, p=0.8))
    return A.Compose(
        transforms,
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True,
                                 min_visibility=min_visibility, min_area=min_area),
    )


def _mosaic(image_size: int, mask_fill: int = 0) -> A.BasicTransform:
    A = _albumentations()
    return A.Mosaic(target_size=(image_size, image_size), cell_shape=(image_size, image_size),
                    center_range=(0.3, 0.7), fit_mode="contain", fill=PAD_VALUE, fill_mask=mask_fill,
                    mask_interpolation=_MASK_RESIZE, p=1.0)


def _affine(scale: tuple[float, float], translate: float, degrees: float,
            shear: float, mask_fill: int = 0) -> list[A.BasicTransform]:
    """One random affine, or nothing when every range is the identity (saves a warp)."""
    A = _albumentations()
    if scale == (1.0, 1.0) and translate == 0 and degrees == 0 and shear == 0:
        return []
    return [A.Affine(scale=scale, translate_percent=(-translate, translate), rotate=(-degrees, degrees),
                     shear=(-shear, shear), keep_ratio=True, border_mode=cv2.BORDER_CONSTANT,
                     fill=PAD_VALUE, fill_mask=mask_fill, mask_interpolation=cv2.INTER_NEAREST, p=1.0)]
