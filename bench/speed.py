"""Benchmark: yolotl's CPU speed beside YOLOv8n's, measured in one window.

Prints one table:

- training images/s per strategy (``feature_extract``, ``finetune``, ``end_to_end``): BCCD, 416 px,
  batch 16, efficientnet_lite0 with its offline ImageNet weights, whole epochs with data loading and
  without validation (``images_per_s`` of ``yolotl-train``'s metrics.json, one process per strategy);
- model-only latency, batch 1, median of ``--runs`` after 5 warm-ups, per runtime (PyTorch, ONNX
  Runtime FP32, ONNX Runtime INT8 calibrated on BCCD training images), size (320, 640) and intra-op
  threads (1, 2): the network alone (PyTorch: raw head maps; ONNX: the graph with box decoding), no
  letterbox, no NMS, as the YOLOv8n reference times its ONNX graph.

With ``--reference`` it first runs ``../shared/tools/yolov8n_reference.sh`` (YOLOv8n in its own scratch
environment: Ultralytics is never imported here) and adds ratios. Run it on a quiet machine (no
other job: the same command runs 2x slower when another shares the cores); the load average is printed
beside the figures.

    python bench/speed.py --reference                  # the whole protocol, about 15 minutes on 2 cores
    python bench/speed.py --skip-train --sizes 640     # latency only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
REFERENCE = REPO.parent / "shared" / "tools" / "yolov8n_reference.sh"
STRATEGIES = ("feature_extract", "finetune", "end_to_end")


def train_images_per_s(strategy: str, epochs: int, root: Path, work: Path, overrides: list[str]) -> float:
    """One ``yolotl-train`` process: ``epochs`` epochs of BCCD training, no validation or test."""
    out = work / strategy
    command = [
        sys.executable, "-m", "yolotl.cli.train", "data=voc", f"data.root={root}",
        "data.reading.class_names=[RBC,WBC,Platelets]", f"strategy={strategy}", "data.image_size=416", "data.batch_size=16",
        "recipe=fixed",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "test_after_fit=false", "logger=csv",
        f"hydra.run.dir={out}", f"data.checks.health_cache={work / 'health'}", *overrides,
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"yolotl-train ({strategy}) failed:\n{done.stderr[-3000:]}")
    return float(json.loads((out / "metrics.json").read_text())["images_per_s"])


def median_ms(run: Callable[[], object], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def latencies(sizes: list[int], threads: list[int], runs: int, calibration: int, work: Path,
              neck_width: int = 64) -> dict:
    """``{(runtime, size, threads): median ms}`` for PyTorch, ONNX Runtime FP32 and INT8."""
    import yolotl
    from yolotl.inference import OnnxDetector, export_onnx, quantize_onnx

    detector = yolotl.create_detector("efficientnet_lite0", class_names=["RBC", "WBC", "Platelets"],
                                      pretrained="offline", neck_width=neck_width).eval()
    fp32 = export_onnx(detector, work / "fp32.onnx")
    images = sorted((BCCD / "JPEGImages").glob("*.jpg"))
    train = set((BCCD / "ImageSets" / "Main" / "train.txt").read_text().split())
    images = [p for p in images if p.stem in train]
    int8 = quantize_onnx(fp32, images[:: max(1, len(images) // calibration)][:calibration], work / "int8.onnx")
    out = {}
    for count in threads:
        torch.set_num_threads(count)
        sessions = {"ONNX Runtime FP32": OnnxDetector(fp32, ["CPUExecutionProvider"], count),
                    "ONNX Runtime INT8": OnnxDetector(int8, ["CPUExecutionProvider"], count)}
        for size in sizes:
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            with torch.inference_mode():
                out["PyTorch", size, count] = median_ms(lambda: detector(x), 5, runs)
            for name, session in sessions.items():
                out[name, size, count] = median_ms(lambda s=session: s.boxes_and_scores(x), 5, runs)
    return out


def reference() -> dict[str, float]:
    """YOLOv8n's figures from the reference script's table."""
    done = subprocess.run(["bash", str(REFERENCE), str(BCCD)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{REFERENCE} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    values = {}
    for label, key in (("train images/s", "train"), ("1 thread", "ort_1"), ("2 threads", "ort_2"), ("load", "load")):
        match = re.search(rf"\| [^|]*{label}[^|]*\| ([0-9.]+) \|", done.stdout)
        if match:
            values[key] = float(match.group(1))
    print(done.stdout.strip(), flush=True)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="run the YOLOv8n reference first and add ratios")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per strategy")
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 640])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency cell")
    parser.add_argument("--calibration", type=int, default=64, help="INT8 calibration images")
    parser.add_argument("--neck-width", type=int, default=64, help="the detector's neck width (P3; P4, P5: 2x, 4x)")
    parser.add_argument("--train-override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more yolotl-train overrides, e.g. trainer.precision=bf16-mixed")
    args = parser.parse_args()

    ref = reference() if args.reference else {}
    print(f"\nyolotl: load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="yolotl-speed-") as tmp:
        train = {} if args.skip_train else {
            s: train_images_per_s(s, args.epochs, BCCD, Path(tmp),
                                  [f"model.detector.neck_width={args.neck_width}", *args.train_override])
            for s in args.strategies
        }
        latency = {} if args.skip_latency else latencies(args.sizes, args.threads, args.runs, args.calibration,
                                                          Path(tmp), args.neck_width)

    print("\n| measure | yolotl (efficientnet_lite0) | YOLOv8n | ratio |")
    print("|---|---|---|---|")
    for strategy, value in train.items():
        base = ref.get("train")
        ratio = f"{value / base:.2f}x" if base else "–"
        print(f"| train images/s, {strategy} (BCCD 416 px, batch 16) | {value:.2f} | {base or '–'} | {ratio} |")
    for (runtime, size, threads), value in sorted(latency.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        base = ref.get(f"ort_{threads}") if size == 640 else None
        ratio = f"{value / base:.2f}x the time" if base else "–"
        print(f"| {runtime}, {size} px, {threads} thread{'s' if threads > 1 else ''}, median ms | {value:.1f} | "
              f"{f'{base:.1f} (ONNX FP32)' if base else '–'} | {ratio} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
