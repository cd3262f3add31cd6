"""The training sampler: epoch order, repeat-factor (class-balanced) sampling, mosaic/mixup choices.

Every random choice that combines images (which images form a mosaic, which sample is mixed
in, whether mosaic is on this epoch) is made here, in the main process, from a generator
seeded by ``(seed, epoch)``. Lightning calls :meth:`TrainSampler.set_epoch` at the start of
every epoch (also after a resume), so a resumed run draws the same epochs as an unbroken one,
and dataloader workers only execute the plan. Per-pixel randomness (flips, affine, colour)
stays in the albumentations pipelines.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler

from yolotl.errors import ConfigError

__all__ = ["SampleKey", "TrainSampler", "repeat_factors"]


class SampleKey(NamedTuple):
    """What the dataset builds for one training sample.

    ``mosaic`` holds the three other images of a mosaic (empty: no mosaic); ``mixup`` the index
    of the sample blended in (-1: none); ``seed`` the sample's own random seed (None: the loader
    worker's generators), derived from (sampler seed, epoch, position) so that a resumed epoch
    draws the augmentations an unbroken run would have drawn.
    """

    index: int
    mosaic: tuple[int, ...] = ()
    mixup: int = -1
    seed: int | None = None


def repeat_factors(image_classes: Sequence[Sequence[int]], threshold: float) -> np.ndarray:
    """Repeat factor per image (LVIS repeat-factor sampling, Gupta et al. 2019).

    For class ``c`` with ``f_c`` the share of training images that contain it,
    ``r_c = max(1, sqrt(threshold / f_c))``; an image is repeated ``max_c r_c`` times over the
    classes it contains (1 for background images). Classes present in more than ``threshold`` of
    the images are not repeated.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"repeat_threshold={threshold} must be in (0, 1].")
    num_images = max(1, len(image_classes))
    counts: dict[int, int] = {}
    for classes in image_classes:
        for c in set(int(c) for c in classes):
            counts[c] = counts.get(c, 0) + 1
    class_factor = {c: max(1.0, math.sqrt(threshold / (n / num_images))) for c, n in counts.items()}
    return np.array([max([class_factor[int(c)] for c in classes], default=1.0)
                     for classes in image_classes], dtype=np.float64)


class TrainSampler(Sampler[SampleKey]):
    """Shuffled :class:`SampleKey` s for one epoch; seeded by ``(seed, epoch)``.

    ``factors`` (from :func:`repeat_factors`) repeat images ``floor(r)`` times plus once more
    with probability ``r - floor(r)``; the epoch length stays ``round(sum(factors))`` so the
    step count (and the LR schedule) is fixed. ``mosaic``/``mixup`` are the shares of samples
    that get them; mosaic is off from epoch ``mosaic_until`` on (None: never switched off).
    """

    def __init__(
        self,
        num_images: int,
        seed: int = 0,
        factors: np.ndarray | None = None,
        mosaic: float = 0.0,
        mixup: float = 0.0,
        mosaic_until: int | None = None,
    ) -> None:
        if num_images < 1:
            raise ConfigError("the training split has no images to sample from.")
        if factors is not None and len(factors) != num_images:
            raise ValueError(f"{len(factors)} repeat factors for {num_images} images")
        self.num_images = num_images
        self.seed = int(seed)
        self.factors = None if factors is None else np.asarray(factors, dtype=np.float64)
        self.mosaic = float(mosaic)
        self.mixup = float(mixup)
        self.mosaic_until = mosaic_until
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start (and on resume) with the epoch number."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_images if self.factors is None else max(1, round(float(self.factors.sum())))

    @property
    def mosaic_active(self) -> bool:
        """Whether this epoch builds mosaics at all."""
        return self.mosaic > 0 and (self.mosaic_until is None or self.epoch < self.mosaic_until)

    def epoch_indices(self, rng: np.random.Generator) -> np.ndarray:
        """The shuffled image indices of this epoch (with repeats)."""
        if self.factors is None:
            return rng.permutation(self.num_images)
        whole = np.floor(self.factors).astype(np.int64)
        extra = rng.random(self.num_images) < (self.factors - whole)
        indices = np.repeat(np.arange(self.num_images), whole + extra)
        target = len(self)
        if len(indices) < target:  # top up by the same weights, keeping the length fixed
            weights = self.factors / self.factors.sum()
            indices = np.concatenate([indices, rng.choice(self.num_images, target - len(indices), p=weights)])
        return rng.permutation(indices)[:target]

    def __iter__(self) -> Iterator[SampleKey]:
        rng = np.random.default_rng([self.seed, self.epoch])
        indices = self.epoch_indices(rng)
        use_mosaic = self.mosaic_active
        seeds = np.random.SeedSequence([self.seed, self.epoch]).generate_state(len(indices))
        for index, sample_seed in zip(indices.tolist(), seeds.tolist()):
            others: tuple[int, ...] = ()
            if use_mosaic and rng.random() < self.mosaic:
                others = tuple(int(i) for i in rng.integers(0, self.num_images, 3))
            partner = int(rng.integers(0, self.num_images)) if rng.random() < self.mixup else -1
            yield SampleKey(int(index), others, partner, int(sample_seed))
