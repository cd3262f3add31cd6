"""Dataset health: find what is wrong with a dataset before it silently costs accuracy.

:func:`check_dataset` reads a YOLO, VOC, COCO or semantic dataset (readers are lenient: a bad file
becomes a finding, not an exception), decodes every image (and class map), checks boxes, masks and
identical images within and across splits (and, for semantic data, frames of one video sequence
on both sides of a split), and returns a :class:`HealthReport` (terminal table, JSON, CSV). What each kind of
finding means and what ``policy="fix"`` does with it is in :mod:`yolotl.data.catalogue`;
:class:`~yolotl.data.splits.CheckedSplits` (what :class:`~yolotl.DetectionDataModule` ``setup()``
uses) runs the same checks and applies its policy; :class:`ImageInfoStore` keeps the decode results
on disk so each image is decoded once per dataset, not once per process.
"""

from yolotl.data.health.check import (
    CheckOptions,
    check_dataset,
    class_split_findings,
    dataset_findings,
    inspect_splits,
    reader_findings,
    sequences_checked,
)
from yolotl.data.findings import DATASET_SCOPE, Finding
from yolotl.data.health.classes import RARE_CLASS_BOXES, class_findings
from yolotl.data.health.images import ImageInfo, inspect_image, inspect_images
from yolotl.data.health.policy import POLICIES, apply_fix, check_policy, strict_error
from yolotl.data.health.report import HealthReport, SplitStats, summarise
from yolotl.data.health.semantic import (
    MaskInfo,
    class_pixel_counts,
    inspect_mask,
    inspect_masks,
    semantic_class_findings,
    semantic_mask_findings,
)
from yolotl.data.health.sequences import sequence_findings, sequence_frame
from yolotl.data.health.store import ImageInfoStore, default_store_dir

__all__ = [
    "DATASET_SCOPE",
    "POLICIES",
    "RARE_CLASS_BOXES",
    "CheckOptions",
    "Finding",
    "HealthReport",
    "ImageInfo",
    "ImageInfoStore",
    "MaskInfo",
    "SplitStats",
    "apply_fix",
    "check_dataset",
    "check_policy",
    "class_findings",
    "class_pixel_counts",
    "class_split_findings",
    "default_store_dir",
    "dataset_findings",
    "inspect_image",
    "inspect_images",
    "inspect_mask",
    "inspect_masks",
    "inspect_splits",
    "reader_findings",
    "semantic_class_findings",
    "semantic_mask_findings",
    "sequence_findings",
    "sequence_frame",
    "sequences_checked",
    "strict_error",
    "summarise",
]
