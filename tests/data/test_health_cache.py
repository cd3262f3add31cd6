"""The health check runs once per dataset: its decode results are cached on disk (keyed by path,
size and modification time), ``prepare_data`` fills the cache for the other processes, and a
checked image is not decoded a second time for the RAM image cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolotl.data import DetectionDataModule
from yolotl.data import cache as image_cache
from yolotl.data.cache import ImageCache, decode_resized
from yolotl.data.health import images as health_images
from yolotl.data.health.images import inspect_images
from yolotl.data.health.store import ImageInfoStore

from .health_helpers import BOX
from .helpers import write_image

SYNTH = {"num_train": 8, "num_val": 4, "num_test": 0, "image_size": 64}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Path]]:
    """Every health-check decode (``inspect_image``) and training decode (``read_image``), by path."""
    seen: dict[str, list[Path]] = {"check": [], "train": []}
    inspect, read = health_images.inspect_image, image_cache.read_image

    def counted_inspect(path, pixels=None):
        seen["check"].append(Path(path))
        return inspect(path, pixels)

    def counted_read(path):
        seen["train"].append(Path(path))
        return read(path)

    monkeypatch.setattr(health_images, "inspect_image", counted_inspect)
    monkeypatch.setattr(image_cache, "read_image", counted_read)
    return seen


def _yolo_module(root: Path, **checks) -> DetectionDataModule:
    return DetectionDataModule(str(root), format="yolo", image_size=64, batch_size=2, loader={"num_workers": 0},
                               checks=checks or None)


def _dataset(make_yolo) -> Path:
    return make_yolo({"train": {"a.jpg": BOX, "b.jpg": BOX, "c.jpg": BOX + "\n0 0.5 0.5 0 0"},
                      "val": {"v.jpg": BOX}, "test": {"t.jpg": BOX}})


def _report(dm: DetectionDataModule) -> dict:
    saved = dm.health.to_json()
    saved.pop("seconds")
    return saved


def test_a_second_setup_in_a_fresh_module_reads_the_cache(make_yolo, decodes, _own_cache) -> None:
    root = _dataset(make_yolo)
    first = _yolo_module(root)
    first.setup()
    assert sorted(p.name for p in decodes["check"]) == ["a.jpg", "b.jpg", "c.jpg", "t.jpg", "v.jpg"]
    assert list((_own_cache / "health").glob("*.json"))  # under $YOLOTL_CACHE/health
    decodes["check"].clear()
    second = _yolo_module(root)  # a new process, another DDP rank, a later evaluation
    second.setup()
    assert decodes["check"] == []  # nothing decoded again
    assert _report(second) == _report(first)  # and the same findings, statistics and actions
    assert second.health.totals() == {"dropped_degenerate_box": 1}


def test_a_changed_file_is_decoded_again(make_yolo, decodes) -> None:
    root = _dataset(make_yolo)
    _yolo_module(root).setup()
    decodes["check"].clear()
    image = root / "train" / "images" / "b.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched
    _yolo_module(root).setup()
    assert decodes["check"] == [image]
    decodes["check"].clear()
    write_image(root / "val" / "images" / "v.jpg", 100, 80, seed=123)  # rewritten: new content
    again = _yolo_module(root)
    again.setup()
    assert [p.name for p in decodes["check"]] == ["v.jpg"]
    fresh = _yolo_module(root, health_cache=None)
    fresh.setup()
    assert again.health.findings == fresh.health.findings


def test_a_changed_image_changes_the_findings(make_yolo, decodes) -> None:
    """The cache never hides a problem: an image truncated after the first check is found."""
    root = _dataset(make_yolo)
    _yolo_module(root).setup()
    image = root / "train" / "images" / "a.jpg"
    image.write_bytes(image.read_bytes()[:200])
    dm = _yolo_module(root)
    dm.setup()
    assert dm.health.totals() == {"dropped_degenerate_box": 1, "truncated_image": 1}
    assert [r.image_path.name for r in dm.split("train").records] == ["b.jpg", "c.jpg"]


def test_prepare_data_fills_the_cache_that_every_setup_reads(make_yolo, decodes) -> None:
    root = _dataset(make_yolo)
    rank0 = _yolo_module(root)
    rank0.prepare_data()  # Lightning: once per node, before setup() on every rank
    assert len(decodes["check"]) == 5 and not rank0.split_sizes  # nothing read for setup yet
    rank0.setup("fit")
    other = _yolo_module(root)
    other.setup("fit")
    assert len(decodes["check"]) == 5  # neither setup decoded anything
    assert rank0.split_sizes == other.split_sizes == {"train": 3, "val": 1}
    assert _report(rank0) == _report(other)


def test_without_a_health_cache_every_module_decodes(make_yolo, decodes, _own_cache) -> None:
    root = _dataset(make_yolo)
    for _ in range(2):
        _yolo_module(root, health_cache=None).setup("fit")
    assert len(decodes["check"]) == 8
    assert not (_own_cache / "health").exists()
    folder = _own_cache.parent / "elsewhere"
    _yolo_module(root, health_cache=str(folder)).setup("fit")
    assert list(folder.glob("*.json"))


def test_an_unreadable_cache_file_is_ignored(make_yolo, decodes) -> None:
    root = _dataset(make_yolo)
    dm = _yolo_module(root)
    dm.setup("fit")
    store = ImageInfoStore(image_cache.cache_root() / "health", root)
    store.file.write_text("{not json")
    again = _yolo_module(root)
    again.setup("fit")
    assert len(decodes["check"]) == 8 and _report(again) == _report(dm)


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("YOLOTL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_cache.cache_root() == tmp_path / "xdg" / "yolotl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert image_cache.cache_root() == Path.home() / ".cache" / "yolotl"
    monkeypatch.setenv("YOLOTL_CACHE", str(tmp_path / "mine"))
    assert image_cache.cache_root() == tmp_path / "mine"


# ---- decode once ---------------------------------------------------------------------------


def test_checked_images_fill_the_ram_cache_without_a_second_decode(tmp_path, decodes) -> None:
    dm = DetectionDataModule(str(tmp_path / "syn"), format="synthetic", image_size=64, batch_size=4, reading={"synthetic": SYNTH}, loader={"num_workers": 0, "cache": "ram"})
    dm.setup("fit")
    next(iter(dm.train_dataloader()))
    next(iter(dm.val_dataloader()))
    assert len(decodes["check"]) == 12 and decodes["train"] == []  # each PNG decoded once
    for record in dm.split("train").records + dm.split("val").records:
        image, size = dm.cache.get(record.image_path)
        expected, expected_size = decode_resized(record.image_path, 64)
        np.testing.assert_array_equal(image, expected)
        assert size == expected_size and image.flags.writeable


def _first_batches(dm: DetectionDataModule, count: int = 2) -> list:
    torch.manual_seed(7)
    np.random.seed(7)
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = []
    for i, batch in enumerate(loader):
        batches.append(batch)
        if i + 1 == count:
            break
    return batches


def test_training_batches_are_bit_identical_with_decode_once(tmp_path) -> None:
    root = tmp_path / "syn"
    args = {"format": "synthetic", "image_size": 64, "batch_size": 4, "reading": {"synthetic": SYNTH}}
    seeded = _first_batches(DetectionDataModule(str(root), **args, loader={"num_workers": 0, "cache": "ram"}))
    plain = _first_batches(DetectionDataModule(str(root), **args, loader={"num_workers": 0, "cache": "none"},
                                               checks={"health_cache": None}))
    for (images, targets), (images2, targets2) in zip(seeded, plain):
        assert torch.equal(images, images2)
        for t, t2 in zip(targets, targets2):
            assert torch.equal(t["boxes"], t2["boxes"]) and torch.equal(t["labels"], t2["labels"])


def test_only_exact_decodes_are_handed_over(tmp_path) -> None:
    """PIL and OpenCV agree bit for bit on 8-bit PNG/BMP; JPEG (decoder-dependent) and 16-bit
    images are decoded again by the cache itself."""
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (40, 70, 3), np.uint8)
    files = {"rgb.png": colour, "gray.png": colour[..., 0], "rgba.bmp": colour,
             "rgba.png": np.dstack([colour, rng.integers(0, 256, (40, 70), np.uint8)]),
             "photo.jpg": colour, "deep.png": (colour.astype(np.uint16) * 257)}
    paths = []
    for name, pixels in files.items():
        assert cv2.imwrite(str(tmp_path / name), pixels)
        paths.append(tmp_path / name)
    cache = ImageCache("ram", max_side=48)
    inspect_images(paths, threads=2, pixels=cache.put)
    assert len(cache) == 4 and str(tmp_path / "photo.jpg") not in cache._ram
    assert str(tmp_path / "deep.png") not in cache._ram
    for path in paths:
        image, size = cache.get(path)
        expected, expected_size = decode_resized(path, 48)
        np.testing.assert_array_equal(image, expected)
        assert size == expected_size


def test_importing_the_data_package_has_no_side_effects() -> None:
    code = ("import os, sys, yolotl.data\n"
            "heavy = [m for m in ('lightning', 'hydra', 'albumentations') if m in sys.modules]\n"
            "from yolotl.data.transforms import build_eval_transforms\n"
            "build_eval_transforms(64)\n"
            "print(heavy, 'albumentations' in sys.modules, os.environ.get('NO_ALBUMENTATIONS_UPDATE'))")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    assert done.stdout.split("\n")[0] == "[] True None"
