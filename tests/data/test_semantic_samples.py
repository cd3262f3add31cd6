"""Semantic samples: the class map read or rasterised, carried with the image through the letterbox,
flips, affine and mosaic (nearest neighbour, fill 255), and the DataModule's classes and counts."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolotl.constants import IGNORE_INDEX
from yolotl.data import (
    AUGMENT_PRESETS,
    AugmentSettings,
    DetectionDataset,
    ImageCache,
    SampleKey,
    TrainSampler,
    build_train_transforms,
)
from yolotl.data.class_maps import objects_class_map, read_class_map
from yolotl.data.datamodule import DetectionDataModule, resize_batch
from yolotl.data.formats import read_coco_split, read_yolo_split
from yolotl.data.formats.semantic import read_semantic_split
from yolotl.errors import ConfigError, DatasetError

from .painted import FILL, rectangle, write_yolo
from .painted import Scene as PaintedScene
from .semantic_helpers import (
    CLASS_NAMES,
    IGNORE,
    SCENES,
    Scene,
    alignment_problems,
    save_image,
    save_mask,
    to_pixels,
    write_dataset,
)

SIZE = 96
SEEDS = range(3)
STILL = AugmentSettings(hflip=0.0, vflip=0.0, scale=(1.0, 1.0), translate=0.0, hsv=0.0)
CASES = {
    "letterbox": STILL,
    "hflip_vflip": replace(STILL, hflip=1.0, vflip=1.0),
    "zoom_translate": replace(STILL, scale=(0.5, 1.5), translate=0.25),
    "rotate_shear": replace(STILL, scale=(0.8, 1.2), degrees=20.0, shear=10.0),
    "heavy_geometry": replace(AUGMENT_PRESETS["heavy"], hsv=0.0, vflip=0.5),
}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory):
    root = write_dataset(tmp_path_factory.mktemp("semantic") / "ds", "roboflow", {"train": SCENES})
    return read_semantic_split(root, "train").records


def _dataset(records, settings: AugmentSettings, **kwargs) -> DetectionDataset:
    """A semantic training dataset with the plain and the mosaic pipeline of ``settings``."""
    options = settings.transforms_kwargs
    return DetectionDataset(records, build_train_transforms(SIZE, **options, mask_fill=IGNORE_INDEX), SIZE,
                            build_train_transforms(SIZE, **options, mosaic=True, mask_fill=IGNORE_INDEX),
                            semantic=True, **kwargs)


def _sample(dataset: DetectionDataset, key: SampleKey | int) -> tuple[np.ndarray, np.ndarray, dict]:
    image, target = dataset[key]
    return to_pixels(image), target["semantic"].numpy(), target


# ---- the target ------------------------------------------------------------------------------------


def test_a_semantic_target_keeps_the_detection_keys(records) -> None:
    """Empty boxes/labels/iscrowd, the letterbox fields, and ``semantic`` int64 [H, W] at the input size."""
    image, target = DetectionDataset(records, None, SIZE, semantic=True)[0]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert target["semantic"].shape == (SIZE, SIZE) and target["semantic"].dtype == torch.int64
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["iscrowd"].shape == (0,)
    assert target["orig_size"].tolist() == [64, 96] and target["scale"] == 1.0
    assert set(target) >= {"image_id", "pad", "path"}


def test_the_identity_letterbox_gives_the_mask_exactly(tmp_path: Path) -> None:
    """A square image at the input size: the class map is the mask, pixel for pixel, 255 kept."""
    scene = Scene(SIZE, SIZE, ((1, 10, 10, 50, 40), (4, 60, 50, 90, 90)), ignored=((20, 60, 40, 80),))
    root = write_dataset(tmp_path / "ds", "roboflow", {"train": [scene]})
    _, classes = scene.paint()
    _, target, _ = _sample(DetectionDataset(read_semantic_split(root, "train").records, None, SIZE,
                                            semantic=True), 0)
    np.testing.assert_array_equal(target, classes)
    assert (target == IGNORE).sum() == 20 * 20


def test_padding_is_ignored(records) -> None:
    """A 96x64 image letterboxed to 96: 16 rows of grey padding above and below, class 255 there."""
    image, target, sample = _sample(DetectionDataset(records, None, SIZE, semantic=True), 0)
    assert sample["pad"].tolist() == [0.0, 16.0]
    assert (target[:16] == IGNORE).all() and (target[-16:] == IGNORE).all()
    assert (image[:16] == FILL).all()
    assert not (target[16:-16] == IGNORE).any()
    assert alignment_problems(image, target) == []


def test_a_palette_mask_is_read_as_indices(tmp_path: Path) -> None:
    """A P-mode PNG (VOC's): the palette index is the class, whatever colour the palette gives it."""
    scene = Scene(64, 64, ((2, 4, 4, 30, 30), (5, 34, 34, 60, 60)), ignored=((40, 4, 60, 20),))
    root = write_dataset(tmp_path / "ds", "voc", {"train": [scene]}, palette=True)
    record = read_semantic_split(root, "train", CLASS_NAMES).records[0]
    assert Image.open(record.semantic_mask).mode == "P"
    _, classes = scene.paint()
    np.testing.assert_array_equal(read_class_map(record.semantic_mask), classes)
    _, target, _ = _sample(DetectionDataset([record], None, 64, semantic=True), 0)
    np.testing.assert_array_equal(target, classes)
    assert {0, 2, 5, IGNORE} == set(np.unique(target).tolist())


def test_a_colour_mask_is_refused_with_its_name(tmp_path: Path) -> None:
    path = save_image(tmp_path / "rgb_mask.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"rgb_mask\.png.*mode-RGB.*\(L\) or palette \(P\)"):
        read_class_map(path)


def test_a_mask_of_another_size_than_its_image_is_an_error(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "roboflow", {"train": SCENES[:1]})
    record = read_semantic_split(root, "train").records[0]
    save_mask(record.semantic_mask, np.zeros((32, 48), np.uint8))
    with pytest.raises(DatasetError) as error:
        DetectionDataset([record], None, SIZE, semantic=True)[0]
    assert record.semantic_mask.name in str(error.value) and record.image_path.name in str(error.value)


def test_a_downsized_cached_image_gets_its_class_map_resized_alike(records) -> None:
    """The RAM cache keeps images at the input size: the class map is resized to the cached image
    (nearest), giving the same target as decoding the full image."""
    size = 64
    cached = DetectionDataset(records, None, size, cache=ImageCache("ram", max_side=size), semantic=True)
    plain = DetectionDataset(records, None, size, semantic=True)
    for index in range(len(records)):
        image, target, _ = _sample(cached, index)
        assert cached.cache.get(records[index].image_path)[0].shape[:2] != (records[index].height,
                                                                             records[index].width)
        np.testing.assert_array_equal(target, _sample(plain, index)[1])
        assert alignment_problems(image, target) == []


# ---- alignment through augmentation ------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_image_and_class_map_stay_aligned(records, case: str) -> None:
    """Flips, zoom and shift, rotation with shear, heavy's geometry: class k has colour k away from
    edges, and what the pipeline filled is grey in the image and 255 in the map."""
    dataset = _dataset(records, CASES[case])
    filled = 0
    for seed in SEEDS:
        for index in range(len(records)):
            image, target, _ = _sample(dataset, SampleKey(index, seed=seed))
            assert alignment_problems(image, target) == [], f"{case} image {index} seed {seed}"
            assert len(set(np.unique(target).tolist()) - {IGNORE}) >= 3
            filled += int((target == IGNORE).sum())
    assert filled > 0  # letterbox padding or affine fill was met, and checked


@pytest.mark.parametrize("settings", [STILL, CASES["heavy_geometry"]], ids=["plain", "heavy_geometry"])
def test_mosaics_carry_the_class_maps(records, settings: AugmentSettings) -> None:
    dataset = _dataset(records, settings)
    n = len(records)
    for seed in SEEDS:
        for index in range(n):
            key = SampleKey(index, mosaic=tuple((index + k) % n for k in (1, 2, 3)), seed=seed)
            image, target, _ = _sample(dataset, key)
            assert alignment_problems(image, target) == [], f"{key}"
            assert len(set(np.unique(target).tolist()) - {0, IGNORE}) >= 3


def test_the_presets_keep_alignment_and_mixup_is_ignored(records, caplog: pytest.LogCaptureFixture) -> None:
    """heavy as shipped (hsv off) with mixup keys from the sampler: no blend, one log line."""
    settings = replace(AUGMENT_PRESETS["heavy"], hsv=0.0, mixup=1.0)
    dataset = _dataset(records, settings)
    sampler = TrainSampler(len(records), seed=5, mosaic=settings.mosaic, mixup=settings.mixup)
    with caplog.at_level(logging.INFO, logger="yolotl.data"):
        for key in sampler:
            assert key.mixup >= 0
            image, target, _ = _sample(dataset, key)
            assert alignment_problems(image, target) == [], f"{key}"
    assert sum("mixup is off" in r.message for r in caplog.records) == 1


def test_the_checker_reports_a_misaligned_map(records) -> None:
    image, target, _ = _sample(_dataset(records, STILL), SampleKey(2, seed=0))
    assert alignment_problems(image, target) == []
    assert alignment_problems(image, np.roll(target, 6, axis=1))
    assert alignment_problems(image, np.fliplr(target))
    swapped = target.copy()
    swapped[target == 2], swapped[target == 3] = 3, 2
    assert alignment_problems(image, swapped)


def test_multi_scale_resizes_the_class_map(records) -> None:
    images, targets = resize_batch(_collated(records), 64)
    assert images.shape[-2:] == (64, 64) and targets[0]["semantic"].shape == (64, 64)
    assert targets[0]["semantic"].dtype == torch.int64
    assert alignment_problems(to_pixels(images[0]), targets[0]["semantic"].numpy()) == []


def _collated(records):
    dataset = DetectionDataset(records, None, SIZE, semantic=True)
    samples = [dataset[i] for i in range(2)]
    return torch.stack([s[0] for s in samples]), [s[1] for s in samples]


def test_semantic_and_instance_masks_exclude_each_other(records) -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        DetectionDataset(records, None, SIZE, masks=True, semantic=True)


# ---- instance records rasterised ------------------------------------------------------------------


def test_instance_objects_are_rasterised_label_plus_one_small_on_top(tmp_path: Path) -> None:
    """YOLO boxes: background 0, class label + 1; the small box listed first still lies on the large."""
    scene = PaintedScene(SIZE, SIZE, (rectangle(2, 30, 30, 50, 50), rectangle(0, 10, 10, 80, 80),
                                      rectangle(4, 84, 4, 94, 40)))
    root = write_yolo(tmp_path / "yolo", [scene])
    records = read_yolo_split(root, "train").records
    _, target, sample = _sample(DetectionDataset(records, None, SIZE, semantic=True), 0)
    expected = np.zeros((SIZE, SIZE), np.int64)
    expected[10:80, 10:80] = 1
    expected[30:50, 30:50] = 3
    expected[4:40, 84:94] = 5
    np.testing.assert_array_equal(target, expected)
    assert sample["boxes"].shape == (0, 4)


def test_crowd_regions_are_ignored(make_coco) -> None:
    """A COCO crowd box is 255; an object drawn inside it keeps its class; polygons fill their outline."""
    square = [[60.0, 10.0, 90.0, 10.0, 90.0, 40.0, 60.0, 40.0]]
    data = {
        "images": [{"id": 1, "file_name": "im0.png", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 40, 50, 40], "iscrowd": 1},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [10, 50, 10, 10], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [60, 10, 30, 30], "iscrowd": 0,
             "segmentation": square},
        ],
    }
    record = read_coco_split(make_coco("train", data), "train").records[0]
    classes = objects_class_map(record, record.boxes, 80, 100)
    assert (classes[40:80, 0:50][classes[40:80, 0:50] != 2] == IGNORE).all()
    assert (classes[50:60, 10:20] == 2).all() and (classes[10:40, 60:90] == 1).all()
    assert (classes[:40, :50] == 0).all()
    _, target, _ = _sample(DetectionDataset([record], None, 128, semantic=True), 0)
    assert set(np.unique(target).tolist()) == {0, 1, 2, IGNORE}


