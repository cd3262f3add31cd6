"""DetectionDataModule: reads the splits of one dataset and serves detection batches."""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from yolotl.constants import IGNORE_INDEX
from yolotl.data import health as _health
from yolotl.data.augment import AugmentSettings, resolve_augment
from yolotl.data.cache import ImageCache
from yolotl.data.class_maps import mask_class_counts
from yolotl.data.dataset import DetectionDataset, collate_detections, seed_pipelines
from yolotl.data.findings import FindingLog
from yolotl.data.formats import FORMATS, prepare_dataset
from yolotl.data.health.store import ImageInfoStore, default_store_dir
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.data.sampling import TrainSampler, repeat_factors
from yolotl.data.selection import check_fold, check_fraction, fold_split, fraction_split
from yolotl.data.settings import CheckSettings, LoaderSettings, ReadSettings, Selection
from yolotl.data.splits import CheckedSplits
from yolotl.data.transforms import (
    build_eval_transforms,
    build_train_transforms,
    check_image_size,
)
from yolotl.errors import ConfigError, DatasetError

__all__ = ["DetectionDataModule"]

_LOG = logging.getLogger("yolotl.data")
BALANCE_MODES = (None, "repeat_factor")
DEFAULT_TEST_SPLIT = "test"
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                 "predict": ("test",), None: ("train", "val", "test")}
BACKGROUND = "background"  # class 0 of a semantic run on instance data (objects are label + 1)


