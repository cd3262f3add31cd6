"""ImageCache: RAM and disk give the pixels a fresh decode gives; samples map back to originals."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolotl.data import DetectionDataset, ImageCache, ImageRecord, read_image
from yolotl.data.cache import decode_resized
from yolotl.errors import ConfigError

from .helpers import write_image


def test_decode_resized_shrinks_longest_side_only(tmp_path: Path) -> None:
    big = write_image(tmp_path / "big.png", 400, 200)
    small = write_image(tmp_path / "small.png", 60, 30)
    image, size = decode_resized(big, 128)
    assert image.shape == (64, 128, 3) and size == (200, 400)
    image, size = decode_resized(small, 128)
    assert image.shape == (30, 60, 3) and size == (30, 60)  # never enlarged


@pytest.mark.parametrize("mode", ["ram", "disk", "none"])
def test_cache_modes_serve_the_same_pixels(tmp_path: Path, mode: str) -> None:
    paths = [write_image(tmp_path / f"{i}.png", 300, 150, seed=i) for i in range(3)]
    cache = ImageCache(mode, max_side=96, cache_dir=tmp_path / "cache" if mode == "disk" else None)
    cache.fill(paths)
    for path in paths:
        expected, size = decode_resized(path, 96)
        image, got_size = cache.get(path)
        np.testing.assert_array_equal(image, expected)
        assert got_size == size == (150, 300)
        assert cache.original_size(path) == (150, 300)
    assert len(cache) == (3 if mode == "ram" else 0)
    if mode == "disk":
        files = list((tmp_path / "cache").rglob("*.npz"))
        assert len(files) == 3
        # served from disk next time: a fresh cache object reads the same pixels
        again = ImageCache("disk", max_side=96, cache_dir=tmp_path / "cache")
        np.testing.assert_array_equal(again.get(paths[0])[0], decode_resized(paths[0], 96)[0])


def test_disk_cache_notices_a_changed_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", 64, 64, seed=0)
    cache = ImageCache("disk", max_side=64, cache_dir=tmp_path / "cache")
    first = cache.get(path)[0].copy()
    write_image(path, 64, 64, seed=1)
    os.utime(path, ns=(1, 10**18))  # a new mtime, as an edit would give
    second = cache.get(path)[0]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(second, read_image(path))


def test_bad_cache_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache='ssd'.*none"):
        ImageCache("ssd")
    with pytest.raises(ConfigError, match="cache_dir"):
        ImageCache("disk")


def test_cached_eval_sample_is_identical_and_maps_back(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    image = np.zeros((300, 600, 3), np.uint8)
    cv2.rectangle(image, (100, 50), (300, 250), (255, 255, 255), -1)
    cv2.imwrite(str(path), image)
    boxes = np.array([[100, 50, 301, 251]], np.float32)
    record = ImageRecord(path, boxes, np.array([0]), 600, 300)
    plain = DetectionDataset([record], None, 128)[0]
    cache = ImageCache("ram", max_side=128)
    cached = DetectionDataset([record], None, 128, cache=cache)[0]
    assert (plain[0] - cached[0]).abs().max() < 1e-6  # the same resize, done once ahead of time
    for key in ("orig_size", "pad"):
        assert plain[1][key].tolist() == cached[1][key].tolist()
    assert plain[1]["scale"] == cached[1]["scale"]
    back = (cached[1]["boxes"].numpy() - np.tile(cached[1]["pad"].numpy(), 2)) / cached[1]["scale"]
    np.testing.assert_allclose(back, boxes, atol=1.0)
