"""Tracking: one id per object across the frames of a video, through a maintained tracker.

``track=bytetrack`` runs ByteTrack (Zhang et al. 2022) as the ``supervision`` package implements it,
rather than a home-made tracker: a Kalman filter predicts each track's box, detections above the score
threshold are matched to tracks by IoU first, then the low-score ones (0.1 up to the threshold) rescue
tracks the first pass left, so an object whose score dips for a few frames keeps its id. A new track
starts from a detection scoring at least the threshold + 0.1; a lost track is kept ``lost_frames``
frames (at 30 fps; scaled to the source's) before its id is retired. Boxes of different classes on one
object (``predict()``'s NMS is per class) reach the tracker as one, the best-scoring (class-agnostic NMS
at IoU 0.7), so an object is one track.

supervision is optional (``pip install "yolotl[video]"``) and imported only when a tracker is made. It
is pinned below 0.31, the release that moved ByteTrack out into the ``trackers`` package, which needs
the GUI build of OpenCV (``opencv-python``) that would clash with the headless one yolotl installs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision

from yolotl.errors import ConfigError, YolotlError

TRACKERS = ("bytetrack",)
INSTALL_HINT = 'pip install "yolotl[video]"'


class ByteTracker:
    """supervision's ByteTrack behind yolotl's detections: ``update`` takes one frame's ``predict()`` dict
    and returns the tracked rows of it (every key kept, masks too) with ``track_ids`` (int64, from 1).

    ``score_threshold`` is the score a detection needs to be matched in the first pass (and + 0.1 to start
    a track); predict with a lower threshold (0.1) so the second pass gets the low-score boxes.
    """

    def __init__(
        self,
        score_threshold: float = 0.25,
        frame_rate: float = 30.0,
        lost_frames: int = 30,
        match_threshold: float = 0.8,
        same_object_iou: float = 0.7,
    ) -> None:
        sv = _import_supervision()
        self.same_object_iou = same_object_iou
        with warnings.catch_warnings():  # deprecated in favour of the `trackers` package: see the module doc
            warnings.simplefilter("ignore")
            self._tracker = sv.ByteTrack(
                track_activation_threshold=score_threshold,
                lost_track_buffer=lost_frames,
                minimum_matching_threshold=match_threshold,
                frame_rate=frame_rate,
            )
        self._detections = sv.Detections

    def update(self, detections: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One frame's detections (in frame order) -> the rows that belong to a track, with ``track_ids``.

        Boxes of different classes on one object (``predict()``'s NMS is per class) would each start a
        track of their own; the tracker sees only the best-scoring box of any group overlapping by IoU
        > ``same_object_iou`` (class-agnostic NMS), so one object is one track.
        """
        boxes_t = detections["boxes"].detach().cpu().float().reshape(-1, 4)
        scores_t = detections["scores"].detach().cpu().float()
        rows = torchvision.ops.nms(boxes_t, scores_t, self.same_object_iou).numpy()
        given = self._detections(
            xyxy=boxes_t.numpy()[rows],
            confidence=scores_t.numpy()[rows],
            class_id=detections["labels"].detach().cpu().numpy().astype(int)[rows],
            data={"row": rows},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracked = self._tracker.update_with_detections(given)
        kept = np.asarray(tracked.data.get("row", np.zeros(0, int)), dtype=np.int64)
        index = torch.from_numpy(kept)
        result = {key: value[index.to(value.device)] for key, value in detections.items()}
        result["track_ids"] = torch.as_tensor(np.asarray(tracked.tracker_id, dtype=np.int64).reshape(-1))
        return result


def make_tracker(name: str | None, score_threshold: float = 0.25, frame_rate: float | None = None) -> Any:
    """The tracker ``track=`` names (:data:`TRACKERS`), or None for ``None`` / ``"none"`` / ``false``.

    Raises:
        ConfigError: an unknown tracker name.
        YolotlError: supervision is not installed.
    """
    if not tracking(name):
        return None
    key = str(name).lower()
    if key not in TRACKERS:
        raise ConfigError(f"unknown tracker track={name!r}; choose one of {list(TRACKERS)} or track=null")
    return ByteTracker(score_threshold=score_threshold, frame_rate=frame_rate or 30.0)


def tracking(name: str | None) -> bool:
    """Whether ``track=`` asks for a tracker (``None``, ``""``, ``"none"``, ``"null"``, ``False`` do not)."""
    return name not in (None, False) and str(name).strip().lower() not in ("", "none", "null", "false")


class TrackCounter:
    """Unique track ids per class: each track counts once, under the class it was detected as most often
    (a track whose class flickers is still one object). Memory grows with tracks, not frames."""

    def __init__(self) -> None:
        self._classes: dict[int, Counter[int]] = {}

    def add(self, track_ids: torch.Tensor, labels: torch.Tensor) -> None:
        for track, label in zip(track_ids.tolist(), labels.tolist()):
            self._classes.setdefault(int(track), Counter())[int(label)] += 1

    def __len__(self) -> int:
        return len(self._classes)

    def counts(self, class_names: Sequence[str]) -> dict[str, int]:
        """``{class name: unique tracks}`` for the classes seen, in class order."""
        per_class = Counter(votes.most_common(1)[0][0] for votes in self._classes.values())
        return {_name(label, class_names): per_class[label] for label in sorted(per_class)}


def _name(label: int, class_names: Sequence[str]) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def _import_supervision() -> Any:
    try:
        import supervision
    except ImportError as err:
        raise YolotlError(f"tracking (track=bytetrack) needs supervision<0.31: {INSTALL_HINT}") from err
    if not hasattr(supervision, "ByteTrack"):
        raise YolotlError(
            f"supervision {getattr(supervision, '__version__', '?')} has no ByteTrack (moved out in 0.31); "
            f'pip install "supervision>=0.30,<0.31" or {INSTALL_HINT}'
        )
    return supervision