# ---- the DataModule ------------------------------------------------------------------------------


def _module(root: Path, fmt: str, **kwargs) -> DetectionDataModule:
    return DetectionDataModule(str(root), format=fmt, image_size=SIZE, batch_size=2, augment="none",
                               loader={"num_workers": 0, "cache": "none"}, checks={"health_cache": None},
                               reading={"test_split": None, "val_split": "train"}, **kwargs)


def test_a_semantic_module_reads_mask_classes_and_counts_pixels(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", "roboflow", {"train": SCENES})
    dm = _module(root, "semantic", masks="semantic")
    dm.setup("fit")
    assert dm.class_names == CLASS_NAMES and dm.num_classes == 6
    counts = dm.class_counts("train")
    maps = [scene.paint()[1] for scene in SCENES]
    for value, name in enumerate(CLASS_NAMES):
        pixels = sum(int((m == value).sum()) for m in maps)
        assert counts[name] == {"images": sum(bool((m == value).any()) for m in maps), "pixels": pixels,
                                "boxes": pixels}
    assert dm.class_counts("train") == counts  # cached
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, SIZE, SIZE) and targets[0]["semantic"].shape == (SIZE, SIZE)
    images, targets = next(iter(dm.val_dataloader()))
    assert (targets[0]["semantic"][:16] == IGNORE).all()  # a padded 96x64 image


