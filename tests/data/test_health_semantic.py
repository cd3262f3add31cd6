"""Health checks of semantic segmentation data: class maps of another size, values of no class, blank
maps, classes absent from a split and video frames on both sides of a split; each seen in the report,
under ``policy="strict"`` and ``policy="fix"``, through ``yolotl-check-data`` and on indoor_semseg."""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from yolotl.api import config_dir
from yolotl.cli.check_data import run as run_cli
from yolotl.data import DetectionDataModule, check_dataset
from yolotl.data.health import semantic as semantic_health
from yolotl.data.health.sequences import sequence_frame
from yolotl.data.health.store import ImageInfoStore
from yolotl.data.splits import CheckedSplits
from yolotl.errors import DatasetError

from .health_helpers import check_case
from .helpers import shared_datasets, write_image

SIZE = 64
NAMES = ["background", "cat", "dog"]
Mask = np.ndarray


def good_mask(seed: int = 0) -> Mask:
    """Background with a cat block and a dog block (values 0, 1, 2)."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[4 + seed % 8:30, 4:30] = 1
    mask[34:60, 34:60 - seed % 8] = 2
    return mask


def cat_only(seed: int = 0) -> Mask:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:40 + seed % 8, 8:40] = 1
    return mask


@pytest.fixture
def make_semantic(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_semantic({"train": {"a.jpg": mask, ...}, "valid": {...}})`` -> root, in the
    Roboflow PNG-mask layout (``<split>/X.jpg``, ``<split>/X_mask.png``, ``<split>/_classes.csv``);
    images are 64x64 jpg, masks are written as given (8-bit L)."""

    def build(splits: dict[str, dict[str, Mask]], names: list[str] = NAMES) -> Path:
        root = tmp_path / "semantic_ds"
        for split, files in splits.items():
            folder = root / split
            for name, mask in files.items():
                write_image(folder / name, SIZE, SIZE, seed=zlib.crc32(f"{split}/{name}".encode()))
                Image.fromarray(mask).save(folder / f"{Path(name).stem}_mask.png")
            rows = ["Pixel Value, Class", *[f"{v}, {n}" for v, n in enumerate(names)]]
            (folder / "_classes.csv").write_text("\n".join(rows) + "\n")
        return root

    return build


def clean(split: str, count: int = 3, mask: Callable[[int], Mask] = good_mask) -> dict[str, Mask]:
    """``count`` good images named without frame numbers (no sequence), e.g. ``train_a.jpg``."""
    return {f"{split}_{'abcdefgh'[i]}.jpg": mask(i) for i in range(count)}


def semantic_dm(root: Path, policy: str, **checks) -> DetectionDataModule:
    return DetectionDataModule(str(root), format="semantic", image_size=SIZE, batch_size=2, masks="semantic",
                               loader={"num_workers": 0}, checks={"policy": policy, **checks})


def check_three_ways(root: Path, kind: str, file_part: str, run_dir: Path, count: int = 1,
                     skipped: str | None = None) -> DetectionDataModule:
    """``count`` findings of ``kind`` naming ``file_part``: in ``check_dataset`` (table and counts);
    a DatasetError naming kind and file under ``policy="strict"`` (none for info kinds); under
    ``policy="fix"`` counted, in data_health.json, one skipped.csv row each if fix changes data, and
    the image ``skipped`` (a file name) gone from its split. Returns the fix DataModule."""
    fixed = check_case(root, "semantic", kind, file_part, run_dir, count, masks="semantic")
    names = {role: [r.image_path.name for r in fixed.split(role).records] for role in ("train", "val")}
    if skipped is not None:
        assert all(skipped not in held for held in names.values())
    return fixed


# ---- 1. a class map of another size ---------------------------------------------------------------

