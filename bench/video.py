"""Benchmark: video prediction frames per second on this CPU, per runtime and input size, with and without
tracking, and the share of the time in each stage.

Runs what ``yolotl-predict source=<video>`` runs (:func:`yolotl.api.stream_run.predict_to_files`: decode,
model, ByteTrack, JSON Lines + annotated video) on one video, batch 1 (a camera's case), for PyTorch, ONNX
Runtime and OpenVINO (when ``openvino`` imports), at each ``--sizes`` input size. Stages:

- decode: reading and decoding the video (OpenCV / FFmpeg);
- model: ``predict()``: letterbox, the network, decode + NMS, boxes back to the frame;
- track: ByteTrack (supervision) and the per-class track count;
- write: drawing the boxes, encoding the annotated video, the JSON line.

    python bench/video.py                                       # efficientnet_lite0 (ImageNet), random head
    python bench/video.py --ckpt outputs/<run>/checkpoints/best.ckpt --video clip.mp4 --threads 2
    python bench/video.py --frames 5 --sizes 64 --runtimes torch      # a smoke test: a few seconds

Without ``--video`` a 640x480 clip of the synthetic data's shapes moving is generated. Without ``--ckpt``
the head is random (its boxes are noise, so tracking times are those of a busy scene); with a checkpoint
its input size is set to each ``--sizes`` value (the head is convolutional: speed, not accuracy, is
measured there). Runtimes take turns within each size, so a busy machine slows them alike.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import yolotl
from yolotl.api.stream_run import predict_to_files
from yolotl.data.synthetic import SYNTHETIC_CLASS_NAMES, _background, _contrasting_colour, _fill, _shape_outline
from yolotl.inference.sources import open_source

STAGES = ("decode", "model", "track", "write")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", help="a yolotl-train checkpoint (default: efficientnet_lite0, ImageNet, random head)")
    parser.add_argument("--video", help="a video file (default: a generated 640x480 clip of moving shapes)")
    parser.add_argument("--frames", type=int, default=60, help="frames of the generated clip")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640], help="square input sizes")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx", "openvino"],
                        choices=["torch", "onnx", "openvino"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads, every runtime")
    parser.add_argument("--score-threshold", type=float, default=0.25)
    return parser.parse_args()


def moving_shapes_clip(path: Path, frames: int, size: tuple[int, int] = (640, 480)) -> Path:
    """Eight synthetic shapes (the training data's drawing code) bouncing across a textured background."""
    rng = np.random.default_rng(0)
    width, height = size
    background = cv2.resize(_background(rng, 256), size)
    shapes = []
    for _ in range(8):
        outline = _shape_outline(rng, int(rng.integers(3)), rng.uniform(40, 120))
        start = rng.uniform([80, 80], [width - 80, height - 80])
        colour = _contrasting_colour(rng, background, np.r_[start, start + 1])
        shapes.append((outline, start, rng.uniform(-6, 6, 2), colour))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, size)
    for index in range(frames):
        image = background.copy()
        for outline, start, velocity, colour in shapes:
            centre = np.abs((start + velocity * index - 60) % (2 * np.array([width - 120, height - 120]))
                            - np.array([width - 120, height - 120])) + 60  # bounce between the borders
            _fill(image, outline + centre, colour)
        writer.write(image)
    writer.release()
    return path


def torch_detector(ckpt: str | None, size: int) -> Any:
    if ckpt:
        detector = yolotl.load(ckpt)
        detector.detector.config.image_size = size
        return detector
    torch.manual_seed(0)
    model = yolotl.create_detector("efficientnet_lite0", class_names=list(SYNTHETIC_CLASS_NAMES), pretrained="offline",
                                   image_size=size)
    return yolotl.TorchDetector(model.eval())


def runtimes(names: list[str], base: Any, folder: Path, size: int, threads: int) -> dict[str, Any]:
    """name -> a predictor for each runtime asked for that can run here (a missing package is skipped, said)."""
    found: dict[str, Any] = {}
    for name in names:
        try:
            if name == "torch":
                found[name] = base
            elif name == "onnx":
                from yolotl.inference import OnnxDetector, export_onnx

                found[name] = OnnxDetector(export_onnx(base, folder / f"model_{size}.onnx"), threads=threads)
            else:
                from yolotl.inference.openvino_export import export_openvino
                from yolotl.inference.openvino_runtime import OpenVinoDetector

                found[name] = OpenVinoDetector(export_openvino(base, folder / f"model_{size}.xml"), threads=threads)
        except (ImportError, yolotl.YolotlError) as err:
            print(f"skipped {name}: {err}")
    return found


def run_once(detector: Any, video: Path, out: Path, track: str | None, threshold: float) -> dict[str, Any]:
    with open_source(video) as frames:
        return predict_to_files(detector, frames, out, score_threshold=threshold, batch_size=1, track=track)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = Path(args.video) if args.video else moving_shapes_clip(folder / "clip.mp4", args.frames)
        rows = []
        for size in args.sizes:
            base = torch_detector(args.ckpt, size)
            for name, detector in runtimes(args.runtimes, base, folder, size, args.threads).items():
                run_once(detector, video, folder / "warmup", "bytetrack", args.score_threshold)  # first calls, imports
                for track in (None, "bytetrack"):
                    start = time.perf_counter()
                    summary = run_once(detector, video, folder / "out", track, args.score_threshold)
                    wall = time.perf_counter() - start
                    spent = sum(summary["seconds"].values()) or 1.0
                    shares = {stage: summary["seconds"][stage] / spent for stage in STAGES}
                    rows.append((name, size, track or "-", summary["frames"] / wall, shares))
        print("\n| runtime | size | track | fps | " + " | ".join(STAGES) + " |")
        print("|---|---|---|---|" + "---|" * len(STAGES))
        for name, size, track, fps, shares in rows:
            cells = " | ".join(f"{100 * shares[stage]:.0f}%" for stage in STAGES)
            print(f"| {name} | {size} | {track} | {fps:.1f} | {cells} |")


if __name__ == "__main__":
    main()
