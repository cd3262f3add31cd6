"""A torch Dataset over :class:`ImageRecord` s, and the collate function for detection batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from yolotl.data.records import ImageRecord
from yolotl.data.transforms import build_eval_transforms, letterbox_params
from yolotl.errors import DatasetError

__all__ = ["DetectionDataset", "collate_detections", "read_image"]

_LOG = logging.getLogger("yolotl.data")

Target = dict[str, Any]


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image as uint8 RGB ``[H, W, 3]``, EXIF orientation applied.

    ``cv2.IMREAD_COLOR`` turns grayscale, palette, RGBA (alpha dropped) and 16-bit images into
    8-bit 3-channel images and rotates JPEGs by their EXIF orientation tag.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"Cannot read image {path} (missing, empty or not an image); "
                           f"replace the file or remove it from the dataset.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class DetectionDataset(Dataset):
    """Images and targets of a list of records, passed through an albumentations transform.

    ``__getitem__(i)`` returns ``(image, target)``: ``image`` float32 ``[3, H, W]`` in [0, 1]
    (not normalised: the detector normalises) and ``target`` with ``boxes`` float32 ``[N, 4]``
    xyxy in input pixels, ``labels`` int64 ``[N]``, ``image_id`` (the index), ``orig_size``
    int64 ``[h, w]``, ``scale`` and ``pad`` ``[pad_x, pad_y]`` of the eval letterbox (for eval
    samples original pixels are ``(input - pad) / scale``; for train samples they are only
    informative) and ``path``. ``transform=None`` means the eval letterbox.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[..., dict[str, Any]] | None = None,
        image_size: int = 416,
    ) -> None:
        self.records = list(records)
        self.image_size = image_size
        self.transform = transform if transform is not None else build_eval_transforms(image_size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        record = self.records[index]
        image = read_image(record.image_path)
        height, width = image.shape[:2]
        boxes = boxes_in_decoded_frame(record, height, width)
        out = self.transform(image=image, bboxes=boxes, labels=record.labels)
        tensor = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1)
        scale, pad_x, pad_y = letterbox_params(height, width, self.image_size)
        target = {
            "boxes": torch.as_tensor(np.asarray(out["bboxes"], np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(out["labels"], np.int64).reshape(-1)),
            "image_id": index,
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
            "scale": float(scale),
            "pad": torch.tensor([pad_x, pad_y], dtype=torch.float32),
            "path": str(record.image_path),
        }
        return tensor.float().div_(255.0), target


def boxes_in_decoded_frame(record: ImageRecord, height: int, width: int) -> np.ndarray:
    """Record boxes, rescaled if the decoded image size differs from the annotated size.

    A stale annotated size (or an EXIF rotation the annotation ignored) would otherwise put
    every box in the wrong place; rescaling is the least surprising repair, and it is logged.
    """
    if (record.height, record.width) == (height, width):
        return record.boxes
    _LOG.warning("%s: annotated size %dx%d but the image decodes as %dx%d; rescaling its boxes",
                 record.image_path, record.width, record.height, width, height)
    factors = np.array([width / record.width, height / record.height] * 2, dtype=np.float32)
    return np.clip(record.boxes * factors, 0, [width, height, width, height]).astype(np.float32)


def collate_detections(
    batch: Sequence[tuple[torch.Tensor, Target]],
) -> tuple[torch.Tensor, list[Target]]:
    """Stack images into ``[B, 3, H, W]`` and keep the targets as a list of dicts."""
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]
