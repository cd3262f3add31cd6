"""Selecting records: k-fold cross-validation and seeded training-data fractions.

Pure functions over records (or per-image class lists): the same inputs always give the same
selection, and nothing is read or decoded here.

**K-fold** (:func:`kfold_assignment`, :func:`fold_split`): seeded and stratified by class presence.
With a few hundred images and rare classes, a plain random split can leave a fold without a
single starfish. Images are placed rarest-class first, each into the fold that so far holds
the fewest images with that class (ties: the smallest fold, then a seeded random choice), the
greedy core of iterative stratification (Sechidis et al. 2011) for multi-label data.

**Fractions** (:func:`fraction_indices`, :func:`fraction_split`): seeded, nested subsets of a
training set for data-efficiency curves (10%, 25%, 50%, 100%). One seeded permutation orders the
images; a fraction takes its first ``ceil(f * n)`` images, so the 10% subset lies inside the 25%
one and so on (a curve measures more data, not other data). Each class present in the split is
kept present: when the cut leaves a class out, the first image of that class in the permutation
joins the subset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from yolotl.data.findings import FindingLog
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.errors import ConfigError

__all__ = ["check_fold", "check_fraction", "fold_split", "fraction_indices", "fraction_split",
           "classes_per_image", "kfold_assignment"]


def classes_per_image(records: Sequence[ImageRecord]) -> list[list[int]]:
    """The class ids present in each record (its labels as a list)."""
    return [record.labels.tolist() for record in records]


def fold_split(full: DatasetSplit, fold: int, num_folds: int, seed: int, role: str) -> DatasetSplit:
    """Fold ``fold`` of ``full`` (``role="val"``) or the other folds (``role="train"``)."""
    folds = kfold_assignment(classes_per_image(full.records), num_folds, seed)
    keep = (folds == fold) if role == "val" else (folds != fold)
    records = [r for r, k in zip(full.records, keep) if k]
    name = f"{full.name}[fold {fold}/{num_folds} {'val' if role == 'val' else 'train'}]"
    return DatasetSplit(name, full.root, records, full.class_names,
                        FindingLog(full.findings.split, full.findings.dataset))


def fraction_split(full: DatasetSplit, fraction: float, seed: int) -> DatasetSplit:
    """The seeded ``fraction`` subset of ``full`` (every class kept present)."""
    keep = fraction_indices(classes_per_image(full.records), fraction, seed)
    records = [full.records[i] for i in keep]
    name = f"{full.name}[{fraction:.0%} = {len(records)} images]"
    return DatasetSplit(name, full.root, records, full.class_names,
                        FindingLog(full.findings.split, full.findings.dataset))


def check_fold(fold: int | None, num_folds: int) -> None:
    """Raise ConfigError unless ``fold`` is None or in ``0..num_folds-1`` with ``num_folds >= 2``."""
    if fold is None:
        return
    if not isinstance(num_folds, int) or num_folds < 2:
        raise ConfigError(f"num_folds={num_folds!r} must be an integer >= 2 to use data.selection.fold.")
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
