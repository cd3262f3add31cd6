"""K-fold splits of a training set, seeded and stratified by class presence.

With a few hundred images and rare classes, a plain random split can leave a fold without a
single starfish. Images are placed rarest-class first, each into the fold that so far holds
the fewest images with that class (ties: the smallest fold, then a seeded random choice), the
greedy core of iterative stratification (Sechidis et al. 2011) for multi-label data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolotl.errors import ConfigError

__all__ = ["check_fold", "kfold_assignment"]


def check_fold(fold: int | None, num_folds: int) -> None:
    """Raise ConfigError unless ``fold`` is None or in ``0..num_folds-1`` with ``num_folds >= 2``."""
    if fold is None:
        return
    if not isinstance(num_folds, int) or num_folds < 2:
        raise ConfigError(f"num_folds={num_folds!r} must be an integer >= 2 to use data.fold.")
    if not isinstance(fold, int) or not 0 <= fold < num_folds:
        raise ConfigError(f"fold={fold!r} must be an integer in 0..{num_folds - 1} (num_folds={num_folds}).")


def kfold_assignment(image_classes: Sequence[Sequence[int]], num_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number (``0..num_folds-1``) of every image; the same inputs always give the same folds.

    ``image_classes[i]`` lists the class ids present in image ``i`` (empty for background).
    Images are spread evenly per rarest class: a class that is the rarest class of at least
    ``num_folds`` images appears in every fold. Other classes follow from the placement; on
    Aquarium and BCCD every class is in every fold, but on tiny multi-label sets a class in barely
    ``num_folds`` images can miss one. Fold sizes end up within a few images.
    """
    if num_folds < 2 or num_folds > len(image_classes):
        raise ConfigError(f"num_folds={num_folds} must be in 2..{len(image_classes)} (the number of images).")
    rng = np.random.default_rng(seed)
    present = [sorted(set(int(c) for c in classes)) for classes in image_classes]
    frequency: dict[int, int] = {}
    for classes in present:
        for c in classes:
            frequency[c] = frequency.get(c, 0) + 1
    rarest = [min(classes, key=lambda c: (frequency[c], c)) if classes else -1 for classes in present]
    tiebreak = rng.random(len(present))
    order = sorted(range(len(present)), key=lambda i: (frequency.get(rarest[i], len(present) + 1), tiebreak[i]))
    per_class = np.zeros((num_folds, max(frequency, default=-1) + 2), np.int64)  # last column: background
    sizes = np.zeros(num_folds, np.int64)
    folds = np.empty(len(present), np.int64)
    for i in order:
        column = rarest[i]
        score = np.stack([per_class[:, column], sizes, rng.random(num_folds)], axis=1)
        fold = int(np.lexsort(score.T[::-1])[0])
        folds[i] = fold
        sizes[fold] += 1
        per_class[fold, present[i] if present[i] else [-1]] += 1
    return folds
