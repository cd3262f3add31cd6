"""Video prediction end to end: what a user gets from predict_source / yolotl-predict on a video.

Fast tests run the pipeline with a model-free stub (tests/inference/moving_shapes.py); slow ones use the
``trained_run`` detector on a video of the synthetic shapes moving on known paths, and the real CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import yolotl
from tests.inference.moving_shapes import StubDetector, id_switches, write_moving_shapes, write_moving_square
from yolotl.api.stream_run import predict_to_files
from yolotl.inference.sources import open_source

ROOT = Path(__file__).resolve().parents[1]
# ByteTrack on the trained_run detector and the 30-frame moving-shapes video: 0 id switches measured, every
# true box matched (the objects never cross, and the detector finds each in every frame at scores 0.33..0.9);
# 1 allowed for a CPU whose float sums move a score across ByteTrack's thresholds for a frame.
MAX_ID_SWITCHES = 1


def _video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames decoded, (width, height)) of a video file."""
    capture = cv2.VideoCapture(str(path))
    count, size = 0, (0, 0)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        count, size = count + 1, (image.shape[1], image.shape[0])
    capture.release()
    return count, size


def _lines(path: Path) -> list[dict]:
    """Every line of a JSON Lines file, parsed (a partial line fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stream_outputs_hold_every_frame_and_the_video_matches_the_input(tmp_path):
    pytest.importorskip("supervision")
    write_moving_square(tmp_path / "in.avi", 40)
    with open_source(tmp_path / "in.avi") as frames:
        summary = predict_to_files(StubDetector(), frames, tmp_path / "out", track="bytetrack", batch_size=4)

    records = _lines(tmp_path / "out" / "predictions.jsonl")
    assert [r["frame"] for r in records] == list(range(40)) and summary["frames"] == 40
    assert records[1]["time"] == pytest.approx(0.04) and (records[0]["height"], records[0]["width"]) == (64, 96)
    assert all(len(r["detections"]) == 1 for r in records)  # tracked from the first frame on
    assert {r["detections"][0]["track_id"] for r in records} == {1}
    assert summary["video"] == str(tmp_path / "out" / "in.avi")  # an AVI stays an AVI (MJPG in, MJPG out)
    assert _video_frames(tmp_path / "out" / "in.avi") == (40, (96, 64))
    assert summary["tracks"] == {"b": 1} and not summary["interrupted"]
    assert set(summary["fps"]) == {"overall", "decode", "model", "track", "write"}
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


def test_ctrl_c_between_a_frames_line_and_its_picture_keeps_both(tmp_path, monkeypatch):
    """A Ctrl-C that lands just after a frame's JSON line is written still writes that frame's video
    picture: the two files end on the same frame (a race CI once hit: 13 lines, 12 video frames)."""
    from yolotl.api import stream_outputs

    write_moving_square(tmp_path / "in.avi", 40)
    write_line = stream_outputs.JsonLinesWriter.write
    lines = []

    def write_then_interrupt(self, record):
        write_line(self, record)
        lines.append(record)
        if len(lines) == 7:
            # to the main thread, where Python runs its handler: it runs before the next line
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    monkeypatch.setattr(stream_outputs.JsonLinesWriter, "write", write_then_interrupt)
    with open_source(tmp_path / "in.avi") as frames:
        summary = predict_to_files(StubDetector(), frames, tmp_path / "out", batch_size=4)

    assert summary["interrupted"] and summary["frames"] == 7
    assert len(_lines(tmp_path / "out" / "predictions.jsonl")) == 7
    assert _video_frames(tmp_path / "out" / "in.avi") == (7, (96, 64))


def test_image_folders_beyond_the_limit_stream_to_json_lines(tmp_path, monkeypatch):
    from yolotl.api import predict_run

    monkeypatch.setattr(predict_run, "load_predictor", lambda *args: StubDetector())
    monkeypatch.setattr(predict_run, "JSON_LINES_ABOVE", 2)
    for index in range(3):
        image = np.zeros((32, 48, 3), np.uint8)
        image[8:20, 10 + index * 5 : 22 + index * 5] = (0, 255, 0)
        cv2.imwrite(str(tmp_path / f"frame_{index}.png"), image)
    out = tmp_path / "out"
    summary = yolotl.predict_source("model.ckpt", tmp_path, output_dir=out)

    records = _lines(out / "predictions.jsonl")
    assert [Path(r["image"]).name for r in records] == ["frame_0.png", "frame_1.png", "frame_2.png"]
    assert [r["detections"][0]["box"] for r in records] == [[10 + 5 * i, 8, 22 + 5 * i, 20] for i in range(3)]
    assert summary["frames"] == 3 and summary["video"] is None and not (out / "predictions.json").exists()
    assert sorted(p.name for p in out.glob("*.jpg")) == ["frame_0.jpg", "frame_1.jpg", "frame_2.jpg"]


def test_a_json_line_carries_track_ids_and_masks_as_rle():
    import torch
    from pycocotools import mask as mask_utils

    from yolotl.api.stream_outputs import frame_record

    masks = torch.zeros((2, 6, 8), dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[1, 4:, :] = True
    det = {"boxes": torch.tensor([[2.0, 1, 5, 3], [0, 4, 8, 6]]), "scores": torch.tensor([0.9, 0.5]),
           "labels": torch.tensor([1, 0]), "masks": masks, "track_ids": torch.tensor([7, 9])}
    record = json.loads(json.dumps(frame_record(4, 0.16, None, (6, 8, 3), det, ["a", "b"])))
    assert (record["frame"], record["time"], record["height"], record["width"]) == (4, 0.16, 6, 8)
    assert [(d["class_name"], d["track_id"]) for d in record["detections"]] == [("b", 7), ("a", 9)]
    for entry, mask in zip(record["detections"], masks):
        rle = dict(entry["segmentation"], counts=entry["segmentation"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask.numpy())


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from tests.inference.moving_shapes import StubDetector, write_moving_square
    from yolotl.api.stream_run import predict_to_files
    from yolotl.inference.sources import open_source

    folder, peaks = Path(sys.argv[1]), []
    for frames in (40, 240):
        video = folder / f"{frames}.avi"
        write_moving_square(video, frames, size=(320, 240))
        with open_source(video) as source:
            done = predict_to_files(StubDetector(), source, folder / str(frames), track="bytetrack")
        assert done["frames"] == frames, done
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB
    print(peaks[0], peaks[1])
""")


