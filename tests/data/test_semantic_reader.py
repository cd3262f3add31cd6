"""The semantic segmentation reader: the three layouts, where class names come from, what it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolotl.data.formats import FORMATS, SplitNotFoundError, available_splits, read_split
from yolotl.data.formats.semantic import VOC_CLASS_NAMES, read_classes_csv, read_semantic_split
from yolotl.errors import ConfigError, DatasetError

from .semantic_helpers import CLASS_NAMES, LAYOUTS, SCENES, write_dataset

SPLITS = {"train": SCENES[:3], "valid": SCENES[3:]}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_found_and_read(tmp_path: Path, layout: str) -> None:
    """Records: the image, its header size, the mask path; no objects. 'val' finds 'valid'."""
    root = write_dataset(tmp_path / layout, layout, SPLITS, yaml_names=CLASS_NAMES)
    split = read_semantic_split(root, "train")
    assert len(split) == 3 and split.class_names == CLASS_NAMES and not split.findings
    for record, scene in zip(split.records, SCENES):
        assert (record.width, record.height) == (scene.width, scene.height)
        assert record.semantic_mask is not None and record.semantic_mask.is_file()
        assert record.label_file == record.semantic_mask
        assert record.semantic_mask.name in (f"{record.image_path.stem}.png",
                                             f"{record.image_path.stem}_mask.png")
        assert record.boxes.shape == (0, 4) and record.boxes.dtype == np.float32
        assert record.labels.shape == (0,) and record.labels.dtype == np.int64
        assert record.segments is None and record.num_objects == 0
    val = read_semantic_split(root, "val")
    assert [r.image_path.stem for r in val.records] == ["valid_0"]
    assert sorted(available_splits("semantic", root)) == ["train", "valid"]


def test_read_split_dispatches_to_the_semantic_reader(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "roboflow", SPLITS)
    assert "semantic" in FORMATS
    split = read_split("semantic", root, "valid")
    assert len(split) == 1 and split.records[0].semantic_mask is not None


def test_a_jpeg_roboflow_export_pairs_images_with_their_masks(tmp_path: Path) -> None:
    """Roboflow's names: X.jpg beside X_mask.png; the mask PNGs are not read as images."""
    root = write_dataset(tmp_path / "ds", "roboflow", SPLITS, suffix=".jpg")
    split = read_semantic_split(root, "train")
    assert [r.image_path.name for r in split.records] == ["train_0.jpg", "train_1.jpg", "train_2.jpg"]
    assert [r.semantic_mask.name for r in split.records] == ["train_0_mask.png", "train_1_mask.png",
                                                             "train_2_mask.png"]


# ---- class names ----------------------------------------------------------------------------------


def test_class_names_from_the_roboflow_csv(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "roboflow", SPLITS)
    assert read_semantic_split(root, "train").class_names == CLASS_NAMES


def test_given_class_names_come_first(tmp_path: Path) -> None:
    """The config's names win over the CSV (same count: the values are the classes)."""
    root = write_dataset(tmp_path / "ds", "roboflow", SPLITS)
    renamed = ["bg", "a", "b", "c", "d", "e"]
    assert read_semantic_split(root, "train", renamed).class_names == renamed
    with pytest.raises(DatasetError, match=r"class_names has 3 names.*lists 6 classes"):
        read_semantic_split(root, "train", ["bg", "a", "b"])


def test_class_names_from_data_yaml(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "images_masks", SPLITS, yaml_names=["bg", "x", "y", "z", "u", "v"])
    assert read_semantic_split(root, "train").class_names == ["bg", "x", "y", "z", "u", "v"]


def test_the_voc_layout_defaults_to_voc_names(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "voc", SPLITS)
    assert read_semantic_split(root, "train").class_names == VOC_CLASS_NAMES
    assert len(VOC_CLASS_NAMES) == 21 and VOC_CLASS_NAMES[0] == "background"


def test_no_class_names_anywhere_asks_for_them(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "split_folders", SPLITS)
    with pytest.raises(ConfigError, match=r"data\.reading\.class_names"):
        read_semantic_split(root, "train")
    assert read_semantic_split(root, "train", CLASS_NAMES).class_names == CLASS_NAMES


def test_the_classes_csv_is_read_by_value(tmp_path: Path) -> None:
    """Header, spaces and a BOM are tolerated, rows may come in any order, 255 names the ignore value;
    a gap in the values is an error naming the file."""
    path = tmp_path / "_classes.csv"
    path.write_text("\ufeffPixel Value, Class\n1, Road\n0, background\n2, fire extinguisher\n255, void\n")
    assert read_classes_csv(path) == ["background", "Road", "fire extinguisher"]
    path.write_text("Pixel Value, Class\n0, background\n2, wall\n")
    with pytest.raises(DatasetError, match="_classes.csv"):
        read_classes_csv(path)


# ---- what the reader reports -----------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_image_without_its_mask_is_counted_and_skipped(tmp_path: Path, layout: str) -> None:
    root = write_dataset(tmp_path / layout, layout, SPLITS, yaml_names=CLASS_NAMES)
    mask = read_semantic_split(root, "train").records[1].semantic_mask
    mask.unlink()
    split = read_semantic_split(root, "train")
    assert [r.image_path.stem for r in split.records] == ["train_0", "train_2"]
    assert split.findings.counts() == {"missing_annotation": 1}
    [finding] = split.findings
    assert finding.action == "skipped image" and "train_1" in finding.file
    assert mask.name in finding.detail


def test_a_mask_without_an_image_is_reported(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "roboflow", SPLITS)
    (root / "train" / "train_1.png").unlink()
    split = read_semantic_split(root, "train")
    assert len(split) == 2 and split.findings.counts() == {"orphan_label_file": 1}


def test_a_voc_id_without_an_image_is_reported(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "voc", SPLITS)
    (root / "JPEGImages" / "train_0.png").unlink()
    split = read_semantic_split(root, "train")
    assert len(split) == 2 and split.findings.counts() == {"skipped_missing_image": 1}


def test_a_folder_of_no_known_layout_names_every_layout(tmp_path: Path) -> None:
    (tmp_path / "ds" / "photos").mkdir(parents=True)
    with pytest.raises(DatasetError) as error:
        read_semantic_split(tmp_path / "ds", "train")
    message = str(error.value)
    for expected in ("X_mask.png", "SegmentationClass", "ImageSets/Segmentation", "masks/<split>", "photos"):
        assert expected in message


def test_a_missing_split_lists_those_that_exist(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "voc", SPLITS)
    with pytest.raises(SplitNotFoundError, match=r"'test'.*\['train', 'valid'\]"):
        read_semantic_split(root, "test")
