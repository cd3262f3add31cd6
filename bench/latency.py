"""Benchmark: CPU latency per image (batch 1) of PyTorch and ONNX Runtime, stage by stage, per input size.

Stages, exactly those of ``predict()``:

- pre: load the image (decode the file when it is one), letterbox to the input size, make the tensor;
- inference: PyTorch: the network (raw head maps). ONNX Runtime: the graph, which also decodes boxes,
  and with ``nms`` in the graph also runs NMS. ``--int8 N`` adds the INT8 model of ``yolotl-export
  quantize=int8`` (decode and NMS float), calibrated on N BCCD smears (or ``--calibration`` images);
- post: what is left of decode + NMS + mapping boxes back to the original image.

Runtimes take turns within every run, so a busy machine slows them alike. Also printed: parameters and
GFLOPs per size (``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-accumulate of
convolutions and matrix products, the convention of ultralytics' "GFLOPs"; fvcore and MMDetection count
multiply-accumulates, half these numbers).

    python bench/latency.py                                  # efficientnet_lite0, ImageNet backbone, 3 classes
    python bench/latency.py --ckpt outputs/<run>/checkpoints/best.ckpt --sizes 416 --runs 50 --threads 4
    python bench/latency.py --ckpt outputs/<run>/checkpoints/best.ckpt --int8 64 --threads 1   # FP32 vs INT8

On a machine other processes keep busy, take ``--threads 1``: with every core asked for, PyTorch's
OpenMP threads wait on descheduled peers and single runs jump from ~0.15 s to ~2.5 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import yolotl
from yolotl.inference import OnnxDetector, export_onnx, quantize_onnx
from yolotl.inference.preprocess import letterbox, load_image
from yolotl.ops import postprocess, scale_boxes_to_original

BCCD_IMAGE = Path(__file__).resolve().parents[2] / "shared/datasets/bccd/JPEGImages/BloodImage_00000.jpg"
STAGES = ("pre", "inference", "post")
Detection = dict[str, torch.Tensor]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", help="a yolotl-train checkpoint (default: efficientnet_lite0, ImageNet, 3 classes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640], help="square input sizes")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per runtime and size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads for both")
    parser.add_argument("--image", help="image file (default: a BCCD photo when present, else skimage astronaut)")
    parser.add_argument("--score-threshold", type=float, default=0.25)
    parser.add_argument("--int8", type=int, default=0, metavar="N",
                        help="also time the INT8 model, calibrated on N images (0: off)")
    parser.add_argument("--calibration", help="calibration image folder (default: the BCCD smears beside --image's)")
    return parser.parse_args()


def build_detector(ckpt: str | None) -> yolotl.YoloDetector:
    if ckpt:
        return yolotl.load(ckpt).detector
    return yolotl.create_detector("efficientnet_lite0", num_classes=3, pretrained="offline").eval()


def pick_image(path: str | None) -> tuple[Any, str]:
    """The source ``predict()`` would get: a file path (decoded in ``pre``) or an RGB array."""
    if path:
        return path, Path(path).name
    if BCCD_IMAGE.is_file():
        return str(BCCD_IMAGE), f"{BCCD_IMAGE.name} (BCCD)"
    from skimage import data

    return data.astronaut(), "skimage.data.astronaut()"


def gflops(detector: yolotl.YoloDetector, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        detector(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 1e9


class Pipeline:
    """One runtime's ``predict()`` on one image, cut into timed stages."""

    def __init__(self, name: str, infer: Callable[[torch.Tensor], Any], post: Callable[[Any], Detection]) -> None:
        self.name, self.infer, self.post = name, infer, post
        self.times: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}

    def run(self, source: Any, size: int, record: bool) -> Detection:
        start = time.perf_counter()
        array = load_image(source)
        boxed = letterbox(array, size)
        tensor = torch.from_numpy(boxed.image).permute(2, 0, 1)[None].float() / 255.0
        after_pre = time.perf_counter()
        outputs = self.infer(tensor)
        after_inference = time.perf_counter()
        det = self.post(outputs)
        det["boxes"] = scale_boxes_to_original(det["boxes"], boxed.scale, boxed.pad, array.shape[:2])
        end = time.perf_counter()
        if record:
            seconds = (after_pre - start, after_inference - after_pre, end - after_inference, end - start)
            for stage, value in zip((*STAGES, "total"), seconds):
                self.times[stage].append(value * 1000)
        return det


