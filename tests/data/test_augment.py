"""Augmentation presets and pipelines: boxes stay valid under every preset, mosaic and mixup."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from yolotl.data import (
    AUGMENT_PRESETS,
    AugmentSettings,
    DetectionDataset,
    ImageRecord,
    SampleKey,
    build_train_transforms,
    resolve_augment,
)
from yolotl.errors import ConfigError

from .helpers import REPO_ROOT, write_image

SIZE = 128


def _random_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    xy = rng.uniform(0, [width - 2, height - 2], size=(n, 2))
    wh = rng.uniform(2, [width, height], size=(n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [width, height])], axis=1).astype(np.float32)


def _assert_valid(boxes: np.ndarray, labels: np.ndarray, size: int, allowed: set[int]) -> None:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    assert len(boxes) == len(labels)
    assert np.isfinite(boxes).all()
    assert (boxes >= 0).all() and (boxes <= size).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all(), "every box keeps a positive width and height"
    assert set(np.asarray(labels).tolist()) <= allowed


def test_presets_match_their_hydra_files() -> None:
    for name, settings in AUGMENT_PRESETS.items():
        text = (REPO_ROOT / "conf" / "augment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package data.augment")
        assert resolve_augment(yaml.safe_load(text)) == settings, name
    assert set(AUGMENT_PRESETS) == {"none", "light", "medium", "heavy"}
    assert AUGMENT_PRESETS["heavy"].mosaic > AUGMENT_PRESETS["medium"].mosaic > AUGMENT_PRESETS["light"].mosaic == 0


def test_resolve_augment_forms_and_errors() -> None:
    assert resolve_augment(None) == AUGMENT_PRESETS["medium"]
    assert resolve_augment("heavy") is AUGMENT_PRESETS["heavy"]
    custom = resolve_augment({"preset": "heavy", "mixup": 0.0})
    assert custom.mixup == 0.0 and custom.mosaic == AUGMENT_PRESETS["heavy"].mosaic
    with pytest.raises(ConfigError, match="unknown augmentation preset 'strong'.*none"):
        resolve_augment("strong")
    with pytest.raises(ConfigError, match="unknown keys \\['flip'\\]"):
        resolve_augment({"flip": 0.5})
    with pytest.raises(ConfigError, match="mosaic=1.5 is a probability"):
        AugmentSettings(mosaic=1.5)
    with pytest.raises(ConfigError, match="multi_scale"):
        AugmentSettings(multi_scale=1.0)


@pytest.mark.parametrize("preset", list(AUGMENT_PRESETS))
@pytest.mark.parametrize("mosaic", [False, True])
def test_random_boxes_stay_valid_under_every_preset(preset: str, mosaic: bool) -> None:
    """Property test: random images and boxes through each preset (and its mosaic pipeline)."""
    rng = np.random.default_rng(zlib.crc32(f"{preset}/{mosaic}".encode()))  # the same every run
    settings = AUGMENT_PRESETS[preset]
    transform = build_train_transforms(SIZE, **settings.transforms_kwargs, mosaic=mosaic)
    transform.set_random_seed(1)
    for _ in range(25):
        items = []
        for _ in range(4 if mosaic else 1):
            height, width = (int(v) for v in rng.integers(20, 300, size=2))
            n = int(rng.integers(0, 6))
            items.append({"image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                          "bboxes": _random_boxes(rng, height, width, n),
                          "labels": rng.integers(0, 5, size=n)})
        extra = {"mosaic_metadata": items[1:]} if mosaic else {}
        out = transform(**items[0], **extra)
        assert out["image"].shape == (SIZE, SIZE, 3) and out["image"].dtype == np.uint8
        allowed = set(np.concatenate([i["labels"] for i in items]).tolist())
        _assert_valid(out["bboxes"], out["labels"], SIZE, allowed)


def test_mosaic_combines_four_images(tmp_path: Path) -> None:
    """Each of four images has one large box of its own class: a mosaic shows several classes."""
    records = []
    for i in range(4):
        path = write_image(tmp_path / f"{i}.png", 120, 90, seed=i)
        records.append(ImageRecord(path, np.array([[5, 5, 115, 85]], np.float32), np.array([i]), 120, 90))
    settings = AUGMENT_PRESETS["none"]
    dataset = DetectionDataset(records, build_train_transforms(SIZE, **settings.transforms_kwargs), SIZE,
                               build_train_transforms(SIZE, **settings.transforms_kwargs, mosaic=True))
    seen = set()
    for seed in range(5):
        dataset.mosaic_transform.set_random_seed(seed)
        image, target = dataset[SampleKey(0, mosaic=(1, 2, 3))]
        assert image.shape == (3, SIZE, SIZE)
        _assert_valid(target["boxes"].numpy(), target["labels"].numpy(), SIZE, {0, 1, 2, 3})
        seen.update(target["labels"].tolist())
    assert len(seen) >= 3


def test_mixup_keeps_boxes_of_both_samples(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.png", 100, 100, seed=i) for i in range(2)]
    records = [ImageRecord(p, np.array([[10, 10, 60, 60]], np.float32), np.array([i]), 100, 100)
               for i, p in enumerate(paths)]
    plain = build_train_transforms(SIZE, **AUGMENT_PRESETS["none"].transforms_kwargs)
    dataset = DetectionDataset(records, plain, SIZE)
    image, target = dataset[SampleKey(0, mixup=1)]
    assert sorted(target["labels"].tolist()) == [0, 1]
    alone = dataset[SampleKey(0)][0]
    other = dataset[SampleKey(1)][0]
    # a blend: strictly between the two images where they differ
    differs = (alone - other).abs() > 0.2
    low, high = np.minimum(alone, other), np.maximum(alone, other)
    inside = ((image >= low - 1e-3) & (image <= high + 1e-3))[differs]
    assert inside.float().mean() > 0.99
    assert (image - alone).abs()[differs].mean() > 0.1


def test_ignore_flags_follow_their_boxes_through_mosaic_and_mixup(tmp_path: Path) -> None:
    """Odd labels are the difficult objects: whatever boxes the augmentation keeps, drops or
    reorders, ``iscrowd`` stays on exactly those."""
    records = []
    for i in range(4):
        path = write_image(tmp_path / f"{i}.png", 120, 90, seed=i)
        boxes = np.array([[5, 5, 60, 45], [70, 10, 110, 80], [2, 60, 30, 88]], np.float32)
        records.append(ImageRecord(path, boxes, np.array([2 * i, 2 * i + 1, 2 * i]), 120, 90,
                                   difficult=np.array([False, True, False])))
    settings = AUGMENT_PRESETS["heavy"]
    dataset = DetectionDataset(records, build_train_transforms(SIZE, **settings.transforms_kwargs), SIZE,
                               build_train_transforms(SIZE, **settings.transforms_kwargs, mosaic=True))
    counts = []
    for seed in range(6):
        for key in (SampleKey(0, seed=seed), SampleKey(1, mosaic=(0, 2, 3), seed=seed),
                    SampleKey(2, mosaic=(1, 3, 0), mixup=3, seed=seed)):
            _, target = dataset[key]
            labels = target["labels"]
            assert target["iscrowd"].dtype == torch.bool
            assert target["iscrowd"].tolist() == (labels % 2 == 1).tolist()
            counts.append(len(labels))
    assert min(counts) < 6 < max(counts)  # some boxes were dropped, a mosaic kept many


def test_mosaic_key_without_mosaic_transform_is_an_error(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", 50, 50)
    dataset = DetectionDataset([ImageRecord(path, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), 50, 50)])
    with pytest.raises(ValueError, match="mosaic_transform"):
        dataset[SampleKey(0, mosaic=(0, 0, 0))]
