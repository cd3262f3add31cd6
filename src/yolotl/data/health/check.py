"""``check_dataset``: read every split of a dataset leniently, decode every image (and every class map
of semantic data), check the boxes, masks and identical images, and return a :class:`HealthReport`.
The same steps run inside :class:`~yolotl.DetectionDataModule` ``setup()`` before its policy is
applied."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yolotl.data.formats import FORMATS, available_splits, read_split
from yolotl.data.formats._common import IMAGE_SUFFIXES, split_aliases
from yolotl.data.formats.voc import layout_folders, referenced_images
from yolotl.data.formats._voc_layout import xml_files
from yolotl.data.health.boxes import area_outliers, box_findings
from yolotl.data.health.classes import class_findings
from yolotl.data.health.duplicates import duplicate_image_findings
from yolotl.data.findings import DATASET_SCOPE, Finding
from yolotl.data.health.images import ImageInfo, image_findings, inspect_images
from yolotl.data.health.masks import mask_findings
from yolotl.data.health.policy import apply_fix
from yolotl.data.health.report import HealthReport, SplitStats
from yolotl.data.health.semantic import (
    MaskInfo,
    inspect_masks,
    semantic_class_findings,
    semantic_mask_findings,
    semantic_masks,
)
from yolotl.data.health.sequences import sequence_findings
from yolotl.data.records import DatasetSplit, ImageRecord
from yolotl.errors import ConfigError, DatasetError

__all__ = ["CheckOptions", "check_dataset", "class_split_findings", "dataset_findings",
           "inspect_splits", "reader_findings", "sequences_checked"]

_CANONICAL = ("train", "val", "test")


@dataclass(frozen=True)
class CheckOptions:
    """Thresholds of the checks. ``area_outlier_ratio=None`` turns the area-outlier hint off;
    ``threads=None`` decodes with one thread per core (at most 8). ``sequence_leakage``: look for
    frames of one sequence on both sides of a split (:mod:`~yolotl.data.health.sequences`); None:
    only in semantic segmentation data (numbered photos such as BCCD's ``BloodImage_00001`` are no
    video, so detection data is looked at only when asked)."""

    tiny_box_px: float = 2.0
    near_duplicate_iou: float = 0.9
    area_outlier_ratio: float | None = 10.0
    threads: int | None = None
    sequence_leakage: bool | None = None

    def __post_init__(self) -> None:
        if not self.tiny_box_px >= 0:
            raise ConfigError(f"tiny_box_px={self.tiny_box_px} must be >= 0 (0 turns it off).")
        if not 0 < self.near_duplicate_iou <= 1:
            raise ConfigError(f"near_duplicate_iou={self.near_duplicate_iou} must be in (0, 1].")
        if self.area_outlier_ratio is not None and not self.area_outlier_ratio > 1:
            raise ConfigError(f"area_outlier_ratio={self.area_outlier_ratio} must be > 1 or None.")


def reader_findings(splits: Mapping[str, DatasetSplit]) -> list[Finding]:
    """The readers' findings (already applied: clipped, dropped, skipped while reading)."""
    return [finding for split in splits.values() for finding in split.findings]


def inspect_splits(
    splits: Mapping[str, DatasetSplit],
    options: CheckOptions,
    infos: dict[Path, ImageInfo],
    fresh: Sequence[str] | None = None,
    rank: Mapping[str, int] | None = None,
    masks: dict[Path, MaskInfo] | None = None,
) -> list[Finding]:
    """Findings beyond the readers' logs: decoded images, boxes, segments and class maps of the
    ``fresh`` splits (default all), identical images (and interleaved sequences, see
    :class:`CheckOptions`) across all ``splits``. ``infos`` and ``masks`` cache decoded images and
    class maps (both updated)."""
    fresh = list(splits) if fresh is None else list(fresh)
    masks = {} if masks is None else masks
    todo = [r.image_path for name in fresh for r in splits[name].records
            if r.image_path not in infos]
    infos.update(inspect_images(todo, options.threads))
    todo = [p for name in fresh for p in semantic_masks(splits[name].records) if p not in masks]
    masks.update(inspect_masks(todo, options.threads))
    findings: list[Finding] = []
    for name in fresh:
        split = splits[name]
        findings += image_findings(name, split.records, infos)
        findings += box_findings(name, split.records, split.class_names, options.tiny_box_px,
                                 options.near_duplicate_iou)
        findings += mask_findings(name, split.records, split.class_names)
        findings += semantic_mask_findings(name, split.records, masks, infos, split.class_names)
    records = {name: split.records for name, split in splits.items()}
    findings += duplicate_image_findings(records, infos, rank)
    if sequences_checked(options, records):
        root = str(next(iter(splits.values())).root)
        findings += sequence_findings(records, root, fresh, rank)
    if options.area_outlier_ratio is not None and splits:
        names = next(iter(splits.values())).class_names
        outliers = area_outliers(records, names, options.area_outlier_ratio)
        findings += [f for f in outliers if f.split in fresh]
    return findings


