"""A grid of augmented training samples with their boxes drawn: look before you train.

Uses the DataModule's own training dataloader (same sampler, mosaic/mixup plan, transforms and
cache), so what the grid shows is what the model will see in that epoch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolotl.data.draw import draw_detections
from yolotl.data.sampling import SampleKey

__all__ = ["preview_keys", "save_augmentation_grid"]


def save_augmentation_grid(
    datamodule: Any,
    path: str | Path,
    num_samples: int = 16,
    epoch: int = 0,
    columns: int | None = None,
    max_epochs: int | None = None,
) -> Path:
    """Draw ``num_samples`` training samples of ``epoch`` (boxes + class names) into one image.

    ``datamodule`` is a :class:`DetectionDataModule`; ``epoch`` picks the sampler's seeded order
    and, with ``max_epochs`` (the training length), whether mosaic is already switched off
    (``augment.close_mosaic``: off from ``max_epochs - close_mosaic``). Without a Trainer the
    DataModule cannot know the training length, so ``max_epochs=None`` shows mosaic in every epoch.
    Returns the written path (any extension OpenCV writes: .jpg, .png).
    """
    loader = _loader_at(datamodule, epoch, max_epochs)
    tiles = []
    for key in list(iter(loader.sampler))[:num_samples]:
        image, target = loader.dataset[key]
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        drawn = draw_detections(pixels, {"boxes": target["boxes"], "labels": target["labels"]},
                                datamodule.class_names)
        tiles.append(_caption(drawn, f"{Path(target['path']).name}" + (" +mosaic" if key.mosaic else "")
                              + (" +mixup" if key.mixup >= 0 else "")))
    grid = _tile(tiles, columns or math.ceil(math.sqrt(len(tiles))))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}; use a .jpg or .png file name in a writable folder")
    return path


def preview_keys(datamodule: Any, num_samples: int, epoch: int = 0,
                 max_epochs: int | None = None) -> list[SampleKey]:
    """The first ``num_samples`` sample keys of ``epoch`` as the training sampler draws them
    (mosaic partners, mixup), with mosaic off from ``max_epochs - close_mosaic`` when given."""
    return list(iter(_loader_at(datamodule, epoch, max_epochs).sampler))[:num_samples]


def _loader_at(datamodule: Any, epoch: int, max_epochs: int | None) -> Any:
    """The training dataloader with its sampler set to ``epoch`` (and the close_mosaic epoch)."""
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    close = datamodule.augment.close_mosaic
    if max_epochs is not None and close:
        loader.sampler.mosaic_until = max(0, max_epochs - close)
    return loader


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    canvas = image.copy()
    cv2.putText(canvas, text[:48], (3, canvas.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                cv2.LINE_AA)
    return canvas


def _tile(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles of one size on a grid with a 2 px white gap."""
    height, width = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * (height + 2), columns * (width + 2), 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * (height + 2): r * (height + 2) + height, c * (width + 2): c * (width + 2) + width] = tile
    return grid


