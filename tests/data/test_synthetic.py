"""The synthetic dataset: deterministic bytes, regeneration rules, readable as YOLO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yolotl.data import SYNTHETIC_CLASS_NAMES, make_synthetic_dataset, read_yolo_split
from yolotl.errors import ConfigError, DatasetError

SMALL = {"num_train": 6, "num_val": 3, "num_test": 2, "image_size": 96}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_arguments_give_same_bytes(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", **SMALL)
    b = make_synthetic_dataset(tmp_path / "b", **SMALL)
    files = _files(a)
    assert files == _files(b)
    assert sum(name.endswith(".png") for name in files) == 11
    assert sum(name.endswith(".txt") for name in files) == 11


def test_reuse_and_regeneration(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "s", **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    make_synthetic_dataset(root, **SMALL)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamps  # not rewritten
    before = _files(root)
    make_synthetic_dataset(root, **{**SMALL, "seed": 1, "num_test": 0})
    after = _files(root)
    assert after != before and not (root / "test").exists()
    marker = json.loads((root / ".yolotl-synthetic.json").read_text())
    assert marker["complete"] and marker["params"]["seed"] == 1


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "s", **SMALL)
    next((root / "val" / "images").glob("*.png")).unlink()
    make_synthetic_dataset(root, **SMALL)
    assert len(list((root / "val" / "images").glob("*.png"))) == 3


def test_reads_as_yolo_with_valid_boxes(tmp_path: Path) -> None:
    root = make_synthetic_dataset(tmp_path / "s", **SMALL)
    for split, count in (("train", 6), ("val", 3), ("test", 2)):
        data = read_yolo_split(root, split)
        assert len(data) == count and data.class_names == list(SYNTHETIC_CLASS_NAMES)
        assert not data.findings, data.findings.summary()
        for record in data.records:
            assert 1 <= len(record.labels) <= 6 and (record.width, record.height) == (96, 96)
            sides = record.boxes[:, 2:] - record.boxes[:, :2]
            assert (record.boxes >= 0).all() and (record.boxes <= 96).all()
            assert (sides >= 20 * 96 / 256 * 0.9).all()
            assert set(record.labels.tolist()) <= {0, 1, 2}


def test_pixels_are_textured_and_objects_visible(tmp_path: Path) -> None:
    import cv2

    root = make_synthetic_dataset(tmp_path / "s", **SMALL)
    record = read_yolo_split(root, "train").records[0]
    image = cv2.imread(str(record.image_path)).astype(np.float32)
    assert image.std() > 5  # not a flat colour
    x1, y1, x2, y2 = record.boxes[0].astype(int)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    assert np.abs(image[cy, cx] - image[0, 0]).sum() > 30 or len(record.labels) > 1


def test_refuses_foreign_folder_and_bad_args(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"mine is not empty"):
        make_synthetic_dataset(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError):
        make_synthetic_dataset(tmp_path / "x", num_train=0)
    with pytest.raises(ConfigError):
        make_synthetic_dataset(tmp_path / "x", image_size=16)


def test_parallel_jobs_write_the_dataset_once_and_all_find_it_complete(tmp_path):
    """Two processes at once (parallel sweep jobs, DDP ranks): before the lock one could clear the folder
    while the other was writing it ("data.yaml missing names")."""
    import subprocess
    import sys

    code = ("import sys; from yolotl.data.synthetic import make_synthetic_dataset; "
            "make_synthetic_dataset(sys.argv[1], num_train=40, num_val=4, num_test=4, image_size=64)")
    jobs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "synthetic")], stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for job in jobs:
        assert job.wait(timeout=120) == 0, job.stderr.read()[-2000:]
    assert len(list((tmp_path / "synthetic" / "train" / "labels").glob("*.txt"))) == 40
    assert "names" in (tmp_path / "synthetic" / "data.yaml").read_text()
