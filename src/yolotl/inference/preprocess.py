"""Image loading and letterboxing for inference, with exactly the eval data pipeline's geometry.

How ``predict()`` reads each input form is documented on :data:`ImageInput`; every form ends up as
the HWC uint8 RGB array the eval pipeline works on, or is refused with a :class:`~yolotl.ConfigError`
that names the shape / dtype / values it got and the forms it accepts.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from yolotl.errors import ConfigError

ImageInput = Union[str, Path, np.ndarray, torch.Tensor, Any]  # Any: PIL.Image.Image
"""One image for ``predict()``; each form is read into uint8 RGB pixels, or refused with a ConfigError.

* **path** (``str`` / ``Path``): decoded as training decodes it (OpenCV): EXIF orientation applied,
  grayscale / palette / 16-bit (high byte) turned into 8-bit RGB, alpha dropped.
* **PIL image**, any mode: EXIF orientation applied (``ImageOps.exif_transpose``), so ``Image.open(p)``
  gives the pixels the path ``p`` gives. ``RGB`` as is; ``L``, ``1``, ``P``, ``LA``, ``RGBA``, ``CMYK``, ...
  converted to RGB (alpha dropped); ``I;16*`` read as 16-bit, ``I`` as 16-bit when a value exceeds 255
  (else as 0..255), ``F`` as floats (the array rules below).
* **NumPy array / torch tensor**, same rules for both:

  - *layout*: 2-D ``[H, W]`` is grayscale; 3-D is channels-last ``[H, W, C]`` when the last dimension
    is 1, 3 or 4, channels-first ``[C, H, W]`` when only the first is. When both are (e.g. 3x3x3) the
    library convention decides: arrays are HWC (NumPy / PIL / OpenCV), tensors are CHW (torch).
    1 channel is grayscale, 3 are RGB, 4 are RGBA (alpha dropped). Other channel counts (e.g. 2) and
    other dimensions are refused; a 4-D array or tensor is a batch of such 3-D images.
  - *values*: ``uint8`` is 0..255. Floats are 0..1 when their maximum is <= 1, else 0..255; NaN, inf
    or values outside 0..255 are refused. ``uint16`` is 16-bit (divided by 256, as a 16-bit image file
    is read). Other integer types are read as 0..255 when every value lies in 0..255, else refused;
    ``bool`` is 0 / 255.
  - RGB order: OpenCV's ``cv2.imread`` returns BGR; convert it (``cv2.cvtColor(x, cv2.COLOR_BGR2RGB)``).
"""

ACCEPTED_FORMS = (
    "a path, a PIL image, or a NumPy array / torch tensor shaped [H, W] (grayscale), [H, W, C] or "
    "[C, H, W] with C = 1 (grayscale), 3 (RGB) or 4 (RGBA), or a 4-D batch of those; "
    "values uint8 0..255, float 0..1 or 0..255, or uint16 16-bit"
)
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True)
class Letterboxed:
    image: np.ndarray  # [S, S, 3] uint8 RGB
    scale: float  # input pixels per original pixel
    pad: tuple[float, float]  # (pad_x, pad_y) added on the left / top


def load_image(source: ImageInput) -> np.ndarray:
    """Any supported image input -> HWC uint8 RGB numpy array (rules: :data:`ImageInput`).

    Raises:
        ConfigError: a form, shape, dtype or value range that cannot be read unambiguously.
        DatasetError: a path that is missing or not a readable image.
    """
    if isinstance(source, (str, Path)):
        from yolotl.data.dataset import read_image

        return read_image(source)
    if _is_pil_image(source):
        return _from_pil(source)
    if isinstance(source, torch.Tensor):
        return array_to_rgb(tensor_to_numpy(source), channels_first=True, kind="tensor")
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, channels_first=False, kind="array")
    raise ConfigError(f"cannot read an image from a {type(source).__name__}; expected {ACCEPTED_FORMS}")


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor's values as a NumPy array (bfloat16 and other types NumPy lacks go through float32)."""
    tensor = tensor.detach().cpu()
    if tensor.is_complex():
        raise ConfigError(f"cannot read an image from a complex tensor; expected {ACCEPTED_FORMS}")
    try:
        return tensor.numpy()
    except TypeError:
        return tensor.float().numpy()


