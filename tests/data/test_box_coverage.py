"""Boxes still cover their objects after augmentation: flips, each affine part, mosaic and the
medium/heavy presets, checked against the pixels of painted images (tests/data/painted.py).

Each image is a small YOLO dataset on disk: solid rectangles of distinct class colours on grey,
each label box exactly its painted rectangle. After a training transform, every output box must
be filled with its class's colour (a box that moved off its object, grew, or took another label
fails) and every pixel of a class colour must lie in a box of that class (an object whose box went
elsewhere or vanished fails). Colour augmentation (``hsv``) is off throughout: the checker tells
classes apart by exact colour. Mixup is left out for the same reason (it blends two images).
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from yolotl.data import (
    AUGMENT_PRESETS,
    AugmentSettings,
    DetectionDataset,
    ImageRecord,
    SampleKey,
    TrainSampler,
    build_train_transforms,
)
from yolotl.data.formats import read_yolo_split

from .painted import (
    BACKGROUND,
    FILL,
    PALETTE,
    Scene,
    box_problems,
    colour_pixels,
    rectangle,
    worst_fill,
    write_yolo,
)

SIZE = 128
SEEDS = range(4)
# Four images of different shapes (so letterbox and mosaic scale them differently), three
# rectangles each, no two touching; all but one keep 8 px from the edges, so objects of
# neighbouring mosaic cells never merge. Rectangle 0 of image 0 touches the left edge: its box
# must follow it when the border cuts it.
SCENES = [
    Scene(128, 96, (rectangle(0, 0, 10, 40, 50), rectangle(1, 56, 12, 92, 40),
                    rectangle(2, 70, 56, 118, 86))),
    Scene(96, 128, (rectangle(3, 10, 10, 50, 40), rectangle(4, 60, 50, 88, 90),
                    rectangle(5, 12, 90, 46, 120))),
    Scene(112, 112, (rectangle(0, 64, 10, 100, 44), rectangle(2, 10, 60, 40, 100),
                     rectangle(4, 56, 66, 96, 98))),
    Scene(120, 80, (rectangle(1, 8, 8, 40, 34), rectangle(3, 52, 40, 84, 72),
                    rectangle(5, 92, 12, 112, 60))),
]
# No augmentation but what a test switches on. hsv=0: colours must stay exact. min_visibility=0
# and min_area=0: every object left visible keeps its box, so coverage can be strict (dropping
# mostly hidden boxes is a filter, not a move; the preset test below keeps it on).
STILL = AugmentSettings(hflip=0.0, vflip=0.0, scale=(1.0, 1.0), translate=0.0, hsv=0.0,
                        min_visibility=0.0, min_area=0.0)
# Fill of an axis-aligned box: its interior (shrunk by one pixel against interpolation blur)
# lies inside the painted rectangle, so every pixel should be the colour; 0.95 only absorbs a
# stray blended pixel where the box edge falls mid-pixel.
AXIS_ALIGNED_FILL = 0.95
# Rotation and shear: the geometric floor (worst_fill) less 0.15 for the blended pixels along the
# slanted edges inside the box, about half a pixel along a perimeter of at most ~70 px for the
# smallest objects here (~10 x 24 px after a 0.5 zoom, area ~240 px).
SLANT_BLUR = 0.15


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    """The painted scenes as records, through the YOLO reader (normalised boxes round-trip)."""
    root = write_yolo(tmp_path_factory.mktemp("painted") / "boxes", SCENES)
    split = read_yolo_split(root, "train")
    assert [r.num_objects for r in split.records] == [3, 3, 3, 3]
    return split.records


def _dataset(records: list[ImageRecord], settings: AugmentSettings) -> DetectionDataset:
    """A training dataset with the plain and the mosaic pipeline of ``settings``."""
    kwargs = settings.transforms_kwargs
    return DetectionDataset(records, build_train_transforms(SIZE, **kwargs), SIZE,
                            build_train_transforms(SIZE, **kwargs, mosaic=True))


def _sample(dataset: DetectionDataset, key: SampleKey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 HWC image, boxes and labels of one sample (the tensor image back to bytes: exact,
    the dataset divides uint8 by 255)."""
    image, target = dataset[key]
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return pixels, target["boxes"].numpy(), target["labels"].numpy()


def _problems(settings: AugmentSettings, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
              dropped_boxes_allowed: bool = False) -> list[str]:
    """:func:`box_problems` with the fill bound of the pipeline: axis-aligned unless it rotates or
    shears."""
    slanted = settings.degrees > 0 or settings.shear > 0
    min_fill = _slanted_fill(settings.degrees, settings.shear) if slanted else AXIS_ALIGNED_FILL
    return box_problems(image, boxes, labels, min_fill, slanted, dropped_boxes_allowed)


@functools.cache
def _slanted_fill(degrees: float, shear: float) -> float:
    """The fill bound under rotation/shear ranges (computed once per pair)."""
    return worst_fill(SCENES, degrees, shear) - SLANT_BLUR


def _plain_keys() -> list[SampleKey]:
    return [SampleKey(index, seed=seed) for seed in SEEDS for index in range(len(SCENES))]


def _mosaic_keys() -> list[SampleKey]:
    n = len(SCENES)
    return [SampleKey(index, mosaic=tuple((index + k) % n for k in (1, 2, 3)), seed=seed)
            for seed in SEEDS for index in range(n)]


def test_palette_is_unambiguous() -> None:
    """The premise of colour classification: grey, fill and any blend of a class colour with them
    (an edge pixel) is never taken for ANOTHER class, and grey or fill for none."""
    shares = np.linspace(0, 1, 101)[:, None, None]
    for label, colour in enumerate(PALETTE):
        for grey in (BACKGROUND, FILL):
            blends = np.round(colour * shares + grey * (1 - shares)).astype(np.uint8)  # [101, 1, 3]
            for other in range(len(PALETTE)):
                hits = colour_pixels(blends, other)[:, 0]
                assert not hits[0], "grey is no class"
                if other != label:
                    assert not hits.any(), (label, other, grey)