def sequences_checked(options: CheckOptions, splits: Mapping[str, Sequence[ImageRecord]]) -> bool:
    """Whether :func:`inspect_splits` looks for interleaved sequences in ``splits`` (the option,
    or for None: some split holds semantic records)."""
    if options.sequence_leakage is not None:
        return options.sequence_leakage
    return any(semantic_masks(records) for records in splits.values())


def class_split_findings(
    splits: Mapping[str, Sequence[ImageRecord]],
    class_names: Sequence[str],
    train: str | None,
    file: str,
    fresh: Sequence[str] | None = None,
    masks: Mapping[Path, MaskInfo] | None = None,
) -> list[Finding]:
    """Classes across splits, counted on what the fix policy left: boxes of every record
    (:func:`~yolotl.data.health.classes.class_findings`) and class-map pixels of semantic records
    (:func:`~yolotl.data.health.semantic.semantic_class_findings`)."""
    findings = class_findings(splits, class_names, train, file, fresh)
    return findings + semantic_class_findings(splits, masks or {}, class_names, train, file, fresh)


def dataset_findings(
    format: str,  # noqa: A002
    root: str | Path,
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> list[Finding]:
    """Findings about files outside every split: VOC images (in the image folder, next to a flat
    annotation folder) that no XML refers to."""
    root = Path(root)
    if format != "voc":
        return []
    images, annotations = layout_folders(root, image_dir, annotation_dir)
    if images is None or annotations is None or root in (images, annotations) or (
            images == annotations or not xml_files(annotations)):
        return []  # split folders or images beside their XMLs: nothing lies outside a split
    referenced = referenced_images(annotations)
    detail = f"no {annotations.name}/*.xml refers to it"
    return [Finding(DATASET_SCOPE, "unlisted_image", str(path), detail)
            for path in sorted(images.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in referenced]


def check_dataset(
    root: str | Path,
    format: str = "yolo",  # noqa: A002 - the user-facing config name
    splits: Sequence[str] | None = None,
    class_names: list[str] | None = None,
    tiny_box_px: float = 2.0,
    near_duplicate_iou: float = 0.9,
    area_outlier_ratio: float | None = 10.0,
    threads: int | None = None,
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
    train_split: str | None = None,
    sequence_leakage: bool | None = None,
) -> HealthReport:
    """Check a YOLO, VOC, COCO or semantic dataset and report what is wrong, per split; nothing is
    changed.

    ``splits=None`` checks train, val and test (under any alias) where they exist, else every
    split found. Every image is decoded once. Statistics count what ``policy="fix"`` would keep;
    classes missing from the train split, or with only a handful of boxes there, are reported
    (``class_missing_in_train``, ``rare_class``). ``image_dir``/``annotation_dir``: the VOC folders
    (None: found automatically). ``train_split``: the split the class counts are judged on (None:
    the one named train, under any alias, or trainval). ``sequence_leakage``: look for frames of
    one sequence in two splits (None: in semantic data only; see :class:`CheckOptions`). A missing
    root, split or class list raises DatasetError; per-file problems are findings.
    """
    start = time.perf_counter()
    options = CheckOptions(tiny_box_px, near_duplicate_iou, area_outlier_ratio, threads,
                           sequence_leakage)
    fmt = _reader_format(format)
    folders = {"image_dir": image_dir, "annotation_dir": annotation_dir}
    names = list(splits) if splits is not None else _default_splits(fmt, root, folders)
    read: dict[str, DatasetSplit] = {}
    for name in names:
        given = class_names or (next(iter(read.values())).class_names if read else None)
        read[name] = read_split(fmt, root, name, given, **folders)
    masks: dict[Path, MaskInfo] = {}
    findings = reader_findings(read) + inspect_splits(read, options, {}, masks=masks)
    findings += dataset_findings(fmt, read[names[0]].root, **folders)
    fixed = {name: apply_fix(split, findings) for name, split in read.items()}
    class_list = read[names[0]].class_names
    train = train_split if train_split in names else next(
        (n for n in names if n.lower() in (*split_aliases("train"), "trainval")), None)
    findings += class_split_findings({n: s.records for n, s in fixed.items()}, class_list, train,
                                     str(read[names[0]].root), masks=masks)
    stats = {n: SplitStats.of(s.records, class_list, masks) for n, s in fixed.items()}
    return HealthReport(
        root=str(read[names[0]].root), format=fmt, class_names=class_list, splits=names,
        findings=findings, stats=stats,
        seconds=time.perf_counter() - start, options=asdict(options))


def _reader_format(format: str) -> str:  # noqa: A002
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown dataset format '{format}'; use one of {list(FORMATS)}.")
    return fmt


def _default_splits(fmt: str, root: str | Path, folders: Mapping[str, Any]) -> list[str]:
    """train, val, test as the dataset spells them (first alias found), else every split found."""
    found = available_splits(fmt, root, **folders)
    chosen = [next((a for a in split_aliases(role) if a in found), None) for role in _CANONICAL]
    chosen = [name for name in chosen if name is not None] or found
    if not chosen:
        raise DatasetError(f"No splits found in {root} for format '{fmt}'; check data.root and "
                           f"data.format, or pass splits=[...].")
    return chosen
