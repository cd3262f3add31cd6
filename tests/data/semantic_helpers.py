"""Generated semantic segmentation data: painted scenes written in each layout the reader knows, and a
checker that image and class map still agree after augmentation.

A scene is a grey background (class 0) with axis-aligned rectangles on whole pixels, each of a class
painted in that class's colour (``COLOURS``, the saturated colours of tests/data/painted.py), so the
class map is exactly the painted picture. After any augmentation that moves image and class map
together, the pixels of class k away from region edges must have colour k, and ignored pixels (the
pipelines' fill) the fill grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image

from .painted import BACKGROUND, COLOUR_TOLERANCE, FILL, PALETTE

CLASS_NAMES = ["background", "red", "green", "blue", "yellow", "magenta"]
# class k >= 1 is painted PALETTE[k - 1]; class 0 is the grey background
COLOURS = np.concatenate([np.full((1, 3), BACKGROUND, np.uint8), PALETTE[:5]])
IGNORE = 255
LAYOUTS = ("roboflow", "voc", "images_masks", "split_folders")


@dataclass(frozen=True)
class Scene:
    """An image of ``width`` x ``height``: ``regions`` (class, x1, y1, x2, y2) painted in order on the
    background; ``ignored`` rectangles are class IGNORE in the map (painted white in the image)."""

    width: int
    height: int
    regions: tuple[tuple[int, int, int, int, int], ...]
    ignored: tuple[tuple[int, int, int, int], ...] = ()

    def paint(self) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 image, uint8 class map) of the scene."""
        image = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)
        classes = np.zeros((self.height, self.width), np.uint8)
        for label, x1, y1, x2, y2 in self.regions:
            image[y1:y2, x1:x2] = COLOURS[label]
            classes[y1:y2, x1:x2] = label
        for x1, y1, x2, y2 in self.ignored:
            image[y1:y2, x1:x2] = 255
            classes[y1:y2, x1:x2] = IGNORE
        return image, classes


# Four scenes of different sizes and aspect ratios (the letterbox pads all but the square one);
# every class region is at least 12 px across so that a 0.5 zoom leaves an interior to check.
SCENES = [
    Scene(96, 64, ((1, 8, 8, 40, 40), (2, 52, 10, 88, 30), (3, 50, 36, 90, 58))),
    Scene(64, 96, ((4, 6, 6, 58, 30), (5, 10, 40, 40, 88), (1, 44, 50, 60, 90))),
    Scene(80, 80, ((2, 4, 4, 40, 40), (3, 44, 44, 76, 76), (5, 44, 4, 76, 36))),
    Scene(96, 80, ((3, 10, 10, 50, 70), (4, 60, 10, 90, 40), (2, 60, 50, 90, 74))),
]


def save_mask(path: Path, classes: np.ndarray, palette: bool = False) -> Path:
    """Write a class map as an 8-bit PNG: mode L, or mode P with a colour palette (index = class)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(classes, np.uint8), mode="L")
    if palette:  # VOC-style: index k shows as some colour; the index is the class
        colours = np.zeros((256, 3), np.uint8)
        colours[: len(COLOURS)] = COLOURS[::-1]  # deliberately unlike the indices
        colours[IGNORE] = (224, 224, 192)
        image.putpalette(colours.reshape(-1).tolist())
        assert image.mode == "P"
    image.save(path)
    return path


def save_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1])
    return path


def write_dataset(root: Path, layout: str, splits: dict[str, list[Scene]], classes_csv: bool = True,
                  yaml_names: list[str] | None = None, palette: bool = False,
                  suffix: str = ".png") -> Path:
    """Write ``splits`` (split name -> scenes) in ``layout`` under ``root``; returns ``root``.

    Image ``i`` of split ``s`` is named ``s_i``. ``classes_csv`` writes Roboflow's ``_classes.csv``
    into each split folder (roboflow layout only); ``yaml_names`` writes a data.yaml with ``names``."""
    for split, scenes in splits.items():
        for i, scene in enumerate(scenes):
            image, classes = scene.paint()
            stem = f"{split}_{i}"
            if layout == "roboflow":
                image_path, mask_path = root / split / f"{stem}{suffix}", root / split / f"{stem}_mask.png"
            elif layout == "voc":
                image_path = root / "JPEGImages" / f"{stem}{suffix}"
                mask_path = root / "SegmentationClass" / f"{stem}.png"
            elif layout == "images_masks":
                image_path = root / "images" / split / f"{stem}{suffix}"
                mask_path = root / "masks" / split / f"{stem}.png"
            else:
                image_path = root / split / "images" / f"{stem}{suffix}"
                mask_path = root / split / "masks" / f"{stem}.png"
            save_image(image_path, image)
            save_mask(mask_path, classes, palette)
        if layout == "voc":
            sets = root / "ImageSets" / "Segmentation"
            sets.mkdir(parents=True, exist_ok=True)
            (sets / f"{split}.txt").write_text("".join(f"{split}_{i}\n" for i in range(len(scenes))))
        if layout == "roboflow" and classes_csv:
            rows = "\n".join(f"{value}, {name}" for value, name in enumerate(CLASS_NAMES))
            (root / split / "_classes.csv").write_text("Pixel Value, Class\n" + rows)
    if yaml_names is not None:
        (root / "data.yaml").write_text(yaml.safe_dump({"names": yaml_names}))
    return root


def to_pixels(image) -> np.ndarray:  # noqa: ANN001 - a float [3, H, W] tensor in [0, 1]
    """uint8 HWC image of a sample's image tensor."""
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _core(region: np.ndarray, margin: int) -> np.ndarray:
    """``region`` eroded by ``margin`` px (the band where nearest and bilinear resampling disagree),
    the image border counting as outside (what lies beyond it is unknown)."""
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(region.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                     borderValue=0).astype(bool)


def _tolerance(value: int) -> int:
    """How far a pixel may be from its class's colour: the background grey (128) and the fill grey
    (114) differ by 14, so both are matched tightly; the saturated colours within COLOUR_TOLERANCE."""
    return {0: 6, IGNORE: 3}.get(value, COLOUR_TOLERANCE)


def alignment_problems(image: np.ndarray, classes: np.ndarray, margin: int = 2) -> list[str]:
    """What disagrees between an augmented image (uint8 HWC) and its class map ``[H, W]`` of scenes
    without ignored regions.

    Away from region edges (``margin`` px): each pixel of class k has colour k, each IGNORE pixel
    the fill grey, and each pixel of colour k (or the fill grey) has class k (or IGNORE)."""
    problems = []
    colours = {value: COLOURS[value] for value in range(len(COLOURS))} | {IGNORE: np.full(3, FILL)}
    for value, colour in colours.items():
        distance = np.abs(image.astype(np.int16) - np.asarray(colour, np.int16)).max(axis=2)
        has_colour = distance <= _tolerance(value)
        core = _core(classes == value, margin)
        wrong = int((core & ~has_colour).sum())
        if wrong:
            problems.append(f"{wrong} of {int(core.sum())} pixels of class {value} lack its colour")
        core = _core(has_colour, margin)
        wrong = int((core & (classes != value)).sum())
        if wrong:
            problems.append(f"{wrong} of {int(core.sum())} pixels of colour {value} have another class")
    return problems