def test_a_mask_of_another_size_is_skipped_never_resized(make_semantic, tmp_path) -> None:
    root = make_semantic({"train": clean("train") | {"big.jpg": np.zeros((48, 96), np.uint8)},
                          "valid": clean("valid")})
    fixed = check_three_ways(root, "mask_size_mismatch", "big_mask.png", tmp_path / "run", skipped="big.jpg")
    finding = fixed.health.of_kind("mask_size_mismatch")[0]
    assert "mask 96x48 but its image is 64x64" in finding.detail and "never resized" in finding.detail
    assert "'background'" in finding.detail  # a blank placeholder, said so
    assert finding.severity == "error" and finding.action == "skipped image"
    assert fixed.health.stats["train"].images == 3 and fixed.health.stats["train"].masks == 3


# ---- 2. values of no class ------------------------------------------------------------------------

def test_values_of_no_class_skip_the_image_and_255_is_ignore(make_semantic, tmp_path) -> None:
    odd = good_mask()
    odd[0:4, 0:4] = 7  # 3 classes: 7 is none of them
    ignored = good_mask(1)
    ignored[0:2, :] = 255  # the ignore value: fine
    root = make_semantic({"train": clean("train") | {"odd.jpg": odd, "edge.jpg": ignored},
                          "valid": clean("valid")})
    fixed = check_three_ways(root, "unknown_mask_value", "odd_mask.png", tmp_path / "run", skipped="odd.jpg")
    detail = fixed.health.of_kind("unknown_mask_value")[0].detail
    assert "values 7 (16 px)" in detail and "not the ignore value 255" in detail and "not repaired" in detail
    assert "edge.jpg" in [r.image_path.name for r in fixed.split("train").records]


# ---- 3. blank class maps --------------------------------------------------------------------------

def test_an_all_ignore_mask_is_skipped(make_semantic, tmp_path) -> None:
    root = make_semantic({"train": clean("train") | {"void.jpg": np.full((SIZE, SIZE), 255, np.uint8)},
                          "valid": clean("valid")})
    fixed = check_three_ways(root, "ignore_only_mask", "void_mask.png", tmp_path / "run", skipped="void.jpg")
    assert fixed.health.of_kind("ignore_only_mask")[0].severity == "warning"


def test_an_all_background_mask_is_kept_and_reported(make_semantic, tmp_path) -> None:
    edge = np.zeros((SIZE, SIZE), np.uint8)
    edge[:, :3] = 255  # background and ignore only: still no object
    root = make_semantic({"train": clean("train") | {"empty.jpg": np.zeros((SIZE, SIZE), np.uint8),
                                                     "edge.jpg": edge},
                          "valid": clean("valid")})
    fixed = check_three_ways(root, "background_only_mask", "_mask.png", tmp_path / "run", count=2)
    assert {"empty.jpg", "edge.jpg"} <= {r.image_path.name for r in fixed.split("train").records}
    assert fixed.health.stats["train"].background_images == 2
    assert "kept (it can be a true negative)" in fixed.health.of_kind("background_only_mask")[0].detail


def test_one_class_everywhere_is_no_blank_mask_without_a_background_class(make_semantic) -> None:
    """Class 0 named 'road' is a class, not background: an all-0 map is a close-up, not a blank."""
    root = make_semantic({"train": clean("train") | {"road.jpg": np.zeros((SIZE, SIZE), np.uint8)},
                          "valid": clean("valid")}, names=["road", "cat", "dog"])
    assert check_dataset(root, "semantic").findings == []


# ---- 4. a class absent from a split ---------------------------------------------------------------

def test_a_class_absent_from_a_split_is_a_note_per_split_and_class(make_semantic, tmp_path) -> None:
    """dog in train only: a note in valid (info, kept); no split has class 'bird' at all."""
    root = make_semantic({"train": clean("train"), "valid": clean("valid", mask=cat_only)},
                         names=[*NAMES, "bird"])
    fixed = check_three_ways(root, "class_absent_from_split", str(root), tmp_path / "run", count=2)
    found = {(f.split, f.detail.split("'")[1]) for f in fixed.health.of_kind("class_absent_from_split")}
    assert found == {("val", "dog"), ("train", "bird")}  # the DataModule names the split by its role
    valid = fixed.health.of_kind("class_absent_from_split", "val")[0]
    assert "in 3 train images" in valid.detail and "in no val image" in valid.detail
    assert len(fixed.split("val")) == 3  # reported, never a skip


