"""DetectionDataModule: reads the splits of one dataset and serves detection batches."""

from __future__ import annotations

import inspect
import logging
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from yolotl.data.dataset import DetectionDataset, collate_detections
from yolotl.data.formats import FORMATS, SplitNotFoundError, read_split
from yolotl.data.records import DatasetSplit, DefectLog
from yolotl.data.synthetic import make_synthetic_dataset
from yolotl.data.transforms import (
    build_eval_transforms,
    build_train_transforms,
    check_image_size,
)
from yolotl.errors import ConfigError, DatasetError

__all__ = ["DetectionDataModule"]

_LOG = logging.getLogger("yolotl.data")
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                 "predict": ("test",), None: ("train", "val", "test")}


class DetectionDataModule(L.LightningDataModule):
    """Splits of a YOLO, VOC, COCO or built-in synthetic dataset as Lightning dataloaders.

    ``format="synthetic"`` writes :func:`make_synthetic_dataset` (kwargs ``synthetic``) to
    ``root`` in :meth:`prepare_data` and reads it as YOLO. ``augment`` holds keyword arguments
    for :func:`build_train_transforms`. ``setup`` reads the splits a stage needs (once), logs
    the defects found to the ``yolotl.data`` logger, and fills ``class_names``, ``num_classes``,
    ``defects`` and ``split_sizes``.
    """

    def __init__(
        self,
        root: str,
        format: str = "yolo",  # noqa: A002 - the user-facing config name
        image_size: int = 416,
        batch_size: int = 16,
        num_workers: int = 2,
        class_names: list[str] | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str | None = "test",
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__()
        _check_args(format, image_size, batch_size, num_workers)
        self.save_hyperparameters(logger=False)
        self.root = str(root)
        self.format = format.lower()
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = num_workers > 0 if persistent_workers is None else (
            persistent_workers and num_workers > 0)
        self.augment = dict(augment or {})
        self.synthetic = dict(synthetic or {})
        self._given_names = list(class_names) if class_names is not None else None
        self._split_names = {"train": train_split, "val": val_split, "test": test_split}
        self._splits: dict[str, DatasetSplit] = {}
        self._missing: set[str] = set()
        self._class_names: list[str] | None = None
        self.defects = DefectLog(scope=Path(self.root).name)
        _check_augment(image_size, self.augment)

    # ---- reading -----------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Write the synthetic dataset if requested (a no-op when it is already there)."""
        if self.format == "synthetic":
            make_synthetic_dataset(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        """Read the splits ``stage`` needs and are not read yet; cheap to call again."""
        if self.format == "synthetic":
            self.prepare_data()  # a notebook may call setup() alone; idempotent
        roles = _STAGE_SPLITS.get(stage, _STAGE_SPLITS[None])
        read = [self._read_role(role, optional=role == "test" and stage is None) for role in roles]
        read = [split for split in read if split is not None]
        if not read:
            return
        new = DefectLog(scope=Path(self.root).name)
        for split in read:
            new.merge(split.defects)
        self.defects.merge(new)
        sizes = ", ".join(f"{s.name} {len(s)} images / {s.num_boxes} boxes" for s in read)
        _LOG.info("Read %s (%s): %s", self.root, sizes, new.summary())

    def load_splits(self) -> dict[str, DatasetSplit]:
        """Read every configured split (same as ``setup(None)``) and return them by role."""
        self.setup(None)
        return dict(self._splits)

    def _read_role(self, role: str, optional: bool) -> DatasetSplit | None:
        """Read the split playing ``role`` once; None if it is optional and absent."""
        name = self._split_names[role]
        if role in self._splits or name is None or role in self._missing:
            return None
        reader_format = "yolo" if self.format == "synthetic" else self.format
        try:
            split = read_split(reader_format, self.root, name, self._class_names or
                               self._given_names)
        except SplitNotFoundError:
            if not optional:
                raise
            self._missing.add(role)
            return None
        self._class_names = self._class_names or split.class_names
        self._splits[role] = split
        return split

    # ---- what setup() found ------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (after ``setup``)."""
        if self._class_names is None:
            raise DatasetError("class_names is known only after setup(); call dm.setup() first.")
        return list(self._class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes (after ``setup``)."""
        return len(self.class_names)

    @property
    def has_test_split(self) -> bool:
        """Whether a test split is configured and was found (after ``setup()`` with no stage)."""
        return self._split_names["test"] is not None and "test" not in self._missing

    @property
    def split_sizes(self) -> dict[str, int]:
        """Number of images per split read so far, keyed by split name."""
        return {split.name: len(split) for split in self._splits.values()}

    # ---- loaders -----------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        split = self._split("train")
        seed = int(torch.initial_seed() % 2**32)
        transform = build_train_transforms(self.image_size, **self.augment)
        # one shared stream for all transforms (a seed per transform would correlate them)
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        dataset = DetectionDataset(split.records, transform, self.image_size)
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        if self._split_names["test"] is None or "test" in self._missing:
            raise DatasetError(
                f"No test split for {self.root} (test_split={self._split_names['test']!r}); "
                f"pass test_split=<name of an existing split> or test on the val split."
            )
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def _eval_loader(self, role: str) -> DataLoader:
        dataset = DetectionDataset(self._split(role).records,
                                   build_eval_transforms(self.image_size), self.image_size)
        return self._loader(dataset, shuffle=False, drop_last=False)

    def split(self, role: str) -> DatasetSplit:
        """The records of the ``train``, ``val`` or ``test`` split (read on first use)."""
        if role not in self._split_names:
            raise DatasetError(f"unknown split {role!r}; choose one of {sorted(self._split_names)}")
        if role == "test":
            self.setup("test")
            if not self.has_test_split:
                raise DatasetError(f"No test split for {self.root} (test_split={self._split_names['test']!r}); "
                                   f"pass test_split=<name of an existing split> or use split=val.")
        return self._split(role)

    def _split(self, role: str) -> DatasetSplit:
        if role not in self._splits:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[role])
        return self._splits[role]

    def _loader(self, dataset: DetectionDataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_detections,
            worker_init_fn=_seed_worker if self.num_workers > 0 else None,
        )


def _check_args(fmt: str, image_size: int, batch_size: int, num_workers: int) -> None:
    """Reject impossible arguments before any data is read."""
    known = [*FORMATS, "synthetic"]
    if str(fmt).lower() not in known:
        raise ConfigError(f"Unknown dataset format '{fmt}'; use one of {known}.")
    check_image_size(image_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1.")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers={num_workers!r} must be an integer >= 0.")


def _check_augment(image_size: int, augment: dict[str, Any]) -> None:
    """Build the train transform once so a bad ``augment`` key fails now, not in a worker."""
    try:
        build_train_transforms(image_size, **augment)
    except TypeError as exc:
        names = list(inspect.signature(build_train_transforms).parameters)[1:]
        raise ConfigError(
            f"augment={augment} has an unknown key ({exc}); valid keys: {names}."
        ) from exc


def _seed_worker(worker_id: int) -> None:
    """Give each worker its own augmentation stream (albumentations keeps its own RNG)."""
    seed = torch.initial_seed() % 2**32  # base seed + worker id, fresh each epoch
    random.seed(seed)
    np.random.seed(seed)
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None and hasattr(transform, "set_random_state"):
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    del worker_id
