"""Class checks across splits: a class with boxes in val or test but none in train (the model
cannot learn it and every one of its boxes is a miss), and a class with only a handful of
training boxes (a stray category or one too rare to learn) while other classes have more.

Counts are of the data as the fix policy leaves it. Both kinds are warnings that training keeps
(``policy="strict"`` stops on them); ``DetectionModule``'s ``inverse_sqrt`` class weights treat
such classes the same way: weight 1 for a class with no training box, capped for a rare one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from yolotl.data.findings import Finding
from yolotl.data.records import ImageRecord

__all__ = ["RARE_CLASS_BOXES", "class_findings", "rare_class_names"]

# A class with fewer training boxes than this (and more than none) is rare, when another class
# has at least this many (in a dataset where every class has a handful, none is singled out).
RARE_CLASS_BOXES = 5


def _counts(records: Sequence[ImageRecord], num_classes: int) -> list[int]:
    found = Counter(label for record in records for label in record.labels.tolist())
    return [found[i] for i in range(num_classes)]


def rare_class_names(counts: Mapping[str, int]) -> list[str]:
    """Classes with 1..RARE_CLASS_BOXES-1 boxes in ``counts`` (training boxes per class name), when
    some class has RARE_CLASS_BOXES or more."""
    if max(counts.values(), default=0) < RARE_CLASS_BOXES:
        return []
    return [name for name, count in counts.items() if 0 < count < RARE_CLASS_BOXES]


def class_findings(
    splits: Mapping[str, Sequence[ImageRecord]],
    class_names: Sequence[str],
    train: str | None,
    file: str,
    fresh: Sequence[str] | None = None,
) -> list[Finding]:
    """``class_missing_in_train`` (in each other split holding boxes of a class train lacks) and
    ``rare_class`` (in ``train``) findings. ``train`` names the training split (None: no findings);
    only the ``fresh`` splits (default all) are reported on, every split if train is fresh.
    ``file`` (the dataset root) is what the findings point at."""
    if train is None or train not in splits:
        return []
    fresh = list(splits) if fresh is None or train in fresh else list(fresh)
    names = list(class_names)
    in_train = dict(zip(names, _counts(splits[train], len(names))))
    findings = []
    for split, records in splits.items():
        if split == train or split not in fresh:
            continue
        for name, count in zip(names, _counts(records, len(names))):
            if count and not in_train[name]:
                findings.append(Finding(
                    split, "class_missing_in_train", file,
                    f"class '{name}' has {count} box{'es' if count != 1 else ''} in {split} but "
                    f"none in {train}: the model "
                    f"cannot learn it (its loss weight stays 1); add training images of it, or "
                    f"drop it from {split}"))
    if train in fresh:
        most = max(in_train, key=in_train.get) if in_train else None
        for name in rare_class_names(in_train):
            findings.append(Finding(
                train, "rare_class", file,
                f"class '{name}' has only {in_train[name]} training box"
                f"{'es' if in_train[name] != 1 else ''} (under {RARE_CLASS_BOXES}; "
                f"'{most}' has {in_train[most]}): too few to learn, its loss weight is capped; add "
                f"training images of it, or merge or drop the class"))
    return findings
