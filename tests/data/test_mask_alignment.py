"""Masks still lie on their objects after augmentation, checked against the picture.

Each object is a filled outline (ellipses, a triangle, an L) painted anti-aliased in its class's
colour on grey and written as a YOLO-seg line; the dataset rasterises the outlines (``masks=True``)
and carries them through letterbox, flips, affine and mosaic with the image. Each output mask must
then overlap its object's coloured pixels (IoU bound), its box must cover them, and every coloured
pixel must lie in a mask of its class (tests/data/painted.py). Colour augmentation and mixup stay
off: the checker tells classes apart by exact colour.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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
    MASK_RING,
    MIN_MASK_AREA,
    Scene,
    Shape,
    colour_pixels,
    ellipse,
    mask_problems,
    paint,
    rectangle,
    write_yolo,
)

SIZE = 128
SEEDS = range(4)


def _polygon(label: int, *xy: float) -> Shape:
    """A polygon from flat x, y coordinates."""
    return Shape(label, np.array(xy, np.float64).reshape(-1, 2))


# Four images of different shapes, three objects each (no two touching, 8 px or more from the
# edges), vertices off the pixel grid as real outlines are; the L is not convex and the
# smallest ellipse (8 x 10 px radii) keeps a ring bound meaningful after a 0.5 zoom.
SCENES = [
    Scene(128, 96, (ellipse(0, 30, 40, 18, 14), ellipse(1, 90, 30, 14, 14),
                    _polygon(2, 62.3, 84.1, 108.7, 58.2, 114.5, 86.6))),
    Scene(96, 128, (ellipse(3, 30, 30, 16, 12),
                    _polygon(4, 50.5, 50.5, 85.5, 50.5, 85.5, 66.5, 66.5, 66.5, 66.5, 100.5, 50.5, 100.5),
                    ellipse(5, 28, 100, 14, 18))),
    Scene(112, 112, (ellipse(0, 80, 30, 20, 14), ellipse(2, 30, 75, 14, 22), ellipse(4, 80, 82, 16, 16))),
    Scene(120, 80, (ellipse(1, 28, 28, 16, 14), ellipse(3, 75, 45, 20, 20), ellipse(5, 106, 60, 8, 10))),
]
# hsv off (exact colours); min_visibility/min_area 0: every visible object keeps its mask.
STILL = AugmentSettings(hflip=0.0, vflip=0.0, scale=(1.0, 1.0), translate=0.0, hsv=0.0,
                        min_visibility=0.0, min_area=0.0)
HEAVY_GEOMETRY = replace(AUGMENT_PRESETS["heavy"], hsv=0.0, vflip=0.5, min_visibility=0.0, min_area=0.0)
CASES = {
    "letterbox": STILL,
    "hflip": replace(STILL, hflip=1.0),
    "vflip": replace(STILL, vflip=1.0),
    "zoom_translate": replace(STILL, scale=(0.5, 1.5), translate=0.25),
    "rotate_shear": replace(STILL, degrees=15.0, shear=10.0),  # beyond heavy's 5 and 2
    "heavy_geometry": HEAVY_GEOMETRY,
}


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRecord]:
    """The painted scenes through the YOLO-seg reader."""
    root = write_yolo(tmp_path_factory.mktemp("painted") / "outlines", SCENES, outlines=True)
    split = read_yolo_split(root, "train")
    assert all(r.segments is not None and len(r.segments) == 3 for r in split.records)
    return split.records


def _dataset(records: list[ImageRecord], settings: AugmentSettings) -> DetectionDataset:
    """A mask-carrying training dataset with the plain and the mosaic pipeline of ``settings``."""
    kwargs = settings.transforms_kwargs
    return DetectionDataset(records, build_train_transforms(SIZE, **kwargs), SIZE,
                            build_train_transforms(SIZE, **kwargs, mosaic=True), masks=True)


def _sample(dataset: DetectionDataset, key: SampleKey) -> tuple[np.ndarray, ...]:
    """uint8 HWC image, masks ``[N, H, W]``, boxes and labels of one sample."""
    image, target = dataset[key]
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return pixels, target["masks"].numpy(), target["boxes"].numpy(), target["labels"].numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_masks_lie_on_their_objects_after_one_image_transforms(records: list[ImageRecord],
                                                               case: str) -> None:
    """Flips forced on, zoom with a translation that cuts objects, rotation with shear, and heavy's
    geometry; four seeds on every image."""
    dataset = _dataset(records, CASES[case])
    for seed in SEEDS:
        for index in range(len(SCENES)):
            image, masks, boxes, labels = _sample(dataset, SampleKey(index, seed=seed))
            problems = mask_problems(image, masks, boxes, labels)
            assert not problems, f"{case} image {index} seed {seed}: {problems}"
            assert len(masks) >= 2


@pytest.mark.parametrize("settings", [STILL, HEAVY_GEOMETRY], ids=["plain", "heavy_geometry"])
def test_masks_lie_on_their_objects_in_mosaics(records: list[ImageRecord],
                                               settings: AugmentSettings) -> None:
    """Mosaics of all four images (masks travel as channels of one mask over the four), alone and
    followed by heavy's geometry; cut objects keep masks over their visible part."""
    dataset = _dataset(records, settings)
    n = len(SCENES)
    for seed in SEEDS:
        for index in range(n):
            key = SampleKey(index, mosaic=tuple((index + k) % n for k in (1, 2, 3)), seed=seed)
            image, masks, boxes, labels = _sample(dataset, key)
            problems = mask_problems(image, masks, boxes, labels)
            assert not problems, f"{key}: {problems}"
            assert len(set(labels.tolist())) >= 2


