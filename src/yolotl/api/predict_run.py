"""``predict_source(...)``: detect objects in images, frame folders, videos, cameras and streams; save
annotated images or video and the predictions.

A plain function; ``yolotl-predict`` (:mod:`yolotl.cli.predict`) is its Hydra shell::

    yolotl-predict ckpt=outputs/<run>/checkpoints/best.ckpt source=photos/ score_threshold=0.4
    yolotl-predict ckpt=model.onnx source='images/*.jpg' classes=[WBC]
    yolotl-predict ckpt=best.ckpt source=traffic.mp4 track=bytetrack
    yolotl-predict ckpt=best.ckpt source=0          # a camera; Ctrl-C stops it

Up to :data:`JSON_LINES_ABOVE` images without tracking give one ``predictions.json`` (as before); a video,
a camera, a stream, a larger image folder or a tracked run streams to ``predictions.jsonl`` instead
(:func:`yolotl.api.stream_run.predict_to_files`), so memory does not grow with the number of frames.

A semantic segmenter (``task=semantic``) predicts images (a file, a folder, a glob) for now: an overlay and a
PNG label map per image and one ``predictions.json`` (:mod:`yolotl.api.semantic_outputs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from yolotl.api.run_folder import run_dir_of
from yolotl.api.semantic_outputs import LABELS_DIR, class_shares, free_stem, overlay_class_map, write_label_map
from yolotl.api.stream_outputs import annotated_image_path, detection_entries
from yolotl.api.stream_run import predict_to_files
from yolotl.data.dataset import read_image
from yolotl.data.draw import draw_detections
from yolotl.errors import ConfigError, DatasetError
from yolotl.inference.loading import load_predictor
from yolotl.inference.predict import check_semantic_options
from yolotl.inference.sources import ImageFiles, find_images, open_source, source_kind
from yolotl.inference.tracking import tracking

log = logging.getLogger("yolotl.predict")

__all__ = ["JSON_LINES_ABOVE", "find_images", "predict_source"]

JSON_LINES_ABOVE = 1000
"""Image runs of more images than this write ``predictions.jsonl`` (a line per image, flushed as it comes)
instead of one ``predictions.json`` built in memory."""


def predict_source(
    checkpoint: str | Path,
    source: str | Path | int,
    output_dir: str | Path | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    classes: Sequence[int | str] | None = None,
    save_images: bool = True,
    batch_size: int = 8,
    device: str = "auto",
    vid_stride: int = 1,
    track: str | None = None,
    save_video: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Detect in every image or frame of ``source``; write the predictions (and annotated copies) to ``output_dir``.

    ``source``: an image, a folder or glob of images (in name order), a video file, a camera index (``0``)
    or a stream URL (:func:`yolotl.inference.sources.open_source`); ``vid_stride`` n keeps every n-th frame.
    ``track="bytetrack"`` keeps an id per object across frames.

    Up to :data:`JSON_LINES_ABOVE` images, untracked: ``predictions.json`` (``images``: a list of
    ``{image, height, width, detections}``) and annotated copies; the result is that JSON plus
    ``output_dir``. Otherwise :func:`~yolotl.api.stream_run.predict_to_files`: ``predictions.jsonl``,
    the annotated video (``save_video``) or images (``save_images``), ``summary.json``; the result is the
    summary (frames, frames per second per stage, tracks per class, ``interrupted`` after Ctrl-C).

    A segmenting detector's masks are drawn on the copies and written in the JSON as COCO RLE
    (``segmentation``: ``size`` [h, w] and compressed ``counts``; ``pycocotools.mask.decode`` reads it).
    One unreadable file in a folder or glob is skipped, listed under ``skipped`` and logged; a single
    unreadable file given by name, a video that cannot be decoded, a camera or stream that does not open
    is an error (:class:`~yolotl.DatasetError`, one line naming it and the fix).

    A semantic segmenter (``task=semantic``) takes images only (a video, camera, stream or ``track`` is a
    ConfigError) and writes, per image, ``labels/<name>.png`` (the class index of every pixel, 8-bit, the
    input image's size) and, with ``save_images``, ``<name>.jpg`` (the class colours blended in, a legend of
    the classes present); ``predictions.json`` lists per image the classes present with their pixel
    counts and shares (``classes``), not the map. ``classes`` or thresholds other than the defaults are a
    ConfigError for it (every pixel gets its most probable class).
    """
    detector = load_predictor(checkpoint, device)
    out = Path(output_dir) if output_dir is not None else _default_output(Path(checkpoint))
    if getattr(detector, "semantic", False):
        _check_semantic_run(checkpoint, source, track, score_threshold, iou_threshold, max_detections, classes)
        with open_source(source, vid_stride) as frames:
            return _predict_class_maps(detector, frames.paths, out, checkpoint, source, save_images, batch_size)
    with open_source(source, vid_stride) as frames:
        if isinstance(frames, ImageFiles) and len(frames.paths) <= JSON_LINES_ABOVE and not tracking(track):
            return _predict_images(detector, frames.paths, out, checkpoint, source, score_threshold, iou_threshold,
                                   max_detections, classes, save_images, batch_size)
        return predict_to_files(detector, frames, out, score_threshold, iou_threshold, max_detections, classes,
                                vid_stride=vid_stride, batch_size=batch_size, track=track, save_video=save_video,
                                save_images=save_images, progress=progress, checkpoint=str(checkpoint))


