"""``predict_stream(model, source)``: detections frame by frame, as a generator a notebook can stop.

    for result in yolotl.predict_stream("best.ckpt", "traffic.mp4", track="bytetrack"):
        print(result.index, result.detections["track_ids"])

Any runtime with yolotl's ``predict()`` contract works (``TorchDetector``, ``OnnxDetector``, OpenVINO):
only ``predict``, ``class_names`` and ``image_size`` are used. Frames come from
:func:`yolotl.inference.sources.open_source` (video file, camera, stream URL, frame folder, images),
tracking from :mod:`yolotl.inference.tracking`. Nothing is kept between frames but the tracker's state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolotl.errors import ConfigError
from yolotl.inference.sources import Frame, FrameSource, open_source
from yolotl.inference.tracking import TrackCounter, make_tracker

STAGES = ("decode", "model", "track", "write")
TRACK_LOW_SCORE = 0.1  # with a tracker, predict down to this score: ByteTrack's second pass uses 0.1..threshold


@dataclass
class FrameResult:
    """One frame's detections. ``index``: the frame's number in the source; ``time``: seconds from its
    start (None for image files); ``image``: the frame, uint8 RGB ``[H, W, 3]``; ``detections``: the
    ``predict()`` dict (boxes xyxy in frame pixels, scores, labels[, masks]) plus ``track_ids`` (int64)
    when tracking, holding only the tracked rows; ``path``: the image file, for image sources."""

    index: int
    time: float | None
    image: np.ndarray
    detections: dict[str, torch.Tensor]
    path: str | None = None


@dataclass
class StreamStats:
    """What a stream run measured: frames done, seconds per stage (``decode``: reading and decoding the
    source; ``model``: ``predict()``, pre- and post-processing included; ``track``; ``write``: filled in by
    whoever writes the outputs), and unique tracks per class when tracking."""

    frames: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    tracks: TrackCounter | None = None
    started: float = field(default_factory=time.perf_counter)

    def fps(self) -> dict[str, float | None]:
        """Frames per second overall (wall clock) and of each stage alone (None for a stage that did not run)."""
        wall = time.perf_counter() - self.started
        rates: dict[str, float | None] = {"overall": self.frames / wall if self.frames and wall > 0 else None}
        for stage in STAGES:
            spent = self.seconds[stage]
            rates[stage] = self.frames / spent if self.frames and spent > 0 else None
        return rates


def predict_stream(
    model: Any,
    source: str | Path | int | FrameSource,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    classes: Sequence[int | str] | None = None,
    vid_stride: int = 1,
    batch_size: int = 1,
    track: str | None = None,
    device: str = "auto",
    stats: StreamStats | None = None,
) -> Iterator[FrameResult]:
    """Detect (and track) frame by frame in ``source``; yields one :class:`FrameResult` per frame read.

    ``model``: a checkpoint or ``.onnx`` path (:func:`~yolotl.inference.loading.load_predictor` on
    ``device``) or an object with ``predict()``. ``source``: see :func:`~yolotl.inference.sources.open_source`;
    ``vid_stride`` n keeps every n-th frame. ``batch_size`` frames go through ``predict()`` at once (1 for
    cameras and streams, whose next frame is not there yet). ``track="bytetrack"`` keeps an id per object
    (:class:`~yolotl.inference.tracking.ByteTracker`; detections below ``score_threshold`` may then be
    kept when they continue a track). Pass ``stats`` to read frame rates and track counts afterwards.
    The source is opened at the first ``next()`` and closed when the generator ends or is closed. A semantic
    segmenter (``task=semantic``) is refused with a ConfigError at the first ``next()``.
    """
    if isinstance(model, (str, Path)):
        from yolotl.inference.loading import load_predictor  # the models and timm: only for a path

        model = load_predictor(model, device)
    detector = model
    if getattr(detector, "semantic", False):
        raise ConfigError("this model is a semantic segmenter (task=semantic), which predicts images for now, not "
                          "frame streams; call its predict() on the frames (a class map each) or run yolotl-predict "
                          "on an image folder")
    frames = open_source(source, vid_stride)
    stats = stats if stats is not None else StreamStats()
    try:
        rate = frames.fps / vid_stride if frames.fps else None
        tracker = make_tracker(track, score_threshold, rate)
        if tracker is not None and stats.tracks is None:
            stats.tracks = TrackCounter()
        threshold = min(score_threshold, TRACK_LOW_SCORE) if tracker is not None else score_threshold
        batch = 1 if frames.live else max(1, int(batch_size))
        reading = iter(frames)
        while True:
            start = time.perf_counter()
            chunk: list[Frame] = list(islice(reading, batch))
            stats.seconds["decode"] += time.perf_counter() - start
            if not chunk:
                return
            start = time.perf_counter()
            found = detector.predict([f.image for f in chunk], score_threshold=threshold, iou_threshold=iou_threshold,
                                     max_detections=max_detections, classes=classes)
            stats.seconds["model"] += time.perf_counter() - start
            for frame, det in zip(chunk, found):
                if tracker is not None:
                    start = time.perf_counter()
                    det = tracker.update(det)
                    stats.tracks.add(det["track_ids"], det["labels"])
                    stats.seconds["track"] += time.perf_counter() - start
                stats.frames += 1
                yield FrameResult(frame.index, frame.time, frame.image, det, frame.path)
    finally:
        if frames is not source:
            frames.close()