class DetectionDataModule(L.LightningDataModule):
    """Splits of a YOLO, VOC, COCO, semantic or built-in synthetic dataset as Lightning dataloaders.

    Built from parts, each a config node of its own under ``data`` (10 arguments, was 27):

    - ``root`` (relative to the current working folder; a missing one is a DatasetError naming the folder
      it was resolved from and ``YOLOTL_DATASETS``) and ``format``: ``yolo``, ``voc``, ``coco`` or
      ``synthetic`` (:func:`~yolotl.data.formats.prepare_dataset` writes it to ``root``, then it is read
      as YOLO), or ``semantic`` (images with PNG class maps: Roboflow PNG masks, VOC
      ``SegmentationClass`` or image/mask folder pairs; needs ``masks="semantic"``).
    - ``image_size``, ``batch_size``.
    - ``augment``: a preset name (``none``/``light``/``medium``/``heavy``), a dict of
      :class:`AugmentSettings` fields (``{"preset": "heavy", "mixup": 0}``) or settings.
    - ``reading``: :class:`~yolotl.data.settings.ReadSettings`: class names, split names, VOC folders,
      the synthetic dataset's settings.
    - ``loader``: :class:`~yolotl.data.settings.LoaderSettings`: workers, pinned memory, the decoded-image
      cache (``ram`` by default: images resized to ``image_size``, see :class:`ImageCache`).
    - ``selection``: :class:`~yolotl.data.settings.Selection`: k-fold cross-validation inside the train
      split (fold ``k`` is val, the test split unchanged), a nested training fraction (every class kept
      present), and class-balanced sampling of training images (LVIS repeat factors, on by default, a
      no-op when every class is common).
    - ``checks``: :class:`~yolotl.data.settings.CheckSettings`: ``policy`` ``fix`` (default) or
      ``strict`` for the health check's findings (see :class:`~yolotl.data.splits.CheckedSplits`), and
      the health cache.
    - ``masks``: which masks the targets carry. ``True`` (or ``"instance"``): instance masks
      (``target["masks"]`` uint8 ``[N, H, W]``) when the records carry outlines (COCO segmentation, YOLO-seg);
      ``False`` (detection, the default): none, so outlines cost nothing. ``"semantic"``: class maps (``target["semantic"]`` int64 ``[H, W]``, a class
      per pixel, :data:`~yolotl.constants.IGNORE_INDEX` on padding and fill; ``boxes`` stay empty),
      set by ``yolotl.train`` for ``model.detector.task=semantic``. ``format=semantic`` reads the classes
      of the masks; an instance format (yolo, voc, coco, synthetic) is rasterised: ``class_names``
      becomes ``["background", *names]`` and each object's class its label + 1 (crowd regions are
      ignored). Mixup is off for it (blending two class maps has no right answer); class-balanced
      sampling counts the classes in each map; :meth:`class_counts` counts pixels.

    The parts may be given as mappings of their fields (``loader={"num_workers": 0}``).

    ``prepare_data`` (Lightning runs it on one process per node, before ``setup`` everywhere)
    decodes and hashes every image once, filling the health cache (and, with ``cache="ram"``, the
    image cache). ``setup`` reads the splits a stage needs (once), checks them (reading the health
    cache, decoding only what it lacks), applies the policy, logs one line to the ``yolotl.data``
    logger, and fills ``class_names``, ``num_classes``, ``health`` and ``split_sizes``.
    """

    def __init__(
        self,
        root: str,
        format: str = "yolo",  # noqa: A002 - the user-facing config name
        image_size: int = 416,
        batch_size: int = 16,
        augment: str | dict[str, Any] | AugmentSettings | None = None,
        reading: ReadSettings | Mapping[str, Any] | None = None,
        loader: LoaderSettings | Mapping[str, Any] | None = None,
        selection: Selection | Mapping[str, Any] | None = None,
        checks: CheckSettings | Mapping[str, Any] | None = None,
        masks: bool | str = False,
    ) -> None:
        super().__init__()
        reading, loader = ReadSettings.of(reading), LoaderSettings.of(loader)
        selection, checks = Selection.of(selection), CheckSettings.of(checks)
        num_workers = resolve_num_workers(loader.num_workers)
        _check_args(format, image_size, batch_size, num_workers)
        _check_balance(selection.balance)
        check_fold(selection.fold, selection.num_folds)
        check_fraction(selection.train_fraction)
        _check_folders(format, reading.image_dir, reading.annotation_dir)
        masks, semantic = _mask_targets(masks)
        _check_task(format, semantic)
        self.root = str(root)
        self.format = format.lower()
        self.image_size = image_size
        self.batch_size = batch_size
        self.reading, self.loader, self.selection, self.checks = reading, loader, selection, checks
        self.num_workers = num_workers
        # auto: pinned host memory when a CUDA GPU is there (faster, non-blocking copies to it)
        self.pin_memory = torch.cuda.is_available() if loader.pin_memory == "auto" else bool(loader.pin_memory)
        self.persistent_workers = num_workers > 0 if loader.persistent_workers is None else (
            loader.persistent_workers and num_workers > 0)
        self.augment = resolve_augment(augment)
        self.cache = ImageCache(loader.cache, max_side=image_size, cache_dir=loader.cache_dir)
        self.balance = selection.balance
        self.repeat_threshold = selection.repeat_threshold
        self.fold, self.num_folds, self.fold_seed = selection.fold, selection.num_folds, selection.fold_seed
        self.train_fraction, self.fraction_seed = float(selection.train_fraction), selection.fraction_seed
        self.synthetic = dict(reading.synthetic or {})
        self.masks = bool(masks)  # instance masks in the targets (segmentation); detection leaves them out
        self.semantic = bool(semantic)  # class maps in the targets (semantic segmentation)
        self._class_counts: dict[str, dict[str, dict[str, int]]] = {}  # semantic counts per role
        self._pixel_counts: dict[Path, np.ndarray] = {}  # class-map value counts per image (semantic)
        store_dir = default_store_dir() if checks.health_cache == "auto" else checks.health_cache
        self._checked = CheckedSplits(
            self.format, self.root,
            {"train": reading.train_split, "val": reading.val_split, "test": reading.test_split},
            reading.class_names, checks.policy,
            store=ImageInfoStore(store_dir, self.root) if store_dir is not None else None,
            pixels=self.cache.put if self.cache.mode == "ram" else None,
            image_dir=reading.image_dir, annotation_dir=reading.annotation_dir)
        self.policy = self._checked.policy
        self._split_names = self._checked.split_names
        self._splits = self._checked.splits  # role -> checked split (shared, filled by setup)
        self._missing = self._checked.missing

    # ---- reading -----------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Write the synthetic dataset if requested, then decode and hash every image of the
        configured splits once (the health cache; ``cache="ram"`` keeps the exact decodes).

        Lightning calls this on one process per node before ``setup`` on every process; nothing
        here changes what ``setup`` reads, checks or keeps, only how fast it does it."""
        prepare_dataset(self.format, self.root, self.synthetic)
        self._checked.prepare()

    def setup(self, stage: str | None = None) -> None:
        """Read the splits ``stage`` needs and are not read yet, check them, apply the policy.

        The check is :func:`~yolotl.check_dataset`'s: every image decoded (or its result read from
        the health cache), boxes checked, identical images looked for inside and across the splits
        read. ``policy="strict"`` raises DatasetError (with the report table) on any error or
        warning; ``policy="fix"`` skips unusable images and the train copies of images also in
        val/test, drops tiny and duplicate boxes, and logs one summary line; :meth:`write_health`
        writes every action. Cheap to call again.
        """
        prepare_dataset(self.format, self.root, self.synthetic)  # a notebook may call setup() alone
        roles = _STAGE_SPLITS.get(stage, _STAGE_SPLITS[None])
        # The default test split may be absent; one the user named (test_split=tset) must exist.
        optional = ("test",) if stage is None and self._split_names["test"] == DEFAULT_TEST_SPLIT else ()
        fresh, new = self._checked.read(roles, optional)
        if not fresh:
            return
        log = FindingLog(dataset=Path(self.root).name).extend(new)
        sizes = ", ".join(f"{self._splits[r].name} {len(self._splits[r])} images / "
                          f"{self._splits[r].num_boxes} boxes" for r in fresh)
        _LOG.info("Read %s (%s): %s; data.checks.policy=%s: %s", self.root, sizes, log.summary(),
                  self.policy, _health.summarise(self._checked.findings))

    def load_splits(self) -> dict[str, DatasetSplit]:
        """Read every configured split (same as ``setup(None)``) and return them by role."""
        self.setup(None)
        return dict(self._splits)

    @property
    def health(self) -> _health.HealthReport:
        """What the checks found in the splits read so far; statistics of the data the policy left."""
        return self._checked.report

    def write_health(self, run_dir: str | Path) -> dict[str, Path]:
        """Write ``data_health.json`` (every finding and the statistics) and ``skipped.csv`` (every
        skipped image and dropped or fixed box) into ``run_dir``; returns their paths."""
        report = self.health
        run_dir = Path(run_dir)
        return {"json": report.write_json(run_dir / "data_health.json"),
                "csv": report.write_csv(run_dir / "skipped.csv")}

    # ---- what setup() found ------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (after ``setup``); a semantic module on instance data puts
        ``background`` first (its objects are label + 1)."""
        names = self._checked.class_names
        if names is None:
            raise DatasetError("class_names is known only after setup(); call dm.setup() first.")
        return [BACKGROUND, *names] if self._shifted else list(names)

    @property
    def _shifted(self) -> bool:
        """Whether class indices are the records' labels + 1 (semantic targets from instance data)."""
        return self.semantic and self.format != "semantic"

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
        settings = self.augment
        fill = IGNORE_INDEX if self.semantic else 0
        transform = build_train_transforms(self.image_size, **settings.transforms_kwargs, mask_fill=fill)
        mosaic = build_train_transforms(self.image_size, **settings.transforms_kwargs, mosaic=True,
                                        mask_fill=fill)
        seed_pipelines((transform, mosaic), seed)
        # crowd regions left out of detection targets; a class map marks them ignored instead
        records = split.records if self.semantic else [record.for_training() for record in split.records]
        self.cache.fill([r.image_path for r in records], threads=max(1, self.num_workers))
        dataset = DetectionDataset(records, transform, self.image_size, mosaic, self.cache,
                                   masks=self.masks, semantic=self.semantic)
        mixup = settings.mixup
        if self.semantic and mixup > 0:
            _LOG.info("augment.mixup=%g is off for semantic segmentation (blending two class maps has no "
                      "right answer)", mixup)
            mixup = 0.0
        sampler = TrainSampler(len(dataset), seed, self._repeat_factors(records), settings.mosaic,
                               mixup, self._mosaic_until())
        drop_last = len(sampler) > self.batch_size
        return self._loader(dataset, sampler=sampler, drop_last=drop_last)

    def _repeat_factors(self, records: list[ImageRecord]) -> np.ndarray | None:
        if self.balance != "repeat_factor":
            return None
        if self.semantic and self.format == "semantic":  # the classes each class map holds
            counts = self._pixel_counts_of(records)
            classes = [np.flatnonzero(c[:self.num_classes]).tolist() for c in counts]
        else:
            classes = [r.labels.tolist() for r in records]
        factors = repeat_factors(classes, self.repeat_threshold)
        _LOG.info("repeat-factor sampling (threshold %g): %d images -> %d samples per epoch",
                  self.repeat_threshold, len(factors), round(float(factors.sum())))
        return factors

    def _mosaic_until(self) -> int | None:
        """The epoch from which mosaic is off (``max_epochs - close_mosaic``), if a trainer says."""
        trainer = getattr(self, "trainer", None)
        max_epochs = getattr(trainer, "max_epochs", None) if trainer is not None else None
        if not self.augment.close_mosaic or not max_epochs or max_epochs < 0:
            return None
        return max(0, max_epochs - self.augment.close_mosaic)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Multi-scale training: resize each training batch to a random multiple of 32."""
        trainer = getattr(self, "trainer", None)
        if not self.augment.multi_scale or trainer is None or not trainer.training:
            return batch
        step = trainer.global_step
        return resize_batch(batch, multi_scale_size(self.image_size, self.augment.multi_scale,
                                                    seed=[int(torch.initial_seed() % 2**32), step]))

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
        records = self._split(role).records
        self.cache.fill([r.image_path for r in records], threads=max(1, self.num_workers))
        transform = build_eval_transforms(self.image_size, mask_fill=IGNORE_INDEX if self.semantic else 0)
        dataset = DetectionDataset(records, transform, self.image_size, cache=self.cache,
                                   masks=self.masks, semantic=self.semantic)
        return self._loader(dataset, drop_last=False)

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
        if self.fold is not None and role in ("train", "val"):
            split = self._fold_split(role)
        else:
            if role not in self._splits:
                self.setup({"train": "fit", "val": "validate", "test": "test"}[role])
            split = self._splits[role]
        if role == "train" and self.train_fraction < 1.0:
            return self._fraction_split(split)
        return split

    def _fraction_split(self, full: DatasetSplit) -> DatasetSplit:
        """The seeded ``train_fraction`` subset of the training split (see :mod:`yolotl.data.selection`)."""
        return fraction_split(full, self.train_fraction, self.fraction_seed)

    def _fold_split(self, role: str) -> DatasetSplit:
        """Fold ``self.fold`` of the train split as val, the other folds as train."""
        if "train" not in self._splits:
            self.setup("fit")
        return fold_split(self._splits["train"], self.fold, self.num_folds, self.fold_seed, role)

    def class_counts(self, role: str = "train") -> dict[str, dict[str, int]]:
        """Per class: ``boxes`` (instances) and ``images`` containing it, in the ``role`` split.

        A semantic module counts ``pixels`` (labelled pixels of the class over the split's class
        maps, at the original image sizes) and ``images`` holding any; ``boxes`` repeats ``pixels``
        for callers written for detection. Each map is read once (the result is kept per role)."""
        if self.semantic:
            return self._semantic_counts(role)
        records = self.split(role).records
        counts = {name: {"boxes": 0, "images": 0} for name in self.class_names}
        for record in records:
            labels = record.labels.tolist()
            for label in labels:
                counts[self.class_names[label]]["boxes"] += 1
            for label in set(labels):
                counts[self.class_names[label]]["images"] += 1
        return counts

    def _semantic_counts(self, role: str) -> dict[str, dict[str, int]]:
        """``class_counts`` of a semantic module: pixels and images per class (cached per role)."""
        if role not in self._class_counts:
            names = self.class_names
            pixels = np.zeros(len(names), np.int64)
            images = np.zeros(len(names), np.int64)
            for counts in self._pixel_counts_of(self.split(role).records):
                pixels += counts[:len(names)]
                images += counts[:len(names)] > 0
            self._class_counts[role] = {name: {"images": int(n), "pixels": int(p), "boxes": int(p)}
                                        for name, n, p in zip(names, images, pixels)}
        return {name: dict(counts) for name, counts in self._class_counts[role].items()}

    def _pixel_counts_of(self, records: list[ImageRecord]) -> list[np.ndarray]:
        """int64 ``[256]`` value counts of each record's class map at its original size (each map
        read once per module, then kept: 2 KB an image)."""
        todo = list({r.image_path: r for r in records if r.image_path not in self._pixel_counts}.values())
        if todo:  # PNG decoding and pycocotools release the GIL: threads help
            workers = min(4, os.cpu_count() or 1, len(todo))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                self._pixel_counts.update(zip((r.image_path for r in todo), pool.map(mask_class_counts, todo)))
        return [self._pixel_counts[r.image_path] for r in records]

    def _loader(self, dataset: DetectionDataset, drop_last: bool, sampler: Any = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_detections,
            worker_init_fn=_seed_worker if self.num_workers > 0 else None,
        )


def _check_args(fmt: str, image_size: int, batch_size: int, num_workers: int) -> None:
    """Reject impossible arguments before any data is read."""
    known = list(FORMATS)
    if str(fmt).lower() not in known:
        raise ConfigError(f"Unknown dataset format '{fmt}'; use one of {known}.")
    check_image_size(image_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1.")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"num_workers={num_workers!r} must be an integer >= 0.")


def _check_folders(fmt: str, image_dir: str | None, annotation_dir: str | None) -> None:
    if str(fmt).lower() != "voc" and (image_dir is not None or annotation_dir is not None):
        raise ConfigError(f"image_dir/annotation_dir apply to format=voc only (format is '{fmt}'); "
                          f"set them to null (YOLO folders come from data.yaml, COCO's from the "
                          f"annotation file's place).")


MASK_TARGETS = (False, True, "instance", "semantic")


def _mask_targets(masks: bool | str) -> tuple[bool, bool]:
    """``masks`` as (instance masks, semantic class maps); ConfigError for another value."""
    if masks not in MASK_TARGETS or isinstance(masks, (int, float)) and not isinstance(masks, bool):
        raise ConfigError(f"masks={masks!r}: use false (boxes only), true or 'instance' (instance masks, "
                          "task=segment) or 'semantic' (class maps, task=semantic)")
    return masks in (True, "instance"), masks == "semantic"


def _check_task(fmt: str, semantic: bool) -> None:
    """Reject semantic data read for another task."""
    if str(fmt).lower() == "semantic" and not semantic:
        raise ConfigError("format=semantic holds class maps, not objects: train it with "
                          "model.detector.task=semantic (DetectionDataModule(masks='semantic') in Python).")


def _check_balance(balance: str | None) -> None:
    if balance not in BALANCE_MODES:
        raise ConfigError(f"balance={balance!r} is not a sampling mode; use one of {list(BALANCE_MODES)}.")


def resolve_num_workers(num_workers: int | str) -> int:
    """``"auto"`` -> one loader worker per CPU core the training step does not need (at most 4)."""
    if num_workers != "auto":
        return num_workers  # type: ignore[return-value]  # checked by _check_args
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, max(0, cores - 1))


def multi_scale_size(image_size: int, multi_scale: float, seed: Any) -> int:
    """A random multiple of 32 in ``image_size * (1 +- multi_scale)``, from ``seed`` (deterministic)."""
    low = max(32, math.ceil(image_size * (1 - multi_scale) / 32) * 32)
    high = max(low, int(image_size * (1 + multi_scale)) // 32 * 32)
    return int(np.random.default_rng(seed).integers(low // 32, high // 32 + 1)) * 32


def resize_batch(batch: tuple[torch.Tensor, list[dict[str, Any]]], size: int) -> tuple[torch.Tensor, list]:
    """Resize square images ``[B, 3, S, S]`` to ``size`` and scale the target boxes with them
    (and resize instance ``masks`` and ``semantic`` class maps, nearest neighbour)."""
    images, targets = batch
    if images.shape[-1] == size:
        return batch
    factor = size / images.shape[-1]
    images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    targets = [{**t, "boxes": t["boxes"] * factor} | _resized_masks(t, size) | _resized_semantic(t, size)
               for t in targets]
    return images, targets


def _resized_masks(target: dict[str, Any], size: int) -> dict[str, torch.Tensor]:
    """``{"masks": [N, size, size]}`` resized from the target's masks ({} without masks)."""
    if "masks" not in target:
        return {}
    masks = target["masks"]
    if not len(masks):
        return {"masks": masks.new_zeros((0, size, size))}
    resized = torch.nn.functional.interpolate(masks[None].float(), size=(size, size), mode="nearest")
    return {"masks": resized[0].to(masks.dtype)}


def _resized_semantic(target: dict[str, Any], size: int) -> dict[str, torch.Tensor]:
    """``{"semantic": [size, size]}`` resized (nearest) from the target's class map ({} without one)."""
    if "semantic" not in target:
        return {}
    classes = target["semantic"]
    resized = torch.nn.functional.interpolate(classes[None, None].float(), size=(size, size),
                                              mode="nearest-exact")  # centred, as the images' bilinear
    return {"semantic": resized[0, 0].to(classes.dtype)}


def _seed_worker(worker_id: int) -> None:
    """Give each worker its own augmentation stream (albumentations keeps its own RNG)."""
    seed = torch.initial_seed() % 2**32  # base seed + worker id (once per worker process)
    random.seed(seed)
    np.random.seed(seed)
    info = get_worker_info()
    if info is not None:
        seed_pipelines([getattr(info.dataset, name, None) for name in ("transform", "mosaic_transform")], seed)
    del worker_id
