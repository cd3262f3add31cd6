"""Datasets for yolotl: format readers, the synthetic dataset, transforms, DataModule.

``DetectionDataModule`` is imported on first use, so the readers and the synthetic dataset
can be used without paying for importing Lightning (seconds).
"""

from typing import TYPE_CHECKING, Any

import cv2

# OpenCV's own thread pool and forked DataLoader workers do not mix: a worker forked while one of
# the pool's threads holds a lock waits on it for good (a run hung so at its test split). The
# loaders parallelise over processes, the image cache over its own threads; OpenCV runs serially.
cv2.setNumThreads(0)

from yolotl.data.augment import AUGMENT_PRESETS, AugmentSettings, resolve_augment
from yolotl.data.cache import ImageCache
from yolotl.data.augment_grid import save_augmentation_grid
from yolotl.data.dataset import DetectionDataset, collate_detections, read_image
from yolotl.data.draw import draw_detections
from yolotl.data.findings import Finding, FindingLog
from yolotl.data.formats import (
    FORMATS,
    SplitNotFoundError,
    prepare_dataset,
    read_coco_split,
    read_semantic_split,
    read_split,
    read_voc_split,
    read_yolo_split,
)
from yolotl.data.health import HealthReport, check_dataset
from yolotl.data.profile import DatasetProfile, profile_records
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.data.settings import CheckSettings, LoaderSettings, ReadSettings, Selection
from yolotl.data.sampling import SampleKey, TrainSampler, repeat_factors
from yolotl.data.selection import fraction_indices, kfold_assignment
from yolotl.data.splits import CheckedSplits, load_checked_splits
from yolotl.data.synthetic import SYNTHETIC_CLASS_NAMES, make_synthetic_dataset
from yolotl.data.transforms import (
    build_eval_transforms,
    build_train_transforms,
    letterbox_params,
)

if TYPE_CHECKING:
    from yolotl.data.datamodule import DetectionDataModule

__all__ = [
    "AUGMENT_PRESETS",
    "AugmentSettings",
    "DatasetProfile",
    "ImageCache",
    "profile_records",
    "SampleKey",
    "TrainSampler",
    "kfold_assignment",
    "fraction_indices",
    "CheckedSplits",
    "load_checked_splits",
    "draw_detections",
    "HealthReport",
    "check_dataset",
    "repeat_factors",
    "resolve_augment",
    "save_augmentation_grid",
    "CheckSettings",
    "FORMATS",
    "LoaderSettings",
    "ReadSettings",
    "SYNTHETIC_CLASS_NAMES",
    "Selection",
    "SplitNotFoundError",
    "DatasetSplit",
    "Finding",
    "FindingLog",
    "DetectionDataModule",
    "DetectionDataset",
    "ImageRecord",
    "build_eval_transforms",
    "build_train_transforms",
    "collate_detections",
    "letterbox_params",
    "make_synthetic_dataset",
    "prepare_dataset",
    "read_coco_split",
    "read_image",
    "read_semantic_split",
    "read_split",
    "read_voc_split",
    "read_yolo_split",
]


def __getattr__(name: str) -> Any:
    """Import ``DetectionDataModule`` (and with it Lightning) lazily."""
    if name == "DetectionDataModule":
        from yolotl.data.datamodule import DetectionDataModule

        return DetectionDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