def _predict_images(
    detector: Any, paths: list[Path], out: Path, checkpoint: str | Path, source: Any, score_threshold: float,
    iou_threshold: float, max_detections: int, classes: Sequence[int | str] | None, save_images: bool,
    batch_size: int,
) -> dict[str, Any]:
    """A few images: one ``predictions.json`` with every image's detections, and annotated copies."""
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "source": str(source), "images": [], "skipped": []}
    for start in range(0, len(paths), batch_size):
        chunk, images = _read_chunk(paths[start : start + batch_size], result["skipped"], single=len(paths) == 1)
        if not chunk:
            continue
        detections = detector.predict(images, score_threshold, iou_threshold, max_detections, classes=classes)
        for path, image, det in zip(chunk, images, detections):
            result["images"].append(_entry(path, image.shape, det, detector.class_names))
            if save_images:
                annotated = draw_detections(image, det, detector.class_names)
                cv2.imwrite(str(annotated_image_path(out, path)), cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
    (out / "predictions.json").write_text(json.dumps(result, indent=1))
    result["output_dir"] = str(out)
    return result


def _check_semantic_run(
    checkpoint: str | Path, source: Any, track: str | None, score_threshold: float, iou_threshold: float,
    max_detections: int, classes: Sequence[int | str] | None,
) -> None:
    """Refuse what a semantic segmenter's run cannot do, before any source is opened."""
    kind = source_kind(source)
    if kind != "images":
        raise ConfigError(
            f"{checkpoint} is a semantic segmenter (task=semantic), which predicts images for now, not a {kind} "
            f"(source={source}); pass an image, a folder or a glob of images (extract a video's frames first)"
        )
    if tracking(track):
        raise ConfigError(f"track={track}: a semantic segmenter (task=semantic) has no objects to track; "
                          "leave track out")
    check_semantic_options({"score_threshold": score_threshold, "iou_threshold": iou_threshold,
                            "max_detections": max_detections, "classes": classes}, False, True, str(checkpoint))


def _predict_class_maps(
    detector: Any, paths: list[Path], out: Path, checkpoint: str | Path, source: Any, save_images: bool,
    batch_size: int,
) -> dict[str, Any]:
    """A semantic segmenter over image files: per image a label map (always) and an overlay (``save_images``),
    and one ``predictions.json`` with the classes present in each."""
    out.mkdir(parents=True, exist_ok=True)
    names = list(detector.class_names)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "source": str(source), "task": "semantic",
                              "class_names": names, "labels_dir": str(out / LABELS_DIR), "images": [],
                              "skipped": []}
    for start in range(0, len(paths), batch_size):
        chunk, images = _read_chunk(paths[start : start + batch_size], result["skipped"], single=len(paths) == 1)
        if not chunk:
            continue
        for path, image, found in zip(chunk, images, detector.predict(images, batch_size=batch_size)):
            class_map = found["semantic"].numpy()
            stem = free_stem(out, path.stem)
            label_map = write_label_map(out / LABELS_DIR / f"{stem}.png", class_map)
            overlay = None
            if save_images:
                overlay = out / f"{stem}.jpg"
                drawn = overlay_class_map(image, class_map, names)
                cv2.imwrite(str(overlay), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            result["images"].append({
                "image": str(path), "height": int(image.shape[0]), "width": int(image.shape[1]),
                "label_map": str(label_map), "overlay": None if overlay is None else str(overlay),
                "classes": class_shares(class_map, names),
            })
    (out / "predictions.json").write_text(json.dumps(result, indent=1))
    result["output_dir"] = str(out)
    return result


def _read_chunk(paths: list[Path], skipped: list[dict], single: bool) -> tuple[list[Path], list[Any]]:
    kept, images = [], []
    for path in paths:
        try:
            images.append(read_image(path))
            kept.append(path)
        except DatasetError as err:
            if single:
                raise
            log.warning("skipped %s: cannot be read as an image", path)
            skipped.append({"image": str(path), "error": str(err)})
    return kept, images


def _entry(path: Path, shape: tuple[int, ...], det: dict, class_names: Sequence[str]) -> dict[str, Any]:
    return {"image": str(path), "height": int(shape[0]), "width": int(shape[1]),
            "detections": detection_entries(det, class_names)}


def _default_output(checkpoint: Path) -> Path:
    run = run_dir_of(checkpoint)
    return run / "predict" if run is not None else Path("predictions")