def test_a_class_missing_from_train_is_a_warning_with_pixel_counts(make_semantic, tmp_path) -> None:
    root = make_semantic({"train": clean("train", mask=cat_only), "valid": clean("valid")})
    report = check_dataset(root, "semantic")
    missing = report.of_kind("class_missing_in_train")
    assert [(f.split, f.severity) for f in missing] == [("valid", "warning")]
    assert "class 'dog' has" in missing[0].detail
    assert "in 3 valid images but none in train" in missing[0].detail
    assert report.stats["valid"].pixels["dog"] == sum(int((good_mask(i) == 2).sum()) for i in range(3))
    assert report.stats["valid"].images_per_class == {"background": 3, "cat": 3, "dog": 3}
    assert "pixels (images) per class" in report.table()


# ---- 5. frames of one sequence on both sides of a split -------------------------------------------

def _frames(numbers, mask=good_mask) -> dict[str, Mask]:
    return {f"frame_{n:04d}_jpg.rf.{n:032x}.jpg": mask(n) for n in numbers}


def test_sequence_names_are_parsed_from_file_names() -> None:
    assert sequence_frame("x/frame_0123_jpg.rf.0123456789abcdef0123456789abcdef.jpg") == ("frame", 123, 4)
    assert sequence_frame("BloodImage_00001.jpg") == ("BloodImage", 1, 5)
    assert sequence_frame("cam2-frame10.png") == ("cam2-frame", 10, 2)
    assert sequence_frame("2007_000032.jpg") is None  # a year and a number: separate photos
    assert sequence_frame("000123.png") is None and sequence_frame("dog.jpg") is None


def test_interleaved_frames_of_one_sequence_are_reported_never_skipped(make_semantic, tmp_path) -> None:
    root = make_semantic({"train": _frames([0, 2, 4, 6, 8]), "valid": _frames([1, 5])})
    fixed = check_three_ways(root, "sequence_leakage", str(root), tmp_path / "run")
    detail = fixed.health.of_kind("sequence_leakage", "val")[0].detail
    assert detail.startswith("sequence 'frame': 2 val frames lie between train frames in 2 separate runs")
    assert "(e.g. val 0001 between train 0000 and 0002)" in detail
    assert "train has 5 frames (0000-0008), val 2 frames (0001-0005)" in detail
    assert len(fixed.split("train")) == 5 and len(fixed.split("val")) == 2  # nothing skipped


def test_a_shared_frame_number_is_leakage_and_counted(make_semantic) -> None:
    root = make_semantic({"train": _frames([0, 1, 2, 3]), "valid": _frames([3, 4, 5])})
    detail = check_dataset(root, "semantic").of_kind("sequence_leakage")[0].detail
    assert "1 frame number is in both splits (0003)" in detail


def test_contiguous_blocks_of_a_sequence_are_no_leakage(make_semantic) -> None:
    """A block after train, and one block inside it (its two edges touch train), are proper splits."""
    root = make_semantic({"train": _frames([0, 1, 2, 3, 8, 9]), "valid": _frames([4, 5]),
                          "test": _frames([10, 11])})
    assert check_dataset(root, "semantic").of_kind("sequence_leakage") == []


def test_detection_data_is_checked_for_sequences_only_when_asked(make_yolo) -> None:
    """Numbered photos (BCCD's BloodImage_00001) are no video: off for detection unless asked."""
    box = "0 0.5 0.5 0.2 0.2"
    root = make_yolo({"train": {f"BloodImage_{n:05d}.jpg": box for n in (0, 2, 4, 6)},
                      "val": {f"BloodImage_{n:05d}.jpg": box for n in (1, 5)}})
    assert check_dataset(root, "yolo").of_kind("sequence_leakage") == []
    asked = check_dataset(root, "yolo", sequence_leakage=True).of_kind("sequence_leakage")
    assert [f.split for f in asked] == ["val"] and "sequence 'BloodImage'" in asked[0].detail


