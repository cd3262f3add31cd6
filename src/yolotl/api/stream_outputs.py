"""What a prediction run writes as it goes: JSON Lines (one frame a line, flushed per frame) and an
annotated video (frame by frame, same size and frame rate as the source).

Both hold nothing but the file handle, so their memory does not grow with the run; both leave a valid
file when the run stops early (every line written is complete; ``close`` finalises the video's index).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import torch

from yolotl.data.draw import draw_detections
from yolotl.errors import DatasetError
from yolotl.inference.sources import FrameSource, native_stderr

_CONTAINERS = {".mp4", ".avi", ".mkv", ".mov"}  # kept from the source; others are written as .mp4


def detection_entries(det: dict[str, torch.Tensor], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One frame's detections as JSON-ready dicts: ``box`` (xyxy, original pixels), ``score``, ``label``,
    ``class_name``, plus ``track_id`` when tracked and ``segmentation`` (COCO RLE) for a segmenter."""
    entries = [
        {"box": [round(v, 2) for v in box], "score": round(score, 5), "label": label, "class_name": class_names[label]}
        for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())
    ]
    if "track_ids" in det:
        for entry, track in zip(entries, det["track_ids"].tolist()):
            entry["track_id"] = int(track)
    if "masks" in det:
        from yolotl.evaluation.mask_rle import encode_masks  # pycocotools, torchmetrics: only for a segmenter

        for entry, rle in zip(entries, encode_masks(det["masks"])):
            entry["segmentation"] = rle
    return entries


def frame_record(
    index: int, time: float | None, path: str | None, shape: tuple[int, ...], det: dict[str, torch.Tensor],
    class_names: Sequence[str],
) -> dict[str, Any]:
    """One JSON Lines row: ``frame`` (index in the source), ``time`` (seconds, or null), ``image`` (the
    file, for image sources), ``height``, ``width`` and ``detections`` (:func:`detection_entries`)."""
    record: dict[str, Any] = {"frame": int(index), "time": None if time is None else round(float(time), 4)}
    if path is not None:
        record["image"] = path
    record.update(height=int(shape[0]), width=int(shape[1]), detections=detection_entries(det, class_names))
    return record


def annotate(image: np.ndarray, det: dict[str, torch.Tensor], class_names: Sequence[str]) -> np.ndarray:
    """``image`` (RGB) with the boxes, classes, scores, track ids and masks drawn on a copy."""
    return draw_detections(image, det, class_names)


def annotated_image_path(out: Path, path: Path) -> Path:
    """Annotated-image name: the source name (as .jpg), numbered if two sources share a name."""
    target = out / f"{path.stem}.jpg"
    index = 1
    while target.exists():
        target = out / f"{path.stem}_{index}.jpg"
        index += 1
    return target


class JsonLinesWriter:
    """Appends one JSON object per line to ``path`` (created anew), flushed after each, so a reader or a
    crash sees only complete lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lines = 0
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "write after close"
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")  # one call: never half a line
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileWriter:
    """An annotated video written frame by frame with ``cv2.VideoWriter``; opened on the first frame (its
    size is the video's size; a later frame of another size is resized to it). ``close`` finalises it."""

    def __init__(self, path: str | Path, fps: float, fourcc: str) -> None:
        self.path, self.fps, self.fourcc = Path(path), float(fps), fourcc
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._writer: Any = None

    def write(self, image: np.ndarray) -> None:
        """Append one RGB frame."""
        height, width = image.shape[:2]
        if self._writer is None:
            self._open(width, height)
        if (width, height) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _open(self, width: int, height: int) -> None:
        with native_stderr() as said:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
        if not writer.isOpened():
            reason = said.text.strip().splitlines()[-1:] or [""]
            raise DatasetError(
                f"cannot write the annotated video {self.path} ({self.fourcc}, {width}x{height}) {reason[0]}".rstrip()
                + "; check the output folder is writable, or pass save_video=false"
            )
        self._writer, self.size = writer, (width, height)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def video_output(out: Path, frames: FrameSource, default_fps: float = 30.0, vid_stride: int = 1) -> VideoFileWriter:
    """The annotated video for ``frames`` in ``out``: named after the source (``camera0.mp4``,
    ``stream.mp4`` for live ones), in the source's container where OpenCV writes it (.mp4, .avi, .mkv,
    .mov; else .mp4) and a codec of its family (MJPG for MJPG .avi, XVID for other .avi, else MPEG-4
    ``mp4v``: H.264 encoders are not in OpenCV's wheels), at the frame rate of the frames it gets."""
    fps = frames.fps / vid_stride if frames.fps else default_fps
    if frames.kind == "video":
        source = Path(frames.name)
        suffix = source.suffix.lower() if source.suffix.lower() in _CONTAINERS else ".mp4"
        stem = source.stem
    else:
        suffix = ".mp4"
        stem = f"camera{frames.name}" if frames.kind == "camera" else "stream"
    if suffix == ".avi":
        fourcc = "MJPG" if getattr(frames, "fourcc", "") == "MJPG" else "XVID"
    else:
        fourcc = "mp4v"
    target = out / f"{stem}{suffix}"
    if frames.kind == "video" and target.resolve() == Path(frames.name).resolve():
        target = out / f"{stem}_pred{suffix}"  # output_dir is the source's folder: never write over the source
    return VideoFileWriter(target, fps, fourcc)
