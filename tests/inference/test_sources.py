"""Frame sources (video files, cameras, streams, frame folders) and the tracker wrapper, without a model."""

from __future__ import annotations

import functools
import http.server
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolotl import ConfigError, DatasetError
from yolotl.inference.sources import CaptureSource, ImageFiles, open_source
from yolotl.inference.tracking import ByteTracker, TrackCounter, make_tracker


def _write_video(path: Path, frames: int, fourcc: str = "MJPG", fps: float = 20.0) -> None:
    """Frame i: a uniform BGR (0, 0, 255) red with the frame number as its green level (i * 8)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    for index in range(frames):
        writer.write(np.full((48, 64, 3), (0, index * 8, 255), np.uint8))
    writer.release()


def test_video_frames_come_in_order_as_rgb_with_index_time_and_stride(tmp_path):
    _write_video(tmp_path / "clip.avi", 12)
    with open_source(tmp_path / "clip.avi", vid_stride=3) as source:
        assert (source.kind, source.fps, source.frame_count, source.live) == ("video", 20.0, 4, False)
        frames = list(source)
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.15, 0.3, 0.45])
    for frame in frames:
        red, green, blue = frame.image.reshape(-1, 3).mean(axis=0)
        assert frame.image.shape == (48, 64, 3) and red > 230 and blue < 25  # RGB, not OpenCV's BGR
        assert green == pytest.approx(frame.index * 8, abs=6)  # the frame it says it is


def test_truncated_videos_are_one_line_or_stop_with_what_was_read(tmp_path, caplog, capfd):
    _write_video(tmp_path / "clip.mp4", 20, fourcc="mp4v")
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4v: the index is at the end, now gone
    with pytest.raises(DatasetError) as err:
        open_source(tmp_path / "cut.mp4")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(tmp_path / "cut.mp4") in message and "re-encode" in message
    assert capfd.readouterr().err == ""  # FFmpeg's "moov atom not found" went into the message, not the console

    _write_video(tmp_path / "clip.avi", 40)
    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 7 // 10])  # an AVI plays up to the cut
    with caplog.at_level(logging.WARNING, logger="yolotl"), open_source(tmp_path / "cut.avi") as source:
        frames = list(source)
    assert 0 < len(frames) < 40
    assert "truncated" in source.stopped and f"frame {len(frames)} of the 40" in caplog.text


def test_a_camera_that_does_not_open_is_one_line(capfd):
    with pytest.raises(DatasetError) as err:
        open_source("97")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith("camera 97 cannot be opened") and "source=1" in lines[0]
    assert capfd.readouterr().err == ""  # OpenCV's V4L2 warnings were caught


class _OnceHandler(http.server.SimpleHTTPRequestHandler):
    """Serves each file once, then answers 404: a stream that drops and does not come back."""

    served: set[str] = set()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path in self.served:
            self.send_error(404)
            return
        self.served.add(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


def test_a_stream_that_drops_is_reopened_then_ends_keeping_its_frames(tmp_path, caplog):
    _write_video(tmp_path / "live.avi", 10)
    handler = functools.partial(type("Once", (_OnceHandler,), {"served": set()}), directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.avi"
        with caplog.at_level(logging.WARNING, logger="yolotl"):
            source = open_source(url, reconnects=2, reconnect_wait=0.01)
            assert isinstance(source, CaptureSource) and (source.kind, source.live) == ("stream", True)
            with source:
                frames = list(source)
    finally:
        server.shutdown()
    assert len(frames) == 10 and frames[-1].time is not None
    assert caplog.text.count("reconnecting") == 2 and "after 2 reconnects" in source.stopped


def test_frame_folders_read_in_name_order_and_skip_unreadable_files(tmp_path, caplog):
    for name, level in (("b.png", 20), ("a.png", 10), ("c.jpg", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), level, np.uint8))
    (tmp_path / "b2.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="yolotl"):
        source = open_source(tmp_path)
        frames = list(source)
    assert isinstance(source, ImageFiles) and source.frame_count == 4
    assert [Path(f.path).name for f in frames] == ["a.png", "b.png", "c.jpg"]
    assert [f.index for f in frames] == [0, 1, 3] and frames[0].time is None
    assert source.skipped_count == 1 and source.skipped[0]["image"].endswith("b2.png") and "b2.png" in caplog.text
    assert [Path(f.path).name for f in open_source(f"{tmp_path}/[ac].*")] == ["a.png", "c.jpg"]
    assert [Path(f.path).name for f in open_source(tmp_path, vid_stride=2)] == ["a.png"]  # a, b2 (unreadable)


def test_bad_sources_and_settings_are_named(tmp_path):
    (tmp_path / "clip.xyz").write_bytes(b"data")
    with pytest.raises(DatasetError, match=r"neither an image .* nor a video"):
        open_source(tmp_path / "clip.xyz")
    with pytest.raises(DatasetError, match=r"not found; .* a video file, a camera index \(0\) or a stream URL"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(ConfigError, match="vid_stride=0 must be"):
        open_source(tmp_path, vid_stride=0)
    with pytest.raises(ConfigError, match="unknown tracker track='sort'"):
        make_tracker("sort")
    assert make_tracker(None) is None and make_tracker("none") is None


def test_bytetrack_keeps_ids_on_moving_boxes_and_counts_tracks_by_their_usual_class():
    pytest.importorskip("supervision")
    tracker = ByteTracker(score_threshold=0.3, frame_rate=10)
    counter = TrackCounter()
    ids = []
    for step in range(12):
        x = 4.0 * step
        boxes = torch.tensor([[x, 10, x + 20, 30], [100 - x, 60, 120 - x, 80]])
        scores = torch.tensor([0.9, 0.15 if step == 6 else 0.8])  # the second dips once: the low-score pass
        labels = torch.tensor([0, 2 if step == 3 else 1])  # the second is misclassified once
        out = tracker.update({"boxes": boxes, "scores": scores, "labels": labels, "masks": torch.zeros(2, 4, 4)})
        counter.add(out["track_ids"], out["labels"])
        assert out["masks"].shape[0] == len(out["boxes"])  # every key follows the kept rows
        ids.append(dict(zip(out["boxes"][:, 1].tolist(), out["track_ids"].tolist())))
    assert all(len(frame) == 2 for frame in ids[1:])  # tracked from frame 2 on (activation), the dip included
    assert len({frame[10.0] for frame in ids[1:]}) == 1 and len({frame[60.0] for frame in ids[1:]}) == 1
    assert counter.counts(["a", "b", "c"]) == {"a": 1, "b": 1}
