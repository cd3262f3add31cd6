"""VOC layouts in the wild: renamed folders found automatically (and logged), split folders,
Roboflow's images-beside-XMLs export, a dataset without splits, and the folder options."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from yolotl.data import DetectionDataModule, check_dataset, read_split, read_voc_split
from yolotl.data.formats import available_splits
from yolotl.errors import ConfigError, DatasetError

from .helpers import voc_xml, write_image


def _write(folder_xml: Path, folder_img: Path, ids: list[str], name: str = "cat") -> None:
    for i, image_id in enumerate(ids):
        folder_xml.mkdir(parents=True, exist_ok=True)
        (folder_xml / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", [(name, (1, 1, 9, 9), 0)]))
        write_image(folder_img / f"{image_id}.jpg", 100, 80, seed=hash(image_id) % 1000 + i)


def _image_sets(root: Path, splits: dict[str, list[str]]) -> None:
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def test_images_and_annotations_folders_are_found_and_logged(tmp_path, caplog) -> None:
    root = tmp_path / "ds"
    _write(root / "annotations", root / "images", ["a", "b"])
    _image_sets(root, {"train": ["a"], "val": ["b"]})
    with caplog.at_level(logging.INFO, logger="yolotl.data"):
        split = read_voc_split(root, "train")
    assert [r.image_path for r in split.records] == [root / "images" / "a.jpg"]
    assert split.class_names == ["cat"]
    [line] = [r.getMessage() for r in caplog.records if "VOC layout" in r.getMessage()]
    assert f"images in {root / 'images'}, annotations in {root / 'annotations'}" in line
    assert len(read_voc_split(root, "val")) == 1


def test_folder_names_match_in_any_case_and_only_where_files_are(tmp_path) -> None:
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)  # YOLO txt leftovers: not annotations
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "Images").mkdir()  # empty: not the image folder
    _write(root / "XML", root / "IMGS", ["a"])
    _image_sets(root, {"train": ["a"]})
    assert read_voc_split(root, "train").records[0].image_path == root / "IMGS" / "a.jpg"


def test_split_folders_inside_the_image_and_annotation_folders(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "annotations" / "train", root / "images" / "train", ["a", "b"])
    _write(root / "annotations" / "valid", root / "images" / "valid", ["c"], name="dog")
    assert available_splits("voc", root) == ["train", "valid"]
    val = read_voc_split(root, "val")  # an alias of the folder's name
    assert [r.image_path for r in val.records] == [root / "images" / "valid" / "c.jpg"]
    assert val.class_names == ["cat", "dog"]  # collected over every split folder
    with pytest.raises(DatasetError, match=r"'test' not found.*\['train', 'valid'\]"):
        read_voc_split(root, "test")


def test_roboflow_voc_export_images_beside_their_xmls(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "train", root / "train", ["a", "b"])
    _write(root / "valid", root / "valid", ["c"])
    dm = DetectionDataModule(str(root), format="voc", image_size=64, batch_size=2, reading={"test_split": None}, loader={"num_workers": 0})
    dm.setup("fit")
    assert dm.split_sizes == {"train": 2, "val": 1} and dm.class_names == ["cat"]


def test_without_splits_the_error_names_the_folders_and_all_reads_everything(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "annotations", root / "images", ["a", "b", "c"])
    with pytest.raises(DatasetError) as err:
        read_voc_split(root, "train")
    text = str(err.value)
    assert str(root / "annotations") in text and str(root / "images") in text
    assert "ImageSets/Main" in text and "data.reading.train_split=all" in text
    assert "No objects found" not in text
    assert available_splits("voc", root) == ["all"]
    assert len(read_voc_split(root, "all")) == 3
    report = check_dataset(root, "voc")
    assert report.splits == ["all"] and report.stats["all"].images == 3


def test_the_folder_options_choose_unusual_names(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "boxes", root / "pictures", ["a", "b"])
    _image_sets(root, {"train": ["a"], "val": ["b"]})
    with pytest.raises(DatasetError, match=r"annotation_dir"):  # nothing common to find
        read_voc_split(root, "train")
    split = read_split("voc", root, "train", image_dir="pictures", annotation_dir="boxes")
    assert split.records[0].image_path == root / "pictures" / "a.jpg"
    dm = DetectionDataModule(str(root), format="voc", image_size=64, batch_size=2, reading={"test_split": None, "image_dir": "pictures", "annotation_dir": str(root / "boxes")}, loader={"num_workers": 0})
    dm.setup("fit")
    assert dm.split_sizes == {"train": 1, "val": 1}
    report = check_dataset(root, "voc", image_dir="pictures", annotation_dir="boxes")
    assert report.splits == ["train", "val"]


def test_a_wrong_folder_option_lists_the_folders_seen(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "Annotations", root / "JPEGImages", ["a"])
    _image_sets(root, {"train": ["a"]})
    with pytest.raises(DatasetError, match=r"data\.image_dir='photos'.*\['Annotations', 'ImageSets', "
                                           r"'JPEGImages'\]"):
        read_split("voc", root, "train", image_dir="photos")
    with pytest.raises(ConfigError, match="format=voc only"):
        read_split("yolo", root, "train", image_dir="photos")
    with pytest.raises(ConfigError, match="format=voc only"):
        DetectionDataModule(str(root), format="coco", reading={"annotation_dir": "x"})


def test_unlisted_images_are_looked_for_in_the_chosen_image_folder(tmp_path) -> None:
    root = tmp_path / "ds"
    _write(root / "annotations", root / "images", ["a", "b"])
    _image_sets(root, {"train": ["a"], "val": ["b"]})
    write_image(root / "images" / "stray.jpg", 100, 80, seed=99)
    report = check_dataset(root, "voc")
    [finding] = report.of_kind("unlisted_image")
    assert finding.file.endswith("images/stray.jpg") and "annotations/*.xml" in finding.detail


def test_check_data_passes_the_folder_options_on(tmp_path) -> None:
    from hydra import compose, initialize_config_dir

    from yolotl.api import config_dir
    from yolotl.cli.check_data import check_from_config

    root = tmp_path / "ds"
    _write(root / "boxes", root / "pictures", ["a", "b"])
    _image_sets(root, {"train": ["a"], "val": ["b"]})
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="check_data", overrides=[
            "data=voc", f"data.root={root}", "data.reading.image_dir=pictures", "data.reading.annotation_dir=boxes",
            "data.reading.class_names=[cat]"])
    report = check_from_config(cfg)
    assert report.splits == ["train", "val"]
    assert report.stats["train"].images == 1
