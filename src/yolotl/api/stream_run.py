"""A prediction run that streams to files: JSON Lines, an annotated video or images, a summary.

What ``yolotl-predict`` runs for a video, a camera, a stream, a large image folder or any tracked run
(:func:`yolotl.api.predict_run.predict_source` chooses). Memory stays flat whatever the length: each
frame is read, detected, written and dropped. Ctrl-C (KeyboardInterrupt) ends the run cleanly: the
files are closed (the video finalised, every JSON line complete), ``summary.json`` is written, and the
summary says ``interrupted``.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import cv2

from yolotl.api.stream_predict import StreamStats, predict_stream
from yolotl.api.stream_outputs import JsonLinesWriter, annotate, annotated_image_path, frame_record, video_output
from yolotl.inference.sources import FrameSource

log = logging.getLogger("yolotl.predict")

JSONL_NAME = "predictions.jsonl"
SUMMARY_NAME = "summary.json"


def predict_to_files(
    detector: Any,
    frames: FrameSource,
    out: Path,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    classes: Sequence[int | str] | None = None,
    vid_stride: int = 1,
    batch_size: int = 8,
    track: str | None = None,
    save_video: bool = True,
    save_images: bool = True,
    progress: bool = False,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Detect in every frame of ``frames``; write ``predictions.jsonl`` (a line per frame, flushed), the
    annotated video (video, camera, stream; ``save_video``) or annotated images (image sources;
    ``save_images``) and ``summary.json`` to ``out``. Returns the summary (see :func:`_summary`).

    ``progress`` shows a bar (frames, frames per second) on an interactive stderr.
    """
    out.mkdir(parents=True, exist_ok=True)
    stats = StreamStats()
    interrupted = False
    with ExitStack() as files:
        jsonl = files.enter_context(JsonLinesWriter(out / JSONL_NAME))
        video = files.enter_context(video_output(out, frames, vid_stride=vid_stride)) if (
            save_video and frames.kind != "images") else None
        bar = files.enter_context(_progress(progress, frames))
        stream = predict_stream(detector, frames, score_threshold, iou_threshold, max_detections, classes,
                                vid_stride=vid_stride, batch_size=batch_size, track=track, stats=stats)
        files.callback(stream.close)
        names = list(detector.class_names)
        try:
            for result in stream:
                start = time.perf_counter()
                record = frame_record(result.index, result.time, result.path, result.image.shape,
                                      result.detections, names)
                drawn = annotate(result.image, result.detections, names) if (
                    video is not None or (save_images and result.path is not None)) else None
                with _interrupts_deferred():  # a frame's line and its picture land together or not at all
                    jsonl.write(record)
                    if drawn is not None and video is not None:
                        video.write(drawn)
                    elif drawn is not None:
                        target = annotated_image_path(out, Path(result.path))
                        cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                stats.seconds["write"] += time.perf_counter() - start
                bar.update(1)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted (Ctrl-C) after %d frames; closing the files", stats.frames)
        with _no_interrupts():
            files.close()  # the video's index, the last JSON line: finished even on a second Ctrl-C
            summary = _summary(stats, frames, out, jsonl.path, video, names, checkpoint, interrupted)
            (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    return summary


def _summary(
    stats: StreamStats, frames: FrameSource, out: Path, jsonl: Path, video: Any, names: Sequence[str],
    checkpoint: str | None, interrupted: bool,
) -> dict[str, Any]:
    """``source``, ``kind``, ``checkpoint``, ``frames`` (lines in the JSON Lines), ``wall_seconds``,
    ``seconds`` and ``fps`` per stage (``overall``: frames over the wall clock), ``tracks`` (unique tracks
    per class, None untracked), ``predictions`` / ``video`` (paths; ``video`` None when not written),
    ``skipped_count`` / ``skipped`` (unreadable image files: their count and the first 100), ``stopped``
    (why a source ended early) and ``interrupted``."""
    fps = stats.fps()
    return {
        "source": frames.name,
        "kind": frames.kind,
        "checkpoint": checkpoint,
        "frames": stats.frames,
        "wall_seconds": round(time.perf_counter() - stats.started, 3),
        "seconds": {k: round(v, 3) for k, v in stats.seconds.items()},
        "fps": {k: None if v is None else round(v, 2) for k, v in fps.items()},
        "tracks": None if stats.tracks is None else stats.tracks.counts(names),
        "output_dir": str(out),
        "predictions": str(jsonl),
        "video": str(video.path) if video is not None and video.frames else None,
        "skipped_count": frames.skipped_count,
        "skipped": list(frames.skipped),
        "stopped": frames.stopped,
        "interrupted": interrupted,
    }


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ctrl-C is ignored inside (main thread only), so closing the files cannot be cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C inside is held until the block ends, then raised (main thread only): the block's writes
    finish together."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):  # Python's handler raises KeyboardInterrupt; SIG_IGN stays ignored
        previous(signal.SIGINT, None)


@contextmanager
def _progress(enabled: bool, frames: FrameSource) -> Iterator[Any]:
    """A tqdm bar (frames done, frames per second; the total when known), shown on a terminal only."""
    from tqdm.auto import tqdm

    bar = tqdm(total=frames.frame_count, unit="frame", desc=Path(frames.name).name or frames.name,
               disable=None if enabled else True, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()