def calibration_images(folder: str | None, count: int) -> list[Path]:
    """``count`` images spread over ``folder`` (default: the BCCD smears), for the INT8 model."""
    root = Path(folder) if folder else BCCD_IMAGE.parent
    found = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not found:
        raise SystemExit(f"no calibration images in {root}; pass --calibration <image folder>")
    return found[:: max(1, len(found) // count)][:count]


def pipelines(
    detector: yolotl.YoloDetector, raw: OnnxDetector, nms: OnnxDetector, threshold: float,
    int8: OnnxDetector | None = None,
) -> list[Pipeline]:
    settings = {"score_threshold": threshold, "iou_threshold": 0.6, "max_detections": 300}

    def torch_infer(tensor: torch.Tensor) -> Any:
        with torch.inference_mode():
            return detector(tensor)

    def torch_post(outputs: Any) -> Detection:
        with torch.inference_mode():
            return postprocess(*detector.decode(outputs), **settings)[0]

    runs = [
        Pipeline("PyTorch", torch_infer, torch_post),
        Pipeline("ONNX Runtime", raw.boxes_and_scores, lambda out: postprocess(*out, **settings)[0]),
        Pipeline("ONNX Runtime, NMS in graph", lambda t: nms.detect(t, **settings), lambda out: out[0]),
    ]
    if int8 is not None:
        runs.append(Pipeline("ONNX Runtime INT8", int8.boxes_and_scores, lambda out: postprocess(*out, **settings)[0]))
    return runs


def stats(values: list[float]) -> str:
    return f"{np.median(values):.1f} / {np.percentile(values, 90):.1f}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    detector = build_detector(args.ckpt)
    source, image_name = pick_image(args.image)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        raw = OnnxDetector(export_onnx(detector, Path(folder) / "raw.onnx"), ["CPUExecutionProvider"], args.threads)
        nms = OnnxDetector(
            export_onnx(detector, Path(folder) / "nms.onnx", nms=True), ["CPUExecutionProvider"], args.threads
        )
        int8 = None
        if args.int8:
            images = calibration_images(args.calibration, args.int8)
            int8 = OnnxDetector(quantize_onnx(raw.path, images), ["CPUExecutionProvider"], args.threads)
        for size in args.sizes:
            runs = pipelines(detector, raw, nms, args.score_threshold, int8)
            for i in range(args.warmup + args.runs):
                counts = {p.name: len(p.run(source, size, record=i >= args.warmup)["scores"]) for p in runs}
            rows += [(size, p, counts[p.name]) for p in runs]
    print_report(args, detector, image_name, rows)


def print_report(args: argparse.Namespace, detector: yolotl.YoloDetector, image_name: str, rows: list) -> None:
    params = sum(p.numel() for p in detector.parameters())
    flops = ", ".join(f"{gflops(detector, s):.2f} GFLOPs at {s}" for s in args.sizes)
    model = f"{detector.config.backbone}, {detector.num_classes} classes"
    print(f"model: {model}, {params / 1e6:.2f} M parameters; {flops}")
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.1f}; "
        f"torch {torch.__version__}, onnxruntime {_ort_version()}; image {image_name}; batch 1; "
        f"{args.runs} runs after {args.warmup} warm-up; median / p90 ms\n"
    )
    print("| runtime | size | pre | inference | post | total | detections |")
    print("|---|---|---|---|---|---|---|")
    for size, pipeline, count in rows:
        cells = " | ".join(stats(pipeline.times[stage]) for stage in (*STAGES, "total"))
        print(f"| {pipeline.name} | {size} | {cells} | {count} |")


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
