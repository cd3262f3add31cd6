"""Training-set fractions: seeded, nested subsets that keep every class (data-efficiency curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolotl import DetectionDataModule
from yolotl.data.selection import fraction_indices
from yolotl.errors import ConfigError


def test_fractions_are_nested_seeded_and_keep_every_class() -> None:
    classes = [[0] for _ in range(90)] + [[1]] + [[0, 2] for _ in range(4)] + [[] for _ in range(5)]
    subsets = {f: set(fraction_indices(classes, f, seed=3).tolist()) for f in (0.1, 0.25, 0.5, 1.0)}
    assert subsets[1.0] == set(range(100))
    assert 10 <= len(subsets[0.1]) <= 12  # ceil(10%) plus at most one image per missing class
    assert subsets[0.1] <= subsets[0.25] <= subsets[0.5] <= subsets[1.0]
    for subset in subsets.values():
        assert {c for i in subset for c in classes[i]} == {0, 1, 2}  # the single class-1 image included
    np.testing.assert_array_equal(fraction_indices(classes, 0.25, seed=3), fraction_indices(classes, 0.25, seed=3))
    assert set(fraction_indices(classes, 0.25, seed=4).tolist()) != subsets[0.25]


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, "half"])
def test_bad_fraction_names_the_range(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"train_fraction=.* must be a number in \(0, 1\]"):
        DetectionDataModule(root="x", format="synthetic", selection={"train_fraction": bad})


def test_datamodule_trains_on_the_fraction_only(tmp_path: Path) -> None:
    synthetic = {"num_train": 40, "num_val": 4, "num_test": 4, "image_size": 64}
    full = DetectionDataModule(root=str(tmp_path / "syn"), format="synthetic", image_size=64, augment="none", reading={"synthetic": synthetic}, loader={"num_workers": 0, "cache": "none"})
    full.prepare_data()
    full.setup()
    quarter = DetectionDataModule(root=str(tmp_path / "syn"), format="synthetic", image_size=64, augment="none", reading={"synthetic": synthetic}, loader={"num_workers": 0, "cache": "none"}, selection={"train_fraction": 0.25, "fraction_seed": 1})
    quarter.setup()
    train = quarter.split("train").records
    assert len(train) >= 10 and len(train) < 40
    assert {r.image_path for r in train} <= {r.image_path for r in full.split("train").records}
    assert len(quarter.split("val").records) == len(full.split("val").records) == 4
    assert sum(c["images"] for c in quarter.class_counts("train").values()) < \
        sum(c["images"] for c in full.class_counts("train").values())
