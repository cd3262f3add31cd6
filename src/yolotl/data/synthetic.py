"""A built-in, deterministic YOLO dataset of filled shapes on textured backgrounds.

Three classes, told apart by shape only (colours are random): ``circle``, ``square`` (rotated)
and ``triangle`` (rotated), 1-6 per image, 20-90 px at the default 256 px image size, with
moderate overlap. Backgrounds are smooth noise, gradients or stripes, so a detector has to
learn shapes, not "anything that is not the background colour". Images are PNG (lossless),
so the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import yaml
from filelock import FileLock

from yolotl.errors import ConfigError, DatasetError

__all__ = ["SYNTHETIC_CLASS_NAMES", "make_synthetic_dataset"]

SYNTHETIC_CLASS_NAMES = ("circle", "square", "triangle")
_MARKER = ".yolotl-synthetic.json"
_VERSION = 1  # bump when the drawing changes, so old folders are regenerated
_SPLITS = ("train", "val", "test")
_MAX_OVERLAP = 0.35  # intersection over the smaller box, between any two objects
_MIN_CONTRAST = 200  # sum over channels of |object colour - local background mean|


def make_synthetic_dataset(
    root: str | Path,
    num_train: int = 240,
    num_val: int = 60,
    num_test: int = 60,
    image_size: int = 256,
    seed: int = 0,
) -> Path:
    """Write the synthetic dataset to ``root`` (YOLO layout + data.yaml) and return ``root``.

    If ``root`` already holds a complete dataset made with the same arguments it is returned
    untouched; one made with other arguments is replaced. A non-empty folder that is not a
    synthetic dataset is never overwritten (DatasetError).
    """
    counts = {"train": num_train, "val": num_val, "test": num_test}
    _check_args(counts, image_size)
    root = Path(root).expanduser()
    params = {"version": _VERSION, "image_size": image_size, "seed": seed, **counts}
    if _is_complete(root, params):
        return root
    # Parallel sweep jobs (hydra/launcher=parallel) and DDP ranks may all get here: one writes, the
    # others wait for it and then find the dataset complete.
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        if not _is_complete(root, params):
            _write(root, params, counts, image_size, seed)
    return root


def _write(root: Path, params: dict, counts: dict[str, int], image_size: int, seed: int) -> None:
    _clear_folder(root)
    _write_marker(root, params, complete=False)
    for split_index, split in enumerate(_SPLITS):
        for i in range(counts[split]):
            rng = np.random.default_rng([seed, split_index, i])
            image, rows = _draw_image(rng, image_size)
            _write_sample(root / split, f"{split}_{i:05d}", image, rows)
    _write_yaml(root, counts)
    _write_marker(root, params, complete=True)


def _check_args(counts: dict[str, int], image_size: int) -> None:
    if counts["train"] < 1 or min(counts.values()) < 0:
        raise ConfigError(f"synthetic split sizes {counts} must be >= 0 with num_train >= 1.")
    if image_size < 64:
        raise ConfigError(f"synthetic image_size={image_size} is too small; use 64 or more.")


def _is_complete(root: Path, params: dict[str, int]) -> bool:
    """True if ``root`` holds a finished dataset generated with exactly ``params``."""
    try:
        marker = json.loads((root / _MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if marker.get("params") != params or not marker.get("complete"):
        return False
    return all(
        len(list((root / split / "images").glob("*.png"))) == params[split]
        and len(list((root / split / "labels").glob("*.txt"))) == params[split]
        for split in _SPLITS
    )


def _clear_folder(root: Path) -> None:
    """Make ``root`` an empty-enough folder: remove an old synthetic dataset, refuse others."""
    if not root.exists():
        root.mkdir(parents=True)
        return
    if not (root / _MARKER).is_file():
        if any(root.iterdir()):
            raise DatasetError(
                f"{root} is not empty and is not a yolotl synthetic dataset; pass a new or "
                f"empty folder as data.root for the synthetic dataset."
            )
        return
    for split in _SPLITS:
        shutil.rmtree(root / split, ignore_errors=True)
    (root / "data.yaml").unlink(missing_ok=True)


def _write_marker(root: Path, params: dict[str, int], complete: bool) -> None:
    text = json.dumps({"params": params, "complete": complete}, indent=2, sort_keys=True)
    (root / _MARKER).write_text(text + "\n", encoding="utf-8")


def _write_yaml(root: Path, counts: dict[str, int]) -> None:
    config: dict[str, object] = {s: f"{s}/images" for s in _SPLITS if counts[s] > 0}
    config["nc"] = len(SYNTHETIC_CLASS_NAMES)
    config["names"] = list(SYNTHETIC_CLASS_NAMES)
    (root / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _write_sample(split_dir: Path, stem: str, image: np.ndarray, rows: list[str]) -> None:
    """Write one PNG and its YOLO label file."""
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    (split_dir / "labels").mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise DatasetError(f"Could not encode {stem}.png; check the OpenCV installation.")
    (split_dir / "images" / f"{stem}.png").write_bytes(encoded.tobytes())
    text = "".join(row + "\n" for row in rows)
    (split_dir / "labels" / f"{stem}.txt").write_text(text, encoding="utf-8")


def _draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[str]]:
    """One BGR image with 1-6 shapes, and its YOLO label rows."""
    image = _background(rng, size)
    lo, hi = 20.0 * size / 256, 90.0 * size / 256
    boxes: list[np.ndarray] = []
    rows = []
    for _ in range(int(rng.integers(1, 7))):
        class_id = int(rng.integers(len(SYNTHETIC_CLASS_NAMES)))
        points = _shape_outline(rng, class_id, rng.uniform(lo, hi))
        placed = _place(rng, points, boxes, size)
        if placed is None:
            continue
        box = np.concatenate([placed.min(axis=0), placed.max(axis=0)])
        _fill(image, placed, _contrasting_colour(rng, image, box))
        boxes.append(box)
        centre, extent = (box[:2] + box[2:]) / 2 / size, (box[2:] - box[:2]) / size
        rows.append(f"{class_id} {centre[0]:.6f} {centre[1]:.6f} {extent[0]:.6f} {extent[1]:.6f}")
    return image, rows


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured uint8 BGR background: smooth noise, a gradient or stripes."""
    base = rng.uniform(40, 215, size=3)
    amplitude = rng.uniform(20, 45)
    kind = int(rng.integers(3))
    if kind == 0:
        coarse = rng.uniform(-1, 1, size=(int(rng.integers(3, 9)),) * 2 + (3,)).astype(np.float32)
        texture = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        angle = rng.uniform(0, np.pi)
        ramp = np.arange(size, dtype=np.float32) / size
        t = np.float32(np.cos(angle)) * ramp[None, :] + np.float32(np.sin(angle)) * ramp[:, None]
        wave = 2 * t - 1 if kind == 1 else np.sin(np.float32(2 * np.pi * rng.uniform(3, 10)) * t)
        texture = wave[..., None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    image = base.astype(np.float32) + np.float32(amplitude) * texture
    return np.clip(image, 0, 255).astype(np.uint8)


def _shape_outline(rng: np.random.Generator, class_id: int, extent: float) -> np.ndarray:
    """Vertices [K, 2] of a shape centred on 0, about ``extent`` px across."""
    if class_id == 0:  # circle: a fine polygon, so its box is exact and drawing is uniform
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radius = extent / 2
    elif class_id == 1:  # square, rotated
        angles = rng.uniform(0, np.pi / 2) + np.arange(4) * np.pi / 2
        radius = extent / 2 / np.sqrt(2) * 1.25
    else:  # equilateral triangle, rotated
        angles = rng.uniform(0, 2 * np.pi) + np.arange(3) * 2 * np.pi / 3
        radius = extent / 2 * 1.15
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius


def _place(
    rng: np.random.Generator, points: np.ndarray, boxes: list[np.ndarray], size: int
) -> np.ndarray | None:
    """Shift ``points`` to a random spot inside the image with limited overlap (None if none)."""
    low, high = -points.min(axis=0), size - points.max(axis=0)
    for _ in range(20):
        shifted = points + rng.uniform(low, high)
        box = np.concatenate([shifted.min(axis=0), shifted.max(axis=0)])
        if all(_overlap(box, other) <= _MAX_OVERLAP for other in boxes):
            return shifted
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the smaller box's area."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    return float(inter / min((a[2:] - a[:2]).prod(), (b[2:] - b[:2]).prod()))


def _contrasting_colour(rng: np.random.Generator, image: np.ndarray, box: np.ndarray) -> tuple:
    """A random colour far from the mean background colour under ``box``."""
    x1, y1, x2, y2 = box.astype(int)
    mean = image[y1:y2 + 1, x1:x2 + 1].reshape(-1, 3).mean(axis=0)
    for _ in range(30):
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - mean).sum() >= _MIN_CONTRAST:
            return tuple(int(c) for c in colour)
    return tuple(int(c) for c in np.where(mean > 127, 0, 255))


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple) -> None:
    """Draw a filled anti-aliased polygon with sub-pixel vertices (4 fractional bits)."""
    fixed = np.round(points * 16).astype(np.int32)
    cv2.fillPoly(image, [fixed], colour, lineType=cv2.LINE_AA, shift=4)
