"""Format readers: one per annotation format, all returning the same :class:`DatasetSplit`."""

from __future__ import annotations

from pathlib import Path

from yolotl.data.formats import coco, voc, yolo
from yolotl.data.formats._common import SplitNotFoundError, check_root
from yolotl.data.formats.coco import read_coco_split
from yolotl.data.formats.voc import read_voc_split
from yolotl.data.formats.yolo import read_yolo_split
from yolotl.data.records import DatasetSplit
from yolotl.errors import ConfigError

__all__ = [
    "FORMATS",
    "SplitNotFoundError",
    "available_splits",
    "read_coco_split",
    "read_split",
    "read_voc_split",
    "read_yolo_split",
]

FORMATS = ("yolo", "voc", "coco")


def read_split(
    format: str,  # noqa: A002 - the user-facing name in configs
    root: str | Path,
    split: str,
    class_names: list[str] | None = None,
) -> DatasetSplit:
    """Read ``split`` of the dataset at ``root`` with the reader for ``format``."""
    readers = {"yolo": read_yolo_split, "voc": read_voc_split, "coco": read_coco_split}
    reader = readers.get(str(format).lower())
    if reader is None:
        raise ConfigError(f"Unknown dataset format '{format}'; use one of {list(FORMATS)}.")
    return reader(root, split, class_names)


def available_splits(format: str, root: str | Path) -> list[str]:  # noqa: A002 - config name
    """Names of the splits the dataset at ``root`` has in ``format`` (as its files spell them)."""
    lister = {"yolo": yolo.split_names, "voc": voc.split_names, "coco": coco.split_names}.get(
        str(format).lower())
    if lister is None:
        raise ConfigError(f"Unknown dataset format '{format}'; use one of {list(FORMATS)}.")
    path = Path(root)
    return lister(path if format.lower() == "yolo" else check_root(path))
