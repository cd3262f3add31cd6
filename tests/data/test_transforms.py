"""Transforms: boxes stay valid under augmentation; the eval letterbox maps back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from yolotl.data import (
    DetectionDataset,
    ImageRecord,
    build_eval_transforms,
    build_train_transforms,
    letterbox_params,
)
from yolotl.errors import ConfigError

from .helpers import write_image


def _random_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    xy = rng.uniform(0, [width - 2, height - 2], size=(n, 2))
    wh = rng.uniform(2, [width, height], size=(n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [width, height])], axis=1).astype(np.float32)


def test_train_transform_keeps_boxes_valid() -> None:
    rng = np.random.default_rng(0)
    size = 128
    transform = build_train_transforms(size, vflip=0.5, degrees=10.0)
    transform.set_random_seed(0)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(20, 300, size=2))
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        n = int(rng.integers(0, 6))
        labels = rng.integers(0, 5, size=n)
        out = transform(image=image, bboxes=_random_boxes(rng, height, width, n), labels=labels)
        boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        assert out["image"].shape == (size, size, 3) and out["image"].dtype == np.uint8
        assert len(boxes) == len(out["labels"]) <= n
        assert (boxes >= 0).all() and (boxes <= size).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert set(np.asarray(out["labels"]).tolist()) <= set(labels.tolist())


@pytest.mark.parametrize(("height", "width"), [(480, 640), (1000, 333), (37, 50), (64, 64)])
def test_eval_letterbox_round_trips(height: int, width: int) -> None:
    rng = np.random.default_rng(height)
    size = 160
    boxes = _random_boxes(rng, height, width, 8)
    image = np.zeros((height, width, 3), np.uint8)
    out = build_eval_transforms(size)(image=image, bboxes=boxes, labels=np.arange(8))
    assert out["image"].shape == (size, size, 3)
    scale, pad_x, pad_y = letterbox_params(height, width, size)
    back = (np.asarray(out["bboxes"]) - [pad_x, pad_y, pad_x, pad_y]) / scale
    # exact but for rounding the resized short side to whole pixels: <= 0.5 input px
    assert (np.abs(back - boxes) * scale).max() <= 0.5 + 1e-4
    if (height * scale).is_integer() and (width * scale).is_integer():
        np.testing.assert_allclose(back, boxes, atol=1e-3)
    assert np.asarray(out["labels"]).tolist() == list(range(8))


def test_dataset_eval_sample_maps_back_to_original(tmp_path) -> None:
    path = write_image(tmp_path / "wide.png", 200, 100)
    boxes = np.array([[0, 0, 200, 100], [10.5, 20.25, 60, 70]], np.float32)
    record = ImageRecord(path, boxes, np.array([0, 1], np.int64), 200, 100)
    image, target = DetectionDataset([record], None, 96)[0]
    assert image.shape == (3, 96, 96)
    back = (target["boxes"].numpy() - np.tile(target["pad"].numpy(), 2)) / target["scale"]
    np.testing.assert_allclose(back, boxes, atol=1.0)
    assert target["orig_size"].tolist() == [100, 200]
    # the grey padding really is where pad says it is
    pad_y = int(target["pad"][1])
    assert pad_y > 0 and abs(float(image[0, pad_y // 2, 48]) - 114 / 255) < 1e-6


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        build_eval_transforms(100)
    with pytest.raises(ConfigError, match="scale"):
        build_train_transforms(128, scale=(1.5, 0.5))
    with pytest.raises(ConfigError, match="hflip"):
        build_train_transforms(128, hflip=2.0)
