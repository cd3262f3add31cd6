"""Format readers: one per annotation format, all returning the same :class:`DatasetSplit`.

``synthetic`` is one of them: :func:`prepare_dataset` writes the built-in dataset to its root (once),
and from then on it is read as the YOLO folder it is. Every caller (the DataModule, the health check,
``yolotl-check-data``, the recipe) goes through these two functions instead of special-casing it.

``semantic`` reads semantic segmentation datasets (an image and a PNG class map each; Roboflow PNG
masks, VOC ``SegmentationClass`` or image/mask folder pairs, found automatically)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolotl.data.formats import coco, semantic, voc, yolo
from yolotl.data.formats._common import SplitNotFoundError, check_root
from yolotl.data.formats.coco import read_coco_split
from yolotl.data.formats.semantic import read_semantic_split
from yolotl.data.formats.voc import read_voc_split
from yolotl.data.formats.yolo import read_yolo_split
from yolotl.data.records import DatasetSplit
from yolotl.errors import ConfigError

__all__ = [
    "FORMATS",
    "SplitNotFoundError",
    "available_splits",
    "prepare_dataset",
    "read_coco_split",
    "read_semantic_split",
    "read_split",
    "read_voc_split",
    "read_yolo_split",
]

FORMATS = ("yolo", "voc", "coco", "synthetic", "semantic")
_READ_AS = {"synthetic": "yolo"}  # generated formats: written to disk by prepare_dataset, then read as this


def prepare_dataset(format: str, root: str | Path, synthetic: Mapping[str, Any] | None = None) -> None:  # noqa: A002
    """Write a generated dataset to ``root`` before it is read: ``format="synthetic"`` writes
    :func:`~yolotl.data.synthetic.make_synthetic_dataset` with the ``synthetic`` settings (a no-op when the
    same dataset is there already); every other format is read as it lies."""
    if str(format).lower() == "synthetic":
        from yolotl.data.synthetic import make_synthetic_dataset

        make_synthetic_dataset(root, **dict(synthetic or {}))


def read_split(
    format: str,  # noqa: A002 - the user-facing name in configs
    root: str | Path,
    split: str,
    class_names: list[str] | None = None,
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> DatasetSplit:
    """Read ``split`` of the dataset at ``root`` with the reader for ``format``.

    ``image_dir`` and ``annotation_dir`` (VOC only; None: found automatically) name the folders
    of the images and the XML files, relative to ``root`` or absolute."""
    fmt = _check_format(format, image_dir, annotation_dir)
    if fmt == "voc":
        return read_voc_split(root, split, class_names, image_dir, annotation_dir)
    reader = {"yolo": read_yolo_split, "coco": read_coco_split, "semantic": read_semantic_split}[fmt]
    return reader(root, split, class_names)


def available_splits(
    format: str,  # noqa: A002 - config name
    root: str | Path,
    image_dir: str | Path | None = None,
    annotation_dir: str | Path | None = None,
) -> list[str]:
    """Names of the splits the dataset at ``root`` has in ``format`` (as its files spell them)."""
    fmt = _check_format(format, image_dir, annotation_dir)
    path = Path(root)
    if fmt == "voc":
        return voc.split_names(check_root(path), image_dir, annotation_dir)
    if fmt == "yolo":
        return yolo.split_names(path)
    if fmt == "semantic":
        return semantic.split_names(check_root(path))
    return coco.split_names(check_root(path))


def _check_format(
    format: str,  # noqa: A002 - config name
    image_dir: str | Path | None,
    annotation_dir: str | Path | None,
) -> str:
    """The reader's format, lower case (``synthetic`` is read as ``yolo``); ConfigError if unknown or given
    folder options it does not take."""
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown dataset format '{format}'; use one of {list(FORMATS)}.")
    if fmt != "voc" and (image_dir is not None or annotation_dir is not None):
        raise ConfigError(
            f"image_dir/annotation_dir apply to format=voc only (format is '{format}'); remove "
            f"them (YOLO folders come from data.yaml, COCO's from the annotation file's place, "
            f"semantic datasets' from their layout)."
        )
    return _READ_AS.get(fmt, fmt)
