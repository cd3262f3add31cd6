"""K-fold splits: a seeded, stratified partition; the DataModule serves fold k as val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolotl import DetectionDataModule
from yolotl.data import kfold_assignment, read_split
from yolotl.errors import ConfigError

from .helpers import shared_datasets


def test_folds_partition_and_stratify_rare_classes() -> None:
    rng = np.random.default_rng(0)
    classes = [[0] for _ in range(80)] + [[0, 1] for _ in range(10)] + [[2] for _ in range(5)] + [[] for _ in range(5)]
    order = rng.permutation(len(classes))
    classes = [classes[i] for i in order]
    folds = kfold_assignment(classes, 5, seed=1)
    assert folds.shape == (100,) and set(folds.tolist()) == set(range(5))
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    for rare, expected in ((1, 2), (2, 1)):  # 10 images of class 1 -> 2 per fold; 5 of class 2 -> 1
        per_fold = np.bincount([f for f, c in zip(folds, classes) if rare in c], minlength=5)
        assert per_fold.tolist() == [expected] * 5
    np.testing.assert_array_equal(folds, kfold_assignment(classes, 5, seed=1))
    assert not np.array_equal(folds, kfold_assignment(classes, 5, seed=2))


def test_bad_fold_settings() -> None:
    with pytest.raises(ConfigError, match="num_folds=3 must be in 2..2"):
        kfold_assignment([[0], [1]], 3)
    with pytest.raises(ConfigError, match="fold=5 must be an integer in 0..4"):
        DetectionDataModule(root="x", format="synthetic", selection={"fold": 5, "num_folds": 5})


def test_datamodule_fold_is_val_and_the_rest_train(tmp_path: Path) -> None:
    synthetic = {"num_train": 30, "num_val": 4, "num_test": 4, "image_size": 64}
    seen_val: list[str] = []
    for fold in range(3):
        dm = DetectionDataModule(str(tmp_path / "syn"), format="synthetic", image_size=64, reading={"synthetic": synthetic}, loader={"num_workers": 0, "cache": "none"}, selection={"fold": fold, "num_folds": 3})
        dm.setup()
        train = {str(r.image_path) for r in dm.split("train").records}
        val = {str(r.image_path) for r in dm.split("val").records}
        assert not train & val and len(train | val) == 30 and 8 <= len(val) <= 12
        assert "fold 1/3" in dm.split("val").name or fold != 1
        assert len(dm.split("test").records) == 4  # the test split is untouched
        assert len(dm.val_dataloader().dataset) == len(val)
        seen_val += sorted(val)
    assert len(set(seen_val)) == 30  # every image is val exactly once


@pytest.mark.real_data("aquarium", "bccd")
@pytest.mark.parametrize(("fmt", "name", "classes"), [("yolo", "aquarium", None), ("voc", "bccd", ["RBC", "WBC", "Platelets"])])
def test_every_class_of_the_shared_datasets_is_in_every_fold(fmt, name, classes) -> None:
    root = shared_datasets() / name
    split = read_split(fmt, root, "train", classes)
    present = [sorted(set(r.labels.tolist())) for r in split.records]
    for seed in range(3):
        folds = kfold_assignment(present, 5, seed)
        for c in range(len(split.class_names)):
            assert set(folds[[i for i, p in enumerate(present) if c in p]].tolist()) == set(range(5))
