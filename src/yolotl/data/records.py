"""The records every format reader yields: one :class:`ImageRecord` per image, gathered with the
reader's :class:`~yolotl.data.findings.FindingLog` into a :class:`DatasetSplit`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolotl.data.findings import FindingLog
from yolotl.data.segments import Segment

__all__ = ["DatasetSplit", "ImageRecord"]


@dataclass(frozen=True)
class ImageRecord:
    """One image and its objects, in the image's own pixel frame.

    ``boxes`` is float32 ``[N, 4]`` xyxy in absolute, 0-based continuous pixel coordinates of the
    original image; ``labels`` is int64 ``[N]``; ``width``/``height`` are the original size.
    ``label_file`` is the annotation file the boxes came from (YOLO txt, VOC XML, COCO JSON), so
    a report can name it; None when unknown.

    ``crowd`` and ``difficult`` are bool ``[N]`` flags aligned with ``boxes`` (empty, the default,
    means none is flagged). Both are objects evaluation ignores (:attr:`ignored`), as their
    protocols score them: a COCO ``iscrowd=1`` region (one box around many objects) is no
    training target (see :meth:`for_training`); a VOC ``difficult`` object still trains as an
    ordinary one.

    ``segments`` (instance segmentation data) holds one :class:`Segment` or None per object, as
    read (polygons or an RLE, never a raster); None, the default, means a detection record.

    ``semantic_mask`` (semantic segmentation data) is the PNG label image of the record: one class
    index per pixel (8-bit, mode L or P: a palette image's index is the class), at the image's
    size; such a record has no objects (empty ``boxes``/``labels``). The mask is decoded only when
    a sample is built. None, the default, means an instance record (whose objects a semantic run
    rasterises into a class map).
    """

    image_path: Path
    boxes: np.ndarray
    labels: np.ndarray
    width: int
    height: int
    label_file: Path | None = None
    crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    segments: tuple[Segment | None, ...] | None = None
    semantic_mask: Path | None = None

    def __post_init__(self) -> None:
        """Flags as bool ``[N]``: empty (the default) means all False; another length is an error,
        as is a ``segments`` tuple of another length."""
        for name in ("crowd", "difficult"):
            flags = np.asarray(getattr(self, name), dtype=bool).reshape(-1)
            if flags.size == 0:
                flags = np.zeros(self.num_objects, dtype=bool)
            elif flags.size != self.num_objects:
                raise ValueError(f"{name} has {flags.size} flags for {self.num_objects} boxes")
            object.__setattr__(self, name, flags)
        if self.segments is not None:
            object.__setattr__(self, "segments", tuple(self.segments))
            if len(self.segments) != self.num_objects:
                raise ValueError(f"segments has {len(self.segments)} entries for "
                                 f"{self.num_objects} boxes")

    @property
    def num_objects(self) -> int:
        """Number of boxes (0 for a background image)."""
        return int(self.labels.shape[0])

    @property
    def ignored(self) -> np.ndarray:
        """bool ``[N]``: the objects evaluation ignores (crowd regions and difficult objects)."""
        return self.crowd | self.difficult

    def select(self, keep: np.ndarray) -> ImageRecord:
        """A copy with only the objects ``keep`` (bool mask ``[N]``) selects, flags and segments
        included."""
        segments = None if self.segments is None else tuple(
            segment for segment, kept in zip(self.segments, keep) if kept)
        return dataclasses.replace(self, boxes=self.boxes[keep], labels=self.labels[keep],
                                   crowd=self.crowd[keep], difficult=self.difficult[keep],
                                   segments=segments)

    def for_training(self) -> ImageRecord:
        """This record without its crowd regions: a box around many objects is no object to learn
        (detectors usually leave them out of the targets); difficult objects stay."""
        return self.select(~self.crowd) if self.crowd.any() else self


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
