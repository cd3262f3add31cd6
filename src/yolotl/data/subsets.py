"""Seeded, nested subsets of a training set: for data-efficiency curves (10%, 25%, 50%, 100%).

One seeded permutation orders the images; a fraction takes its first ``ceil(f * n)`` images, so
the 10% subset lies inside the 25% one and so on (a curve measures more data, not other data).
Each class present in the split is kept present: when the cut leaves a class out, the first image
of that class in the permutation joins the subset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from yolotl.errors import ConfigError

__all__ = ["check_fraction", "fraction_indices"]


def check_fraction(fraction: float) -> None:
    """ConfigError unless ``0 < fraction <= 1``."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ConfigError(f"train_fraction={fraction!r} must be a number in (0, 1], e.g. 0.25 for a quarter "
                          "of the training images.")


def fraction_indices(image_classes: Sequence[Sequence[int]], fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of the images in the ``fraction`` subset (every class still present)."""
    check_fraction(fraction)
    n = len(image_classes)
    order = np.random.default_rng(seed).permutation(n)
    keep = set(order[: max(1, math.ceil(fraction * n))].tolist())
    present = {c for i in keep for c in image_classes[i]}
    for index in order.tolist():
        missing = set(image_classes[index]) - present
        if missing:
            keep.add(index)
            present |= missing
    return np.array(sorted(keep), dtype=np.int64)
