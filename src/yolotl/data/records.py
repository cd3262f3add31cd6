"""The records every format reader yields: one :class:`ImageRecord` per image, gathered with the
reader's :class:`~yolotl.data.findings.FindingLog` into a :class:`DatasetSplit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolotl.data.findings import FindingLog

__all__ = ["DatasetSplit", "ImageRecord"]


@dataclass(frozen=True)
class ImageRecord:
    """One image and its objects, in the image's own pixel frame.

    ``boxes`` is float32 ``[N, 4]`` xyxy in absolute, 0-based continuous pixel coordinates of the
    original image; ``labels`` is int64 ``[N]``; ``width``/``height`` are the original size.
    ``label_file`` is the annotation file the boxes came from (YOLO txt, VOC XML, COCO JSON), so
    a report can name it; None when unknown.
    """

    image_path: Path
    boxes: np.ndarray
    labels: np.ndarray
    width: int
    height: int
    label_file: Path | None = None

    @property
    def num_objects(self) -> int:
        """Number of boxes (0 for a background image)."""
        return int(self.labels.shape[0])


@dataclass
class DatasetSplit:
    """All records of one split of one dataset, with its class names and its findings (what the
    reader fixed or skipped; after a DataModule's check, what the health check found too)."""

    name: str
    root: Path
    records: list[ImageRecord]
    class_names: list[str]
    findings: FindingLog = field(default_factory=FindingLog)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_boxes(self) -> int:
        """Total number of boxes kept in this split."""
        return sum(record.num_objects for record in self.records)
