"""``predict_source(...)``: detect objects in an image, a folder or a glob; save annotated images and a JSON.

A plain function; ``yolotl-predict`` (:mod:`yolotl.cli.predict`) is its Hydra shell::

    yolotl-predict ckpt=outputs/<run>/checkpoints/best.ckpt source=photos/ score_threshold=0.4
    yolotl-predict ckpt=model.onnx source='images/*.jpg' classes=[WBC]
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from yolotl.api.run_folder import run_dir_of
from yolotl.data.dataset import read_image
from yolotl.data.formats._common import IMAGE_SUFFIXES
from yolotl.errors import DatasetError
from yolotl.data.draw import draw_detections
from yolotl.evaluation.mask_rle import encode_masks
from yolotl.inference.loading import load_predictor

log = logging.getLogger("yolotl.predict")


def find_images(source: str | Path) -> list[Path]:
    """The image files of a file, a folder (not recursive) or a glob pattern, sorted."""
    text = str(source)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise DatasetError(f"source {text} not found; pass an image file, a folder of images or a glob like 'dir/*.jpg'")
    if not found:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in source {text}")
    return found


def predict_source(
    checkpoint: str | Path,
    source: str | Path,
    output_dir: str | Path | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.6,
    max_detections: int = 300,
    classes: Sequence[int | str] | None = None,
    save_images: bool = True,
    batch_size: int = 8,
    device: str = "auto",
) -> dict[str, Any]:
    """Detect in every image of ``source``; write ``predictions.json`` (and annotated copies) to ``output_dir``.

    A segmenting detector's masks are drawn on the copies and written in the JSON as COCO RLE
    (``segmentation``: ``size`` [h, w] and compressed ``counts``; ``pycocotools.mask.decode`` reads it).
    One unreadable file in a folder or glob is skipped, listed under ``skipped`` in the JSON and
    logged; a single unreadable file given by name is an error.
    """
    detector = load_predictor(checkpoint, device)
    paths = find_images(source)
    out = Path(output_dir) if output_dir is not None else _default_output(Path(checkpoint))
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
                cv2.imwrite(str(_unique(out, path)), cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
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
    detections = [
        {"box": [round(v, 2) for v in box], "score": round(score, 5), "label": label, "class_name": class_names[label]}
        for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())
    ]
    if "masks" in det:
        for detection, rle in zip(detections, encode_masks(det["masks"])):
            detection["segmentation"] = rle
    return {"image": str(path), "height": int(shape[0]), "width": int(shape[1]), "detections": detections}


def _unique(out: Path, path: Path) -> Path:
    """Annotated-image name: the source name (as .jpg), numbered if two sources share a name."""
    target = out / f"{path.stem}.jpg"
    index = 1
    while target.exists():
        target = out / f"{path.stem}_{index}.jpg"
        index += 1
    return target


def _default_output(checkpoint: Path) -> Path:
    run = run_dir_of(checkpoint)
    return run / "predict" if run is not None else Path("predictions")