CASES = {
    "hflip": replace(STILL, hflip=1.0),
    "vflip": replace(STILL, vflip=1.0),
    "zoom": replace(STILL, scale=(0.5, 1.5)),  # the presets' zoom range
    "translate": replace(STILL, translate=0.25),  # beyond the presets' 0.1: objects cut by the border
    "rotate": replace(STILL, degrees=15.0),  # three times heavy's 5: corners of boxes left empty
    "shear": replace(STILL, shear=10.0),  # five times heavy's 2
    "heavy_geometry": replace(AUGMENT_PRESETS["heavy"], hsv=0.0, vflip=0.5, min_visibility=0.0, min_area=0.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_boxes_cover_their_objects_after_one_image_transforms(records: list[ImageRecord],
                                                              case: str) -> None:
    """Each geometric step forced on (the affine always runs: its ranges are the knobs; flips at
    probability 1), four seeds on every image."""
    settings = CASES[case]
    dataset = _dataset(records, settings)
    still = _dataset(records, STILL)
    moved = 0
    for key in _plain_keys():
        image, boxes, labels = _sample(dataset, key)
        problems = _problems(settings, image, boxes, labels)
        assert not problems, f"{case} {key}: {problems}"
        assert len(boxes) >= 1
        _, still_boxes, _ = _sample(still, key)
        moved += boxes.shape != still_boxes.shape or not np.allclose(boxes, still_boxes, atol=0.5)
    assert moved >= len(SEEDS) * len(SCENES) // 2, "the transform barely moved anything"


def test_hflip_mirrors_the_letterboxed_boxes_exactly(records: list[ImageRecord]) -> None:
    """The flip's boxes are the letterbox's boxes mirrored: x -> SIZE - x, y unchanged."""
    flipped, still = _dataset(records, CASES["hflip"]), _dataset(records, STILL)
    for index in range(len(SCENES)):
        _, boxes, labels = _sample(flipped, SampleKey(index, seed=0))
        _, plain, plain_labels = _sample(still, SampleKey(index, seed=0))
        mirrored = np.stack([SIZE - plain[:, 2], plain[:, 1], SIZE - plain[:, 0], plain[:, 3]], 1)
        assert labels.tolist() == plain_labels.tolist()
        np.testing.assert_allclose(boxes, mirrored, atol=1e-3)


def test_boxes_cover_their_objects_in_mosaics(records: list[ImageRecord]) -> None:
    """Mosaics of all four images (each fitted into a cell and cropped around a random centre), with
    and without heavy's affine and flips after them; cut objects keep boxes over their visible part."""
    heavy = CASES["heavy_geometry"]
    cut = 0
    for settings in (STILL, heavy):
        dataset = _dataset(records, settings)
        for key in _mosaic_keys():
            image, boxes, labels = _sample(dataset, key)
            problems = _problems(settings, image, boxes, labels)
            assert not problems, f"mosaic {settings} {key}: {problems}"
            assert len(set(labels.tolist())) >= 2  # pieces of several images
            cut += int(((boxes[:, :2] <= 0) | (boxes[:, 2:] >= SIZE)).any(axis=1).sum())
    assert cut >= 10, "the mosaics cut hardly any object: the border case went untested"


@pytest.mark.parametrize("preset", ["medium", "heavy"])
def test_boxes_cover_their_objects_under_the_presets(records: list[ImageRecord], preset: str) -> None:
    """The presets as shipped (but hsv off and no mixup), keys from the TrainSampler over three
    epochs (mosaic at the preset's share). The presets drop boxes left mostly outside the image
    (min_visibility 0.3), so colour left without a box is excused only where it touches the
    border or the fill: the visible rest of an object the crop cut."""
    settings = replace(AUGMENT_PRESETS[preset], hsv=0.0)
    dataset = _dataset(records, settings)
    sampler = TrainSampler(len(records), seed=7, mosaic=settings.mosaic)
    mosaics = 0
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for key in sampler:
            image, boxes, labels = _sample(dataset, key)
            problems = _problems(settings, image, boxes, labels, dropped_boxes_allowed=True)
            assert not problems, f"{preset} {key}: {problems}"
            mosaics += bool(key.mosaic)
    assert mosaics >= 2


def test_the_checker_reports_boxes_that_miss_their_objects(records: list[ImageRecord]) -> None:
    """The checks can fail: a flipped image with its unflipped boxes, boxes shifted by a third of
    their size, labels swapped between two boxes, and a box left out are each reported."""
    image, boxes, labels = _sample(_dataset(records, CASES["hflip"]), SampleKey(2, seed=0))
    _, unflipped, _ = _sample(_dataset(records, STILL), SampleKey(2, seed=0))
    assert box_problems(image, boxes, labels, AXIS_ALIGNED_FILL) == []  # the right boxes pass
    wrong = {
        "unflipped": (unflipped, labels),
        "shifted": (boxes + np.tile((boxes[:, 2:] - boxes[:, :2]) / 3, 2), labels),
        "swapped labels": (boxes, labels[[1, 0, 2]]),
        "box left out": (boxes[1:], labels[1:]),
    }
    for name, (bad_boxes, bad_labels) in wrong.items():
        for allowed in (False, True):  # the dropped-box excuse does not hide objects inside the image
            problems = box_problems(image, bad_boxes, bad_labels, AXIS_ALIGNED_FILL, False, allowed)
            assert problems, f"{name} passed the checker"