def array_to_rgb(array: np.ndarray, channels_first: bool, kind: str = "array") -> np.ndarray:
    """One image array ``[H, W]``, ``[H, W, C]`` or ``[C, H, W]`` -> HWC uint8 RGB (rules: :data:`ImageInput`).

    ``channels_first`` decides shapes whose first and last dimensions could both be channels.
    """
    array = _to_hwc(array, channels_first, kind)
    array = _to_uint8(array, kind)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _to_hwc(array: np.ndarray, channels_first: bool, kind: str) -> np.ndarray:
    shape = tuple(array.shape)
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim == 3:
        first, last = shape[0] in _CHANNELS, shape[2] in _CHANNELS
        if first and (channels_first or not last):
            array = array.transpose(1, 2, 0)
        elif not last:
            raise ConfigError(
                f"cannot read an image {kind} of shape {shape}: neither its first nor its last dimension is "
                f"1, 3 or 4 channels; expected {ACCEPTED_FORMS}"
            )
    else:
        batch = " (a batch must be a list, or a 4-D array / tensor of 3-D images)" if array.ndim == 4 else ""
        raise ConfigError(f"cannot read an image {kind} of shape {shape}{batch}; expected {ACCEPTED_FORMS}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ConfigError(f"cannot read an empty image {kind} of shape {shape}; expected {ACCEPTED_FORMS}")
    return array


def _to_uint8(array: np.ndarray, kind: str) -> np.ndarray:
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.uint16:
        return (array >> 8).astype(np.uint8)  # cv2.imread's 16 -> 8 bit: the high byte
    if dtype.kind == "f":
        values = array.astype(np.float32, copy=False)
        if not np.isfinite(values).all():
            raise ConfigError(f"image {kind} holds NaN or infinite values; expected float values in 0..1 or 0..255")
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255:
            raise ConfigError(
                f"float image {kind} has values in {low:g}..{high:g}; expected 0..1 (read when the maximum is "
                f"<= 1) or 0..255; rescale it (e.g. normalised images: undo the mean/std first)"
            )
        if high <= 1:
            values = values * 255
        return np.round(values).astype(np.uint8)
    if dtype.kind == "b":
        return array.astype(np.uint8) * 255
    if dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ConfigError(
                f"{dtype} image {kind} has values in {low}..{high}; expected 0..255 (uint8), or uint16 for a "
                f"16-bit image"
            )
        return array.astype(np.uint8)
    raise ConfigError(f"cannot read an image {kind} of dtype {dtype}; expected uint8 0..255, float 0..1 or 0..255, "
                      f"or uint16")


def _is_pil_image(source: Any) -> bool:
    pil_image = sys.modules.get("PIL.Image")  # not imported: cannot be a PIL image
    return pil_image is not None and isinstance(source, pil_image.Image)


def _from_pil(image: Any) -> np.ndarray:
    """A PIL image -> HWC uint8 RGB, EXIF orientation applied like a file read by path."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image)
        if mode.startswith("I;16") or (mode == "I" and array.size and 255 < array.max() <= 65535 and array.min() >= 0):
            array = array.astype(np.uint16)
        return array_to_rgb(array, channels_first=False, kind=f"PIL image (mode {mode})")
    if mode != "RGB":
        try:
            image = image.convert("RGB")
        except (ValueError, OSError) as err:
            raise ConfigError(f"cannot convert a PIL image of mode {mode} to RGB ({err}); convert it first") from None
    return np.asarray(image)


@lru_cache(maxsize=8)
def _eval_pipeline(size: int):  # noqa: ANN202 - albumentations.Compose
    from yolotl.data.transforms import build_eval_transforms

    return build_eval_transforms(size)


def letterbox(image: np.ndarray, size: int) -> Letterboxed:
    """The eval data pipeline's letterbox (same resize and padding), with its scale and padding."""
    from yolotl.data.transforms import letterbox_params

    out = _eval_pipeline(size)(image=image, bboxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64))
    scale, pad_x, pad_y = letterbox_params(image.shape[0], image.shape[1], size)
    return Letterboxed(np.ascontiguousarray(out["image"]), scale, (pad_x, pad_y))
