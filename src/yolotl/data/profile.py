"""What a dataset looks like to a detector before training: class counts, object sizes at candidate
training sizes, image sizes, and how far its colours are from ImageNet's.

The recipe (:mod:`yolotl.api.recipe`) chooses training settings from it; ``yolotl-check-data`` and
notebooks can print it. Colour statistics come from small thumbnails of an evenly spaced sample of
images, so profiling a few thousand images takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from yolotl.data.records import ImageRecord

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DatasetProfile", "profile_records"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CANDIDATE_SIZES = (416, 512, 640)
FINEST_STRIDE = 8  # the detector's finest feature level: one anchor point per 8x8 pixels
THUMBNAIL = 96  # longest side of the thumbnails colour statistics are computed on
GRAY_TOLERANCE = 0.02  # mean |R-G|, |G-B| below this (in [0, 1] units): a grey image (thermal, X-ray, ...)


@dataclass
class DatasetProfile:
    """Numbers about one (training) split that decide a recipe. Sizes are in pixels."""

    images: int
    boxes: int
    class_names: list[str]
    boxes_per_class: dict[str, int]
    median_image_long_side: float
    # Per candidate training size: the share of boxes whose shorter side, once the image's longer side
    # is scaled to that size, is under the finest stride (too small for one anchor point inside).
    small_share: dict[int, float]
    # Median shorter box side at each candidate size.
    median_box_side: dict[int, float]
    channel_mean: list[float]
    channel_std: list[float]
    gray_share: float  # share of sampled images whose three channels are (nearly) equal
    imagenet_shift: float  # mean over channels of |mean - ImageNet mean| / ImageNet std + |log(std / ImageNet std)|
    sampled_images: int
    unreadable: list[str] = field(default_factory=list)

    @property
    def imbalance(self) -> float:
        """Boxes of the most common class over the least common one that has any (inf: a class has none)."""
        counts = [n for n in self.boxes_per_class.values()]
        if not counts or max(counts) == 0:
            return 1.0
        return float("inf") if min(counts) == 0 else max(counts) / min(counts)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["imbalance"] = round(self.imbalance, 2) if np.isfinite(self.imbalance) else None
        return values


def profile_records(records: Sequence[ImageRecord], class_names: Sequence[str], sample: int = 48,
                    sizes: Sequence[int] = CANDIDATE_SIZES) -> DatasetProfile:
    """Profile a split's records; colours from ``sample`` evenly spaced images (unreadable ones are listed)."""
    counts = np.zeros(len(class_names), dtype=int)
    sides, longs = [], []
    for record in records:
        longs.append(max(record.width, record.height))
        if record.num_objects:
            np.add.at(counts, record.labels, 1)
            wh = record.boxes[:, 2:] - record.boxes[:, :2]
            sides.append(wh.min(axis=1) / max(record.width, record.height))  # shorter side per unit of long side
    relative = np.concatenate(sides) if sides else np.zeros(0)
    small = {int(s): round(float((relative * s < FINEST_STRIDE).mean()), 4) if relative.size else 0.0 for s in sizes}
    median_side = {int(s): round(float(np.median(relative) * s), 1) if relative.size else 0.0 for s in sizes}
    mean, std, gray, read, unreadable = _colour_statistics(records, sample)
    shift = float(np.mean(np.abs(mean - IMAGENET_MEAN) / IMAGENET_STD + np.abs(np.log(np.maximum(std, 1e-3) / IMAGENET_STD))))
    return DatasetProfile(
        images=len(records),
        boxes=int(counts.sum()),
        class_names=list(class_names),
        boxes_per_class={name: int(n) for name, n in zip(class_names, counts)},
        median_image_long_side=float(np.median(longs)) if longs else 0.0,
        small_share=small,
        median_box_side=median_side,
        channel_mean=[round(float(v), 4) for v in mean],
        channel_std=[round(float(v), 4) for v in std],
        gray_share=round(gray, 4),
        imagenet_shift=round(shift, 4),
        sampled_images=read,
        unreadable=unreadable,
    )


def _colour_statistics(records: Sequence[ImageRecord], sample: int) -> tuple[np.ndarray, np.ndarray, float, int, list[str]]:
    """Per-channel mean and std in [0, 1] over thumbnails of an evenly spaced sample, and the grey share."""
    if not records or sample < 1:
        return np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), 0.0, 0, []
    picks = np.unique(np.linspace(0, len(records) - 1, min(sample, len(records))).round().astype(int))
    pixels, grey, unreadable = [], 0, []
    for index in picks:
        path = Path(records[index].image_path)
        try:
            with Image.open(path) as image:
                image.draft("RGB", (THUMBNAIL, THUMBNAIL))  # JPEG: decode at a fraction of the size
                image = image.convert("RGB")
                image.thumbnail((THUMBNAIL, THUMBNAIL))
                array = np.asarray(image, dtype=np.float32).reshape(-1, 3) / 255.0
        except (OSError, ValueError):
            unreadable.append(str(path))  # the health check reports it properly; here it only has no vote
            continue
        pixels.append(array)
        spread = np.abs(array[:, 0] - array[:, 1]).mean() + np.abs(array[:, 1] - array[:, 2]).mean()
        grey += int(spread / 2 < GRAY_TOLERANCE)
    if not pixels:
        return np.array(IMAGENET_MEAN), np.array(IMAGENET_STD), 0.0, 0, unreadable
    stacked = np.concatenate(pixels)
    return stacked.mean(axis=0), stacked.std(axis=0), grey / len(pixels), len(pixels), unreadable
