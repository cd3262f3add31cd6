"""Where frames come from: image files, frame folders, video files, cameras and stream URLs.

:func:`open_source` turns what a user passes as ``source=`` into a :class:`FrameSource`, an iterable of
:class:`Frame` (uint8 RGB pixels, the frame's index in the source and its time) that reads one frame at a
time, so a two-hour video or a folder of 100,000 frames never sits in memory. Video, camera and stream
sources read through OpenCV (``cv2.VideoCapture``, its bundled FFmpeg); ``vid_stride`` skips frames
without decoding them. A source that cannot be opened stops with one :class:`~yolotl.DatasetError` line
naming it and the fix; a stream that drops is reopened a few times, then ends (what was read is kept).
OpenCV and FFmpeg write their own diagnostics straight to the process's stderr; while a source opens or
reads they are caught (:func:`native_stderr`) and put in the error message or the debug log instead.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from yolotl.errors import ConfigError, DatasetError

log = logging.getLogger("yolotl.predict")

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".ts"})
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_REENCODE = "re-encode it (ffmpeg -i {name} -c:v libx264 fixed.mp4) or pass another file"


@dataclass(frozen=True)
class Frame:
    """One frame: ``image`` uint8 RGB ``[H, W, 3]``; ``index`` its 0-based number in the source (with
    ``vid_stride`` n every n-th); ``time`` seconds from the start (video: index / fps; camera and stream:
    wall clock since opening; image files: None); ``path`` the image file for image sources."""

    index: int
    image: np.ndarray
    time: float | None = None
    path: str | None = None


@dataclass
class FrameSource:
    """An iterable of :class:`Frame` read one at a time; ``close()`` (or ``with``) releases it.

    Attributes:
        kind: ``"images"``, ``"video"``, ``"camera"`` or ``"stream"``.
        name: the source as the user gave it (a path, a camera index, a URL).
        fps: frames per second of the source (None when unknown); with ``vid_stride`` the frames yielded
            come ``vid_stride`` times slower.
        frame_count: frames it will yield, when known (image lists, video files), else None.
        live: a camera or a stream (no end of its own, read frame by frame).
        skipped: unreadable image files passed over (``{"image", "error"}``), the first 100.
        skipped_count: how many image files were passed over in all.
        stopped: why reading ended early, when it did (a truncated video, a dropped stream), else None.
    """

    kind: str
    name: str
    fps: float | None = None
    frame_count: int | None = None
    live: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    stopped: str | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file, camera or connection (a no-op for image lists)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageFiles(FrameSource):
    """Image files in the given order (a frame folder sorted by name), read one at a time.

    An unreadable file is skipped with a warning and listed in ``skipped`` (a single file given by name
    raises instead, as it is the whole source).
    """

    def __init__(self, paths: Sequence[Path], name: str, vid_stride: int = 1) -> None:
        self.paths = list(paths)[::vid_stride]
        super().__init__(kind="images", name=name, frame_count=len(self.paths))

    def __iter__(self) -> Iterator[Frame]:
        from yolotl.data.dataset import read_image

        for index, path in enumerate(self.paths):
            try:
                image = read_image(path)
            except DatasetError as err:
                if len(self.paths) == 1:
                    raise
                log.warning("skipped %s: cannot be read as an image", path)
                self.skipped_count += 1
                if len(self.skipped) < 100:
                    self.skipped.append({"image": str(path), "error": str(err)})
                continue
            yield Frame(index=index, image=image, path=str(path))


class CaptureSource(FrameSource):
    """A video file, camera or stream read through ``cv2.VideoCapture``.

    A video file that ends before the frame count its header states is truncated: reading stops there
    with a warning, and ``stopped`` says so. A stream whose reads fail is reopened up to ``reconnects``
    times, ``reconnect_wait`` seconds apart, before it ends; a camera that stops giving frames ends.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        target: str | int,
        vid_stride: int = 1,
        reconnects: int = 3,
        reconnect_wait: float = 1.0,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(kind=kind, name=name, live=kind in ("camera", "stream"))
        self.target, self.vid_stride = target, vid_stride
        self.reconnects, self.reconnect_wait, self.timeout_s = reconnects, reconnect_wait, timeout_s
        self._capture = self._open()
        fps = float(self._capture.get(_cv2().CAP_PROP_FPS) or 0)
        self.fps = fps if 0 < fps < 1000 else None
        self.stated_frames: int | None = None
        if kind == "video":
            count = int(self._capture.get(_cv2().CAP_PROP_FRAME_COUNT) or 0)
            self.stated_frames = count if count > 0 else None
            self.frame_count = -(-count // vid_stride) if count > 0 else None
        self.fourcc = _fourcc_text(self._capture.get(_cv2().CAP_PROP_FOURCC))
        self._chatter = tempfile.TemporaryFile()  # FFmpeg's messages while reading, one file reused per frame

    def _open(self) -> Any:
        cv2 = _cv2()
        with native_stderr() as said:
            if self.kind == "stream":
                msec = int(self.timeout_s * 1000)
                capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, msec, cv2.CAP_PROP_READ_TIMEOUT_MSEC, msec])
            else:
                capture = cv2.VideoCapture(self.target)
            opened = capture.isOpened()
        if not opened:
            capture.release()
            raise DatasetError(self._open_error(_last_line(said.text)))
        return capture

    def _open_error(self, reason: str) -> str:
        why = f" ({reason})" if reason else ""
        if self.kind == "camera":
            return (f"camera {self.name} cannot be opened{why}; check that it is connected and not in use by "
                    f"another program, or pass another index (source=1)")
        if self.kind == "stream":
            return f"stream {self.name} cannot be opened{why}; check the URL, the network and the camera's login"
        return (f"video {self.name} cannot be read{why}: it is truncated, not a video, or in a codec OpenCV "
                f"lacks; {_REENCODE.format(name=self.name)}")

    def __iter__(self) -> Iterator[Frame]:
        cv2 = _cv2()
        start = time.monotonic()
        position, yielded = 0, 0  # frames consumed from the capture, frames yielded
        failures = 0
        while True:
            decode = position % self.vid_stride == 0
            with native_stderr(self._chatter) as said:
                ok = self._capture.grab()
                if ok and decode:
                    ok, image = self._capture.retrieve()
            if said.text:
                log.debug("%s: %s", self.name, said.text.strip())
            if not ok:
                if self._stop_or_reconnect(position, yielded, failures):
                    return
                failures += 1
                continue
            failures = 0
            if decode:
                stamp = position / self.fps if self.kind == "video" and self.fps else (
                    time.monotonic() - start if self.live else None)
                yield Frame(index=position, image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB), time=stamp)
                yielded += 1
            position += 1

    def _stop_or_reconnect(self, position: int, yielded: int, failures: int) -> bool:
        """After a failed read: True to end the source; False after reopening a dropped stream."""
        if self.kind == "video":
            if yielded == 0:
                raise DatasetError(self._open_error("no frame could be decoded"))
            if self.stated_frames and position < self.stated_frames:
                self.stopped = (f"video {self.name} ended at frame {position} of the {self.stated_frames} its "
                                f"header states: the file is truncated; the frames before were used")
                log.warning(self.stopped)
            return True
        if self.kind == "camera" or failures >= self.reconnects:
            tries = "" if self.kind == "camera" else f" after {failures} reconnects"
            self.stopped = f"{self.kind} {self.name} stopped giving frames at frame {position}{tries}"
            log.warning(self.stopped)
            return True
        log.warning("stream %s dropped at frame %d; reconnecting (%d of %d)", self.name, position, failures + 1,
                    self.reconnects)
        time.sleep(self.reconnect_wait)
        self._capture.release()
        try:
            self._capture = self._open()
        except DatasetError as err:
            log.debug("%s", err)
            self._capture = _cv2().VideoCapture()  # reads fail: the next failure counts as the next try
        return False

    def close(self) -> None:
        self._capture.release()
        self._chatter.close()