def test_a_semantic_module_on_instance_data_adds_the_background(tmp_path: Path) -> None:
    """YOLO boxes: names become background + the yaml's, counts are pixels of label + 1."""
    scenes = [PaintedScene(64, 64, (rectangle(0, 0, 0, 32, 64), rectangle(2, 40, 8 + i, 56, 24 + i)))
              for i in (0, 20)]  # two images, not identical (the health check skips copies)
    root = write_yolo(tmp_path / "yolo", scenes)
    dm = _module(root, "yolo", masks="semantic", selection={"balance": "repeat_factor"})
    dm.setup("fit")
    assert dm.class_names[:4] == ["background", "red", "green", "blue"] and dm.num_classes == 7
    counts = dm.class_counts("train")
    assert counts["background"] == {"images": 2, "pixels": 2 * (64 * 64 - 32 * 64 - 16 * 16),
                                    "boxes": 2 * (64 * 64 - 32 * 64 - 16 * 16)}
    assert counts["red"]["pixels"] == 2 * 32 * 64 and counts["blue"]["images"] == 2
    assert counts["green"] == {"images": 0, "pixels": 0, "boxes": 0}
    _, targets = next(iter(dm.train_dataloader()))
    assert set(targets[0]["semantic"].unique().tolist()) == {0, 1, 3}


def test_balance_counts_the_classes_of_each_map(tmp_path: Path) -> None:
    """Repeat factors from the classes each mask holds: the image with the rare class repeats more."""
    scenes = [Scene(64, 64, ((1, 0, 0, 64, 32),))] * 9 + [Scene(64, 64, ((1, 0, 0, 64, 32), (5, 0, 40, 20, 60)))]
    scenes = [replace(s, regions=s.regions + ((2, i, 50, i + 4, 54),)) for i, s in enumerate(scenes)]
    root = write_dataset(tmp_path / "ds", "roboflow", {"train": scenes})
    dm = _module(root, "semantic", masks="semantic", selection={"repeat_threshold": 0.5})
    dm.setup("fit")
    factors = dm._repeat_factors(dm.split("train").records)
    assert factors[-1] > 1.0 and np.allclose(factors[:-1], 1.0)


def test_semantic_module_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.detector.task=semantic"):
        _module(tmp_path, "semantic")
    with pytest.raises(ConfigError, match="'semantic'"):
        _module(tmp_path, "yolo", masks="class maps")
