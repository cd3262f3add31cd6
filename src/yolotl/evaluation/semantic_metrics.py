"""Semantic segmentation scores: per-class IoU, mean IoU and pixel accuracy from one confusion matrix.

The matrix is torchmetrics' :class:`~torchmetrics.classification.MulticlassConfusionMatrix` (it
accumulates over batches and syncs across DDP processes); IoU and accuracy are read off it, so every score
comes from the same counts. Pixels whose truth is the ignore value are counted nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from yolotl.ops.semantic import IGNORE_INDEX

__all__ = ["SemanticMetrics", "scores_from_confusion"]


def scores_from_confusion(matrix: Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """``miou``, ``pixel_acc`` and ``iou/<class>`` from a ``[C, C]`` confusion matrix (rows truth, columns
    prediction). A class that is neither in the truth nor predicted has no IoU (NaN) and stays out of the
    mean, as in the Cityscapes and ADE20K protocols; a class predicted but never true scores 0."""
    counts = matrix.double()
    true_positive = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, math.nan))
    labelled = counts.sum()
    scores = {
        "miou": float(iou[union > 0].mean()) if bool((union > 0).any()) else math.nan,
        "pixel_acc": float(true_positive.sum() / labelled) if labelled > 0 else math.nan,
    }
    scores.update({f"iou/{name}": float(value) for name, value in zip(class_names, iou)})
    return scores


class SemanticMetrics(nn.Module):
    """Accumulates class maps of a split and scores them (:func:`scores_from_confusion`).

    ``update(preds, target)`` takes int64 class maps ``[B, H, W]`` of equal size; truth pixels equal to
    ``ignore_index`` are left out. ``compute()`` returns the scores as floats, ``confusion_matrix()`` the
    counts (``[C, C]`` int64, rows truth, columns prediction).
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        # validate_args=False: the values are checked here once, not scanned again per batch by torchmetrics
        self.matrix = MulticlassConfusionMatrix(len(self.class_names), ignore_index=ignore_index,
                                                validate_args=False)

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"class maps differ in shape: predictions {tuple(preds.shape)}, truth {tuple(target.shape)}")
        num_classes = len(self.class_names)
        labelled = target != self.ignore_index
        if bool((target[labelled] >= num_classes).any()) or bool((target[labelled] < 0).any()):
            raise ValueError(f"the truth holds values that are no class (0..{num_classes - 1} or "
                             f"{self.ignore_index} to ignore): {sorted(set(target[labelled].unique().tolist()))[:10]}")
        if preds.numel() and (int(preds.min()) < 0 or int(preds.max()) >= num_classes):
            # a value past the last class would be counted in another class's cell, not refused
            raise ValueError(f"the predictions hold values that are no class (0..{num_classes - 1}): "
                             f"{sorted(set(preds.unique().tolist()) - set(range(num_classes)))[:10]}")
        self.matrix.update(preds.reshape(-1), target.reshape(-1))

    def confusion_matrix(self) -> Tensor:
        return self.matrix.compute().long()

    def compute(self) -> dict[str, float]:
        return scores_from_confusion(self.confusion_matrix(), self.class_names)

    def reset(self) -> None:
        self.matrix.reset()
