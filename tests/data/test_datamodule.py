"""DetectionDataModule and DetectionDataset: batch contract, setup, loaders, argument checks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from yolotl.data import DetectionDataModule, DetectionDataset, ImageRecord, read_image
from yolotl.errors import ConfigError, DatasetError

from .helpers import write_image

SYNTH = {"num_train": 10, "num_val": 4, "num_test": 0, "image_size": 64}


def _module(root: Path, num_workers: int = 0, batch_size: int = 4, **reading) -> DetectionDataModule:
    return DetectionDataModule(str(root), format="synthetic", image_size=64, batch_size=batch_size,
                               reading={"synthetic": SYNTH} | reading, loader={"num_workers": num_workers})


def _check_batch(batch, batch_size: int, size: int) -> None:
    images, targets = batch
    assert images.shape == (batch_size, 3, size, size) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert len(targets) == batch_size
    for target in targets:
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
        assert target["labels"].dtype == torch.int64
        assert target["labels"].shape[0] == target["boxes"].shape[0]
        assert ((target["boxes"] >= 0) & (target["boxes"] <= size)).all()
        assert isinstance(target["image_id"], int) and isinstance(target["scale"], float)
        assert target["orig_size"].dtype == torch.int64 and target["orig_size"].shape == (2,)
        assert target["pad"].dtype == torch.float32 and target["pad"].shape == (2,)
        assert Path(target["path"]).is_file()


def test_synthetic_module_batches_follow_the_contract(tmp_path: Path, caplog) -> None:
    dm = _module(tmp_path / "syn")
    with pytest.raises(DatasetError, match="setup"):
        _ = dm.class_names
    dm.prepare_data()
    with caplog.at_level(logging.INFO, logger="yolotl.data"):
        dm.setup("fit")
        dm.setup("fit")  # idempotent: nothing re-read, nothing logged again
    assert len([r for r in caplog.records if r.name == "yolotl.data"]) == 1
    assert dm.class_names == ["circle", "square", "triangle"] and dm.num_classes == 3
    assert dm.split_sizes == {"train": 10, "val": 4} and not dm.health.findings
    train = dm.train_dataloader()
    assert train.drop_last and len(train) == 2
    _check_batch(next(iter(train)), 4, 64)
    val = dm.val_dataloader()
    assert not val.drop_last and len(val) == 1
    _check_batch(next(iter(val)), 4, 64)


def test_missing_test_split_raises_clearly(tmp_path: Path) -> None:
    dm = _module(tmp_path / "syn")
    dm.setup()  # test split absent: fine for fit
    with pytest.raises(DatasetError, match="No test split"):
        dm.test_dataloader()
    dm = _module(tmp_path / "syn", test_split=None)
    dm.setup()
    with pytest.raises(DatasetError, match="test_split=None"):
        dm.test_dataloader()
    with pytest.raises(DatasetError, match="tset"):  # a test split the user named must exist
        _module(tmp_path / "syn", test_split="tset").setup()


def test_small_train_set_keeps_last_batch_and_worker_loading(tmp_path: Path) -> None:
    dm = _module(tmp_path / "syn", num_workers=1, batch_size=16, synthetic=SYNTH | {"num_test": 2})
    dm.setup()
    assert dm.split_sizes == {"train": 10, "val": 4, "test": 2}
    train = dm.train_dataloader()
    assert not train.drop_last and train.persistent_workers
    _check_batch(next(iter(train)), 10, 64)
    _check_batch(next(iter(dm.test_dataloader())), 2, 64)


def test_other_formats_and_defects(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": "0 0.5 0.5 0 0\n1 0.5 0.5 0.2 0.2"},
                      "val": {"b.jpg": ""}})
    dm = DetectionDataModule(str(root), format="yolo", image_size=64, batch_size=2, augment="none", reading={"class_names": ["c", "b", "a"]}, loader={"num_workers": 0})  # a mosaic of the one image would repeat its box
    dm.setup("fit")
    assert dm.class_names == ["c", "b", "a"] and dm.split_sizes == {"train": 1, "val": 1}
    assert dm.health.totals() == {"dropped_degenerate_box": 1, "background_image": 1}
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (1, 3, 64, 64) and targets[0]["boxes"].shape == (0, 4)
    _, targets = next(iter(dm.train_dataloader()))
    assert targets[0]["labels"].tolist() == [1]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"image_size": 100}, "multiple of 32"), ({"batch_size": 0}, "batch_size"),
     ({"format": "xml"}, "Unknown dataset format 'xml'"), ({"loader": {"num_workers": -1}}, "num_workers"),
     ({"loader": {"workers": 2}}, r"data.loader has no setting \['workers'\]"),
     ({"augment": {"flip": 0.5}}, "unknown key")],
)
def test_bad_arguments_fail_at_construction(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        DetectionDataModule("anywhere", **kwargs)


def test_missing_root_fails_in_setup(tmp_path: Path) -> None:
    dm = DetectionDataModule(str(tmp_path / "nope"), format="voc", loader={"num_workers": 0})
    with pytest.raises(DatasetError, match=r"nope.*data\.root="):
        dm.setup("fit")


def test_read_image_converts_to_rgb_uint8(tmp_path: Path) -> None:
    import cv2

    gray16 = tmp_path / "g16.png"
    cv2.imwrite(str(gray16), np.full((5, 7), 40000, np.uint16))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([np.zeros((5, 7, 3), np.uint8), np.full((5, 7), 9, np.uint8)]))
    bgr = write_image(tmp_path / "c.png", 7, 5)
    for path in (gray16, rgba, bgr):
        image = read_image(path)
        assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(read_image(bgr), cv2.imread(str(bgr))[..., ::-1])


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    record = ImageRecord(bad, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 10, 10)
    with pytest.raises(DatasetError, match=r"broken\.jpg"):
        DetectionDataset([record], None, 64)[0]


def test_stale_annotated_size_rescales_boxes(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.png", 128, 64)
    record = ImageRecord(path, np.array([[0, 0, 64, 32]], np.float32), np.array([0]), 64, 32)
    _, target = DetectionDataset([record], None, 128)[0]
    np.testing.assert_allclose(target["boxes"].numpy(), [[0, 32, 128, 96]], atol=1e-4)


def test_crowd_regions_are_left_out_of_training_and_scored_as_ignored(make_coco) -> None:
    """A crowd region is no training target, but validation targets carry it, flagged, in input pixels."""
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20]},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 30, 40, 40],
                             "iscrowd": 1}]}
    make_coco("train", data)
    root = make_coco("val", data)
    dm = DetectionDataModule(str(root), format="coco", image_size=64, batch_size=1, augment="none", reading={"test_split": None}, loader={"num_workers": 0, "cache": "none"}, checks={"health_cache": None})
    dm.setup("fit")
    _, [train] = next(iter(dm.train_dataloader()))
    assert train["labels"].tolist() == [0] and train["iscrowd"].tolist() == [False]
    _, [val] = next(iter(dm.val_dataloader()))
    assert val["iscrowd"].tolist() == [False, True]
    scale, pad_x, pad_y = val["scale"], *val["pad"].tolist()
    original = (val["boxes"] - torch.tensor([pad_x, pad_y] * 2)) / scale
    np.testing.assert_allclose(original.numpy(), [[10, 10, 40, 30], [50, 30, 90, 70]], atol=1.0)


def test_opencv_runs_serially_once_the_data_layer_is_imported() -> None:
    # OpenCV's thread pool deadlocks DataLoader workers forked while it holds a lock (a run hung so).
    import cv2

    import yolotl.data  # noqa: F401

    assert cv2.getNumThreads() == 1
