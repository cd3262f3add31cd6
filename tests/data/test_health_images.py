"""Image files: unusable ones are skipped, odd pixel formats and EXIF rotation are read as 8-bit
RGB in the rotated frame (reported as information), identical images in a split or across splits
(leakage) are found by the hash of their decoded pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from yolotl.data import read_image
from yolotl.data.health import inspect_image, inspect_images
from yolotl.errors import DatasetError

from .health_helpers import BOX, check_case, datamodule, train_names
from .helpers import voc_xml, write_image


def _yolo(make_yolo, name: str = "a.jpg", label: str = BOX, test: bool = False):
    splits = {"train": {"good.jpg": BOX, name: label}, "val": {"v.jpg": BOX}}
    return make_yolo(splits | ({"test": {"t.jpg": BOX}} if test else {}))


def _pixels(width: int = 100, height: int = 80, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ---- unusable files ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [("a.jpg", b"", "empty_image_file"),
     ("a.jpg", b"this is not an image", "unreadable_image"),
     ("a.jpg", "half", "truncated_image"),
     ("a.png", "half", "truncated_image")],
)
def test_unusable_image_is_skipped(make_yolo, tmp_path, name: str, content, kind: str) -> None:
    root = _yolo(make_yolo, name)
    path = root / "train" / "images" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "half" else content)
    dm = check_case(root, "yolo", kind, name, tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_zero_byte_image_found_by_decoding_when_the_xml_states_the_size(make_voc, tmp_path) -> None:
    cat = [("cat", (10, 10, 50, 50), 0)]
    root = make_voc({"train": {"good": voc_xml("good.jpg", cat), "q": voc_xml("q.jpg", cat)},
                     "val": {"v": voc_xml("v.jpg", cat)}})
    (root / "JPEGImages" / "q.jpg").write_bytes(b"")  # the reader trusts <size>: only decoding sees it
    dm = check_case(root, "voc", "empty_image_file", "q.jpg", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"]


def test_every_train_image_unusable_is_a_clear_error(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}, "val": {"v.jpg": BOX}})
    path = root / "train" / "images" / "a.jpg"
    path.write_bytes(path.read_bytes()[:1000])  # the header reads; decoding fails
    dm = datamodule(root, "yolo", "fix")
    for _ in range(2):  # a second setup() checks again rather than passing silently
        with pytest.raises(DatasetError, match=r"'train'.*no usable image left.*truncated_image a\.jpg"):
            dm.setup()


# ---- pixel formats and EXIF -------------------------------------------------------------

def _save(path, kind: str) -> None:
    pixels = _pixels()
    if kind == "high_bit_depth_image":
        assert cv2.imwrite(str(path), pixels[..., 0].astype(np.uint16) * 257)
        return
    if kind == "exif_rotated_image":
        image = Image.fromarray(pixels)
        exif = image.getexif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
        image.save(path, exif=exif)
        return
    mode = {"grayscale_image": "L", "alpha_image": "RGBA", "palette_image": "P"}[kind]
    Image.fromarray(pixels).convert(mode).save(path)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.png", "grayscale_image"), ("a.png", "alpha_image"), ("a.png", "palette_image"),
     ("a.png", "high_bit_depth_image"), ("a.jpg", "exif_rotated_image")],
)
def test_pixel_formats_are_read_as_8_bit_rgb(make_yolo, tmp_path, name: str, kind: str) -> None:
    root = _yolo(make_yolo, name)
    path = root / "train" / "images" / name
    _save(path, kind)
    dm = check_case(root, "yolo", kind, name, tmp_path / "run")
    record = next(r for r in dm.split("train").records if r.image_path.name == name)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (record.height, record.width, 3)
    if kind == "exif_rotated_image":  # the boxes' frame is the rotated (shown) image
        assert (record.width, record.height) == (80, 100)
        np.testing.assert_array_equal(image, np.rot90(np.asarray(Image.open(path)), k=-1))


def test_16_bit_rgb_png_is_found_from_the_stored_layout(tmp_path) -> None:
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), _pixels().astype(np.uint16) * 257)
    info = inspect_image(path)
    assert info.mode == "RGB" and ";16" in info.raw_mode  # PIL opens it as 8-bit RGB
    assert read_image(path).dtype == np.uint8


# ---- identical images -------------------------------------------------------------------

def test_duplicate_image_in_a_split_keeps_the_first(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "b.jpg")
    images = root / "train" / "images"
    (images / "c.jpg").write_bytes((images / "b.jpg").read_bytes())
    (root / "train" / "labels" / "c.txt").write_text(BOX)
    dm = check_case(root, "yolo", "duplicate_image", "c.jpg", tmp_path / "run")
    assert train_names(dm) == ["b.jpg", "good.jpg"]


@pytest.mark.parametrize("stages", [("fit", "test"), (None,)])
def test_val_doubling_as_test_is_checked_and_fixed_once(make_yolo, stages) -> None:
    root = make_yolo({"train": {"good.jpg": BOX}, "val": {"b.jpg": BOX, "v.jpg": BOX}})
    images = root / "val" / "images"
    (images / "c.jpg").write_bytes((images / "b.jpg").read_bytes())
    (root / "val" / "labels" / "c.txt").write_text(BOX)
    dm = datamodule(root, "yolo", "fix", test_split="val")  # test_dataloader's own advice
    for stage in stages:
        dm.setup(stage)
    assert train_names(dm, "val") == train_names(dm, "test") == ["b.jpg", "v.jpg"]
    assert [r.num_objects for r in dm.split("test").records] == [1, 1]
    assert len(dm.health.of_kind("duplicate_image")) == 1 == dm.health.totals()["duplicate_image"]


def test_train_image_identical_to_a_val_image_in_another_container_is_leakage(make_yolo, tmp_path) -> None:
    root = _yolo(make_yolo, "a.png")
    pixels = _pixels(seed=11)
    Image.fromarray(pixels).save(root / "train" / "images" / "a.png")
    Image.fromarray(pixels).save(root / "val" / "images" / "w.bmp")  # same pixels, other format
    (root / "val" / "labels" / "w.txt").write_text(BOX)
    dm = check_case(root, "yolo", "leaked_image", "a.png", tmp_path / "run")
    assert train_names(dm) == ["good.jpg"] and train_names(dm, "val") == ["v.jpg", "w.bmp"]
    assert "w.bmp in val" in dm.health.of_kind("leaked_image")[0].detail


def test_train_copy_of_a_test_image_read_later_is_dropped_then(make_yolo) -> None:
    root = _yolo(make_yolo, test=True)
    (root / "train" / "images" / "a.jpg").write_bytes((root / "test" / "images" / "t.jpg").read_bytes())
    dm = datamodule(root, "yolo", "fix")
    dm.setup("fit")
    assert train_names(dm) == ["a.jpg", "good.jpg"]
    dm.setup("test")  # now the copy is known: it leaves train, the test image stays
    assert train_names(dm) == ["good.jpg"] and train_names(dm, "test") == ["t.jpg"]
    assert [f.split for f in dm.health.of_kind("leaked_image")] == ["train"]
    assert dm.health.totals()["leaked_image"] == 1


def test_digest_ignores_the_container_and_decoding_runs_in_threads(tmp_path) -> None:
    pixels = _pixels(seed=3)
    for suffix in ("png", "bmp", "tiff"):
        Image.fromarray(pixels).save(tmp_path / f"x.{suffix}")
    write_image(tmp_path / "y.png", 100, 80, seed=4)
    infos = inspect_images(sorted(tmp_path.iterdir()), threads=2)
    digests = {path.name: info.digest for path, info in infos.items()}
    assert digests["x.png"] == digests["x.bmp"] == digests["x.tiff"] != digests["y.png"]