def open_source(
    source: str | Path | int | FrameSource,
    vid_stride: int = 1,
    reconnects: int = 3,
    reconnect_wait: float = 1.0,
) -> FrameSource:
    """What ``source=`` names, ready to iterate: a camera index (``0`` or ``"0"``), a stream URL
    (``rtsp://``, ``http://``, ...), a video file (:data:`VIDEO_SUFFIXES`), or an image file, a folder of
    images (not recursive) or a glob, in name order. A :class:`FrameSource` is returned as it is.

    Raises:
        DatasetError: the source is missing, holds no images, or cannot be opened (one line: which and the fix).
        ConfigError: ``vid_stride`` below 1.
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(vid_stride, bool) or not isinstance(vid_stride, int) or vid_stride < 1:
        raise ConfigError(f"vid_stride={vid_stride!r} must be a whole number >= 1 (1 reads every frame)")
    text = str(source).strip()
    kind = source_kind(source)
    if kind == "camera":
        return CaptureSource("camera", text, int(text), vid_stride)
    if kind == "stream":
        return CaptureSource("stream", text, text, vid_stride, reconnects, reconnect_wait)
    if kind == "video":
        return CaptureSource("video", text, text, vid_stride)
    return ImageFiles(find_images(text), text, vid_stride)


def source_kind(source: str | Path | int | FrameSource) -> str:
    """What :func:`open_source` would open, without opening it: ``"camera"`` (an index), ``"stream"`` (a
    URL), ``"video"`` (a video file) or ``"images"`` (anything else: an image, a folder, a glob)."""
    if isinstance(source, FrameSource):
        return source.kind
    text = str(source).strip()
    if isinstance(source, int) or text.isdigit():
        return "camera"
    if re.match(rf"^({'|'.join(STREAM_SCHEMES)})://", text, re.IGNORECASE):
        return "stream"
    path = Path(text)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    return "images"


def find_images(source: str | Path) -> list[Path]:
    """The image files of a file, a folder (not recursive) or a glob pattern, sorted by name."""
    from yolotl.data.formats._common import IMAGE_SUFFIXES

    text = str(source)
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(
                f"source {text} is neither an image ({', '.join(sorted(IMAGE_SUFFIXES))}) nor a video "
                f"({', '.join(sorted(VIDEO_SUFFIXES))}); rename it if it is one, or convert it"
            )
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise DatasetError(
            f"source {text} not found; pass an image file, a folder of images, a glob like 'dir/*.jpg', a video "
            f"file, a camera index (0) or a stream URL (rtsp://...)"
        )
    if not found:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in source {text}")
    return found


class _Captured:
    text = ""


@contextmanager
def native_stderr(sink: IO[bytes] | None = None) -> Iterator[_Captured]:
    """Catch what C libraries (OpenCV, FFmpeg) write to file descriptor 2 inside the block; the text is
    the yielded object's ``text`` afterwards. ``sink``: a binary file to reuse (emptied first), else a
    temporary one. Python's own ``sys.stderr`` is flushed first, so nothing of it is caught."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some notebooks, embedded interpreters): nothing to catch
        yield _Captured()
        return
    with ExitStack() as stack:
        if sink is None:
            sink = stack.enter_context(tempfile.TemporaryFile())
        sink.seek(0)
        sink.truncate()
        captured = _Captured()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")


def _last_line(text: str) -> str:
    """The last line of FFmpeg / OpenCV chatter, without its ``[module @ 0x...]`` / ``[ WARN:0@0.1]`` prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = re.sub(r"^\[[^\]]*\]\s*", "", lines[-1])
    line = re.sub(r"^global \S+ ", "", line)
    return line[:200]


def _fourcc_text(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else ""


def _cv2() -> Any:
    import cv2

    return cv2
