"""Image loading and letterboxing for inference, with exactly the eval data pipeline's geometry."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch


ImageInput = Union[str, Path, np.ndarray, torch.Tensor, Any]  # Any: PIL.Image.Image


@dataclass(frozen=True)
class Letterboxed:
    image: np.ndarray  # [S, S, 3] uint8 RGB
    scale: float  # input pixels per original pixel
    pad: tuple[float, float]  # (pad_x, pad_y) added on the left / top


def load_image(source: ImageInput) -> np.ndarray:
    """Any supported image input -> HWC uint8 RGB numpy array."""
    if isinstance(source, (str, Path)):
        from yolotl.data.dataset import read_image

        return read_image(source)
    if isinstance(source, torch.Tensor):
        array = source.detach().cpu()
        if array.dim() != 3 or array.shape[0] not in (1, 3):
            raise ValueError(f"expected a CHW image tensor, got shape {tuple(array.shape)}")
        if array.is_floating_point():
            array = (array.clamp(0, 1) * 255).round()
        return _to_rgb(array.to(torch.uint8).permute(1, 2, 0).numpy())
    if hasattr(source, "convert") and hasattr(source, "size"):  # PIL image
        return np.asarray(source.convert("RGB"))
    if isinstance(source, np.ndarray):
        return _to_rgb(source)
    raise TypeError(f"unsupported image input of type {type(source).__name__}")


def _to_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


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
