"""Per-class weights of the positive BCE term: ``inverse_sqrt`` from the training counts, or given."""

from __future__ import annotations

import math
from typing import Any

from yolotl.errors import ConfigError
from yolotl.training.settings import CLASS_WEIGHTING

# inverse_sqrt weights: a class with fewer training boxes than this is "rare" (see inverse_sqrt_weights).
MIN_WEIGHTED_BOXES = 5


def inverse_sqrt_weights(counts: list[int]) -> list[float]:
    """``sqrt(n_max / n_c)`` per class (the most common class gets 1, rarer ones more), with two bounds
    that only touch classes whose weight could not be trusted:

    - a class with **no** training box gets 1: there is nothing to up-weight (the unbounded rule
      gave it the largest weight of all, 9.95 and 22.3 in two real datasets);
    - a class with fewer than ``MIN_WEIGHTED_BOXES`` (5) boxes gets at most the largest weight of
      the classes that have 5 or more (1 if none has): a stray category's one or two boxes never
      weigh more than the dataset's real minority classes.

    Classes with 5 or more boxes keep ``sqrt(n_max / n_c)`` exactly, as measured on BCCD and
    Aquarium. The data health check names the rare ones (``class_missing_in_train``, ``rare_class``).
    """
    largest = max(max(counts, default=1), 1)
    raw = [math.sqrt(largest / count) if count > 0 else 1.0 for count in counts]
    ceiling = max((w for w, count in zip(raw, counts) if count >= MIN_WEIGHTED_BOXES), default=1.0)
    return [min(w, ceiling) if 0 < count < MIN_WEIGHTED_BOXES else w for w, count in zip(raw, counts)]


def check_class_weights(class_weights: Any, num_classes: int) -> None:
    """ConfigError unless ``class_weights`` is None, a known scheme or ``num_classes`` positive numbers."""
    if class_weights is None or class_weights in CLASS_WEIGHTING:
        return
    if isinstance(class_weights, str):
        raise ConfigError(f"class_weights='{class_weights}' is not a scheme; use one of {list(CLASS_WEIGHTING)}, "
                          f"a list of {num_classes} numbers, or null.")
    values = list(class_weights)
    if len(values) != num_classes or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
                                             for v in values):
        raise ConfigError(f"class_weights={values} must hold {num_classes} positive finite numbers (one per class).")