@pytest.mark.parametrize("preset", ["medium", "heavy"])
def test_masks_lie_on_their_objects_under_the_presets(records: list[ImageRecord], preset: str) -> None:
    """The presets as shipped (hsv off, no mixup), keys from the TrainSampler over three epochs
    (mosaic at the preset's share); colour of objects the preset dropped as mostly hidden
    (min_visibility 0.3) is excused where the crop cut it."""
    settings = replace(AUGMENT_PRESETS[preset], hsv=0.0)
    dataset = _dataset(records, settings)
    sampler = TrainSampler(len(records), seed=11, mosaic=settings.mosaic)
    mosaics = 0
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for key in sampler:
            image, masks, boxes, labels = _sample(dataset, key)
            problems = mask_problems(image, masks, boxes, labels, dropped_allowed=True)
            assert not problems, f"{preset} {key}: {problems}"
            mosaics += bool(key.mosaic)
    assert mosaics >= 2


def test_the_checker_reports_masks_off_their_objects(records: list[ImageRecord]) -> None:
    """The checks can fail: masks shifted by 5 px (boxes moved with them), two masks swapped, and
    a mask left out are each reported; the true masks pass."""
    image, masks, boxes, labels = _sample(_dataset(records, STILL), SampleKey(2, seed=0))
    assert mask_problems(image, masks, boxes, labels) == []
    shifted = np.roll(masks, (5, 5), axis=(1, 2))  # objects sit >= 8 px from the edges: no wrap
    problems = mask_problems(image, shifted, boxes + 5, labels)
    assert sum("IoU" in p for p in problems) == len(masks), problems  # every mask, the smallest too
    swapped = masks[[1, 0, 2]]
    assert len(mask_problems(image, swapped, boxes[[1, 0, 2]], labels)) >= 2
    assert any("outside every" in p for p in mask_problems(image, masks[1:], boxes[1:], labels[1:]))


def test_the_checker_sees_a_small_shift_of_the_smallest_object(records: list[ImageRecord]) -> None:
    """How fine the IoU bound is: even the smallest object here (8 x 10 px radii) fails when its
    mask moves by twice the ring the bound allows (2 px)."""
    image, masks, boxes, labels = _sample(_dataset(records, STILL), SampleKey(3, seed=0))
    smallest = int(np.argmin(masks.reshape(len(masks), -1).sum(1)))
    assert masks[smallest].sum() >= MIN_MASK_AREA
    moved = masks.copy()
    shift = 2 * MASK_RING
    moved[smallest] = np.roll(masks[smallest], shift, axis=1)
    moved_boxes = boxes.copy()
    moved_boxes[smallest] += [shift, 0, shift, 0]
    problems = mask_problems(image, moved, moved_boxes, labels)
    assert [p for p in problems if "IoU" in p] == [p for p in problems if p.startswith(f"mask {smallest} ")]
    assert any("IoU" in p for p in problems), problems


# Former biases of the mask raster, pinned exactly here (they set painted.MASK_RING's second
# pixel until fixed): a polygon filled pixels its outline only touched, and the letterbox resized
# masks with cv2.INTER_NEAREST, off by up to a pixel when enlarging.
EXACT = [Scene(128, 128, (rectangle(0, 10, 12, 40, 30), rectangle(1, 60, 70, 101, 100)))]


def test_a_whole_pixel_outline_rasterises_to_exactly_its_painted_pixels(tmp_path: Path) -> None:
    """At the identity letterbox (a 128 px image at input size 128) an outline on whole pixels is
    exactly the painted rectangle: its mask is those pixels, its box the rectangle."""
    root = write_yolo(tmp_path / "exact", EXACT, outlines=True)
    records = read_yolo_split(root, "train").records
    image, masks, boxes, labels = _sample(DetectionDataset(records, None, SIZE, masks=True), SampleKey(0))
    assert (image == paint(EXACT[0])).all()
    np.testing.assert_array_equal(boxes, [[10, 12, 40, 30], [60, 70, 101, 100]])
    for mask, label in zip(masks, labels):
        np.testing.assert_array_equal(mask.astype(bool), colour_pixels(image, int(label)))


def test_an_enlarged_mask_stays_on_its_pixels(tmp_path: Path) -> None:
    """An object without an outline gets its box as mask (exact on whole pixels, no polygon
    raster involved). Enlarging a 112 px image to 128 moves the box [10, 60, 40, 100] to
    [11.43, 68.57, 45.71, 114.29]: its mask must be the pixels whose centres lie in that box,
    columns 11-45 and rows 69-113, where the picture's rectangle lies too."""
    scene = Scene(112, 112, (rectangle(0, 60, 16, 100, 44), rectangle(1, 10, 60, 40, 100)))
    root = write_yolo(tmp_path / "enlarged", [scene], outlines=True)
    label_file = root / "train" / "labels" / "0.txt"
    outline = label_file.read_text().splitlines()[0]  # object 0 keeps its outline (masks=True needs one)
    label_file.write_text(f"{outline}\n1 0.2232143 0.7142857 0.2678571 0.3571429\n")  # object 1: a box
    [record] = read_yolo_split(root, "train").records
    assert record.segments[1] is None
    image, masks, _, labels = _sample(DetectionDataset([record], None, SIZE, masks=True), SampleKey(0))
    assert labels.tolist() == [0, 1]
    expected = np.zeros((SIZE, SIZE), bool)
    expected[69:114, 11:46] = True
    assert (colour_pixels(image, 1) <= expected).all()  # the picture agrees: no pure green outside
    np.testing.assert_array_equal(masks[1].astype(bool), expected)
