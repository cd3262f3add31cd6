"""Dataset paths: a missing root says where it was looked for and how to point at the datasets;
the shared tree_counting dataset (Windows paths in data.yaml, a valid/ folder) loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolotl.data import DetectionDataModule, read_split
from yolotl.errors import DatasetError

from .helpers import shared_datasets


@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco"])
def test_a_missing_relative_root_names_the_folder_it_was_resolved_from(fmt, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    given = "../shared/datasets/bccd-nowhere"
    with pytest.raises(DatasetError) as err:
        read_split(fmt, given, "train")
    text = str(err.value)
    assert f"'{given}'" in text  # as given
    assert str((tmp_path / given).absolute()) in text  # what it resolved to
    assert f"current folder {Path.cwd()}" in text
    assert "YOLOTL_DATASETS=<folder holding the datasets>" in text
    assert "data.root=<absolute path" in text


def test_the_datamodule_says_the_same_and_an_absolute_root_skips_the_cwd(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dm = DetectionDataModule("datasets/bccd", format="voc", loader={"num_workers": 0})
    with pytest.raises(DatasetError, match=r"'datasets/bccd' does not exist.*current folder"):
        dm.setup("fit")
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError) as err:
        read_split("voc", tmp_path / "file", "train")
    assert "is not a folder" in str(err.value) and "current folder" not in str(err.value)


@pytest.mark.real_data("tree_counting/data.yaml")
def test_tree_counting_loads_with_its_windows_paths() -> None:
    root = shared_datasets() / "tree_counting"
    sizes = {name: len(read_split("yolo", root, name)) for name in ("train", "val", "test")}
    assert all(sizes.values()), sizes
    [row] = [r for r in read_split("yolo", root, "val").findings.to_rows() if r["kind"] == "resolved_path"]
    assert os.fspath(root / "valid" / "images") in row["detail"]
