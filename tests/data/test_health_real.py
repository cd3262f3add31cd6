"""The health check on the shared real datasets finds what their DEFECTS.md audits list (everything
a program can find: wrong class labels and missing objects need a person looking at the image)."""

from __future__ import annotations

import pytest

from yolotl.data import check_dataset

from .helpers import shared_datasets

DATASETS = shared_datasets()
pytestmark = pytest.mark.real_data("bccd", "aquarium")

# DEFECTS.md item 2: the same RBC annotated twice, offset by 2 px (VOC 1-based corners there,
# 0-based continuous corners here: xmin - 1, ymin - 1, xmax, ymax).
BCCD_NEAR_DUPLICATES = {
    "00020": "[143, 365, 251, 473]", "00100": "[151, 145, 268, 257]",
    "00104": "[495, 244, 578, 343]", "00251": "[2, 328, 119, 442]",
    "00284": "[226, 84, 328, 209]", "00331": "[181, 280, 289, 370]",
    "00403": "[338, 158, 466, 262]",
}


def _ids(findings) -> list[str]:
    return sorted(f.file.rsplit("_", 1)[-1].split(".")[0] for f in findings)


def _names(findings) -> list[str]:
    return sorted(f.file.rsplit("/", 1)[-1] for f in findings)


@pytest.fixture(scope="module")
def bccd():
    return check_dataset(DATASETS / "bccd", "voc", class_names=["RBC", "WBC", "Platelets"])


@pytest.fixture(scope="module")
def aquarium():
    return check_dataset(DATASETS / "aquarium", "yolo")


def test_bccd_zero_area_boxes_and_near_duplicates(bccd) -> None:
    assert bccd.splits == ["train", "val", "test"]
    assert _ids(bccd.of_kind("dropped_degenerate_box")) == ["00338", "00343"]
    near = bccd.of_kind("near_duplicate_box")
    assert _ids(near) == sorted(BCCD_NEAR_DUPLICATES)
    for finding in near:
        assert BCCD_NEAR_DUPLICATES[_ids([finding])[0]] in finding.detail
        assert "RBC" in finding.detail and "IoU 0.9" in finding.detail
    # nothing else is wrong: no leakage, no duplicates, no unreadable or odd images
    assert {f.kind for f in bccd.problems()} == {"dropped_degenerate_box", "near_duplicate_box"}
    assert {s: bccd.stats[s].images for s in bccd.splits} == {"train": 205, "val": 87, "test": 72}


def test_bccd_box_area_outliers_are_the_wrong_class_labels(bccd) -> None:
    # DEFECTS.md item 3: WBCs labelled Platelets (00133, 00135), a platelet labelled WBC (00113)
    outliers = bccd.of_kind("box_area_outlier")
    assert _ids(outliers) == ["00113", "00133", "00135"]
    assert all(f.severity == "info" and f.action == "kept" for f in outliers)


def test_aquarium_defects(aquarium) -> None:
    assert aquarium.splits == ["train", "val", "test"]
    zero = aquarium.of_kind("dropped_degenerate_box", "test")
    assert _names(zero) == ["IMG_2423_jpeg_jpg.rf.1c0901882e71d5ebd26f036f4e22da65.txt",
                            "IMG_2570_jpeg_jpg.rf.ed40900b657a5b23d92cb2d296ad2dbc.txt"]
    assert sorted(f.detail.split(":")[0] for f in zero) == ["line 15", "line 17"]
    [tiny] = aquarium.of_kind("tiny_box")
    assert tiny.file.endswith("train/labels/IMG_8580_jpg.rf.9b5f56c09ea8a7933c2c575f7e9a3f14.txt")
    assert "is 1x1 px" in tiny.detail and tiny.action == "dropped box"
    [empty] = aquarium.of_kind("background_image")
    assert empty.file.endswith("IMG_3133_jpeg_jpg.rf.f439b9d382fd153b96f0a88cdf169172.txt")
    resolved = sorted(f.detail for f in aquarium.of_kind("resolved_path"))
    assert resolved[0].startswith("split 'test' has no entry in data.yaml")
    assert "'../train/images' does not resolve" in resolved[1]
    assert "'../valid/images' does not resolve" in resolved[2]
    assert {f.kind for f in aquarium.problems()} == {"dropped_degenerate_box", "tiny_box",
                                                     "resolved_path"}
    boxes = {s: aquarium.stats[s].boxes for s in aquarium.splits}
    assert boxes == {"train": 3324 - 1, "val": 909, "test": 584 - 2}  # after the fix policy