# ---- decoding once: the health store --------------------------------------------------------------

def test_class_maps_are_decoded_once_per_dataset(make_semantic, tmp_path, monkeypatch) -> None:
    root = make_semantic({"train": clean("train") | {"big.jpg": np.zeros((32, 32), np.uint8)},
                          "valid": clean("valid")})
    decoded: list[Path] = []
    real = semantic_health.inspect_mask
    monkeypatch.setattr(semantic_health, "inspect_mask", lambda path: decoded.append(path) or real(path))
    splits = {"train": "train", "val": "valid", "test": None}
    reports = []
    for _ in range(2):
        checked = CheckedSplits("semantic", root, splits, store=ImageInfoStore(tmp_path / "store", root))
        checked.read(["train", "val"])
        reports.append(checked.report)
    assert len(decoded) == 7  # the second run read every class map from the store
    assert reports[0].totals() == reports[1].totals() == {"mask_size_mismatch": 1}
    assert reports[1].stats["train"].pixels == reports[0].stats["train"].pixels
    assert checked.masks[root / "train" / "big_mask.png"].width == 32


# ---- the command ----------------------------------------------------------------------------------

def test_check_data_command_reports_the_semantic_findings(make_semantic, tmp_path, capsys) -> None:
    void = np.full((SIZE, SIZE), 255, np.uint8)
    train = _frames([0, 2, 4, 6], mask=cat_only) | {"big.jpg": np.zeros((8, 8), np.uint8), "void.jpg": void}
    root = make_semantic({"train": train, "valid": _frames([1, 3, 5])})
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="check_data",
                      overrides=["data=semantic", f"data.root={root}", f"out={tmp_path}/report"])
    run_cli(cfg)
    out = capsys.readouterr().out
    for kind in ("mask_size_mismatch", "ignore_only_mask", "sequence_leakage", "class_missing_in_train",
                 "pixels (images) per class"):
        assert kind in out
    saved = json.loads((tmp_path / "report" / "data_health.json").read_text())
    assert saved["counts"] == {"train": {"mask_size_mismatch": 1, "ignore_only_mask": 1},
                               "val": {"sequence_leakage": 1, "class_missing_in_train": 1}}  # val_split: val
    assert saved["stats"]["train"]["images"] == 4 and saved["stats"]["train"]["masks"] == 4
    assert saved["kinds"]["mask_size_mismatch"] == {"severity": "error", "action": "skipped image"}


# ---- the real dataset -----------------------------------------------------------------------------

@pytest.mark.real_data("indoor_semseg")
def test_indoor_semseg_defects_are_found() -> None:
    """DEFECTS.md: 16 blank 1920x1080 masks of 320x320 images, interleaved frames of one video,
    'table' in train only."""
    report = check_dataset(shared_datasets() / "indoor_semseg", "semantic")
    wrong = report.of_kind("mask_size_mismatch")
    assert len(wrong) == 16 and all("mask 1920x1080 but its image is 320x320" in f.detail for f in wrong)
    frames = sorted(Path(f.file).name[6:10] for f in wrong)
    assert sorted(set(frames)) == ["0108", "0113", "0114", "0115", "0121", "0282"]
    assert [f.split for f in wrong].count("valid") == 1
    leaks = {f.split: f.detail for f in report.of_kind("sequence_leakage")}
    assert "25 valid frames lie between train frames" in leaks["valid"]
    absent = {(f.split, f.detail.split("'")[1]) for f in report.of_kind("class_absent_from_split")}
    assert absent == {("valid", "table"), ("test", "table")}
    assert report.totals() == {"mask_size_mismatch": 16, "sequence_leakage": 3, "class_absent_from_split": 2}
    assert {s: report.stats[s].images for s in report.splits} == {"train": 801, "valid": 24, "test": 25}