def test_peak_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    """A 40-frame run, then a 240-frame one in the same process: the peak resident memory stays where the
    first left it. 200 more 320x240 frames held anywhere (frames, results) would add 44 MiB, twice that
    with their annotated copies."""
    pytest.importorskip("supervision")
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    short, long = map(float, done.stdout.split())
    assert long - short < 20, f"peak RSS grew {long - short:.1f} MiB from 40 to 240 frames ({short:.0f} MiB first)"


def _cli(*args: str, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    executable = str(Path(sys.executable).parent / "yolotl-predict")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.slow
def test_the_trained_detector_tracks_the_moving_shapes(trained_run, tmp_path):
    pytest.importorskip("supervision")
    video = write_moving_shapes(tmp_path / "shapes.mp4")
    summary = yolotl.predict_source(trained_run.checkpoint, video.path, output_dir=tmp_path / "out",
                                    track="bytetrack", batch_size=8)

    records = _lines(tmp_path / "out" / "predictions.jsonl")
    assert [r["frame"] for r in records] == list(range(video.frames))  # every frame, in order
    switches, matched = id_switches(video.boxes, records)
    assert switches <= MAX_ID_SWITCHES and matched >= 0.8, (switches, matched)
    # one track per object; per class the count follows the classifier (this 8-epoch detector takes the square
    # for a triangle in most frames, so its track counts as a triangle)
    assert sum(summary["tracks"].values()) == 3 and summary["tracks"]["circle"] == 1, summary["tracks"]
    assert _video_frames(Path(summary["video"])) == (video.frames, (128, 128))
    assert Path(summary["video"]).suffix == ".mp4"
    # the generator gives the same tracks, frame by frame
    first = next(iter(yolotl.predict_stream(trained_run.checkpoint, video.path, track="bytetrack")))
    assert first.index == 0
    assert first.detections["track_ids"].tolist() == [d["track_id"] for d in records[0]["detections"]]


@pytest.mark.slow
def test_cli_truncated_video_and_missing_camera_are_one_line(trained_run, tmp_path):
    write_moving_shapes(tmp_path / "shapes.mp4", frames=8)
    data = (tmp_path / "shapes.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    for source, start in ((tmp_path / "cut.mp4", f"video {tmp_path / 'cut.mp4'} cannot be read"),
                          ("97", "camera 97 cannot be opened")):
        done = _cli(f"ckpt={trained_run.checkpoint}", f"source={source}", f"output_dir={tmp_path / 'out'}")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"yolotl: error: {start}")


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_valid_files(trained_run, tmp_path):
    video = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 128))
    frame = cv2.imread(str(sorted((trained_run.data_root / "test" / "images").glob("*.png"))[0]))
    for _ in range(1500):  # ~1 minute of predicting on a 2-core CPU: interrupted long before the end
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    executable = str(Path(sys.executable).parent / "yolotl-predict")
    process = subprocess.Popen([executable, f"ckpt={trained_run.checkpoint}", f"source={video}", f"output_dir={out}",
                                "batch_size=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jsonl = out / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or jsonl.read_text().count("\n") < 5):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    records = _lines(jsonl)
    assert 5 <= len(records) < 1500 and [r["frame"] for r in records] == list(range(len(records)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["frames"] == len(records)
    assert _video_frames(out / "long.avi") == (len(records), (128, 128))  # finalised: every frame plays
    assert "interrupted (Ctrl-C)" in stdout and "Traceback" not in stderr
    assert not os.path.exists(out / "predictions.json")
