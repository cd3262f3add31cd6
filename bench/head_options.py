"""Benchmark: ONNX Runtime latency of the detector's neck and head options, side by side (batch 1, CPU).

Each variant is the default detector (efficientnet_lite0, offline ImageNet weights, 3 classes) with some
``create_detector`` settings changed (``neck``, ``head``, ``reg_max``, ``neck_width``...). Every variant's
whole exported graph (``yolotl.export_onnx(dynamic=False)``: backbone, neck, head and box decoding, no
NMS) is timed with ONNX Runtime, median of ``--runs`` after 5 warm-ups; the variants take turns within
each round and the best of ``--rounds`` rounds is kept, so a drift in the machine's speed hits them
alike. Also printed: parameters and GFLOPs (2 per multiply-add, Ultralytics' convention). Run it on a
quiet machine::

    python bench/head_options.py                                  # the built-in variants, 640 px, 1 and 2 threads
    python bench/head_options.py --sizes 320 640 --variant "neck=light head=light reg_max=1"
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import yolotl
from yolotl.inference import export_onnx

VARIANTS = (
    "",  # today's default: CSP PAN, dense decoupled head, reg_max 16
    "reg_max=1",
    "head=light",
    "neck=light",
    "neck=light head=light",
    "neck=light head=light reg_max=1",
)


def parse_variant(text: str) -> dict[str, object]:
    """``"neck=light reg_max=1"`` -> ``{"neck": "light", "reg_max": 1}`` (numbers become ints)."""
    settings: dict[str, object] = {}
    for item in text.split():
        key, _, value = item.partition("=")
        settings[key] = int(value) if value.lstrip("-").isdigit() else value
    return settings


def gflops(detector: torch.nn.Module, size: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        detector(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def median_ms(session, feed: dict, runs: int) -> float:
    for _ in range(5):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="create_detector settings, e.g. 'neck=light head=light' "
                        "(repeatable; default: the built-in list; '' is today's default)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[640])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    variants = args.variant if args.variant is not None else list(VARIANTS)
    load_start = os.getloadavg()[0]

    rows: dict[str, dict[str, float]] = {v: {} for v in variants}
    with tempfile.TemporaryDirectory(prefix="yolotl-heads-") as tmp:
        for size in args.sizes:
            paths = []
            for index, variant in enumerate(variants):
                detector = yolotl.create_detector("efficientnet_lite0", class_names=["RBC", "WBC", "Platelets"],
                                                  pretrained="offline", image_size=size, **parse_variant(variant))
                detector.eval()
                rows[variant]["params_m"] = sum(p.numel() for p in detector.parameters()) / 1e6
                rows[variant][f"gflops_{size}"] = gflops(detector, size)
                paths.append(export_onnx(detector, Path(tmp) / f"v{index}_{size}.onnx", dynamic=False))
            feed = {"images": np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)}
            for threads in args.threads:
                options = ort.SessionOptions()
                options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
                sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
                rounds = [[median_ms(s, feed, args.runs) for s in sessions] for _ in range(args.rounds)]
                for index, variant in enumerate(variants):
                    rows[variant][f"{size}px_{threads}t"] = min(r[index] for r in rounds)

    columns = [f"{s}px_{t}t" for s in args.sizes for t in args.threads]
    print(f"\nONNX Runtime {ort.__version__}, batch 1, whole graph with decoding (dynamic=False), median ms of "
          f"{args.runs} runs, best of {args.rounds} rounds; load average {load_start:.2f} at the start, "
          f"{os.getloadavg()[0]:.2f} at the end\n")
    print("| variant | params (M) | " + " | ".join(f"GFLOPs {s}" for s in args.sizes) + " | "
          + " | ".join(f"{c.replace('px_', ' px, ').replace('t', ' thr')} ms" for c in columns) + " |")
    print("|---|---|" + "---|" * (len(args.sizes) + len(columns)))
    for variant in variants:
        row = rows[variant]
        print(f"| {variant or 'default (pan, decoupled, reg_max=16)'} | {row['params_m']:.2f} | "
              + " | ".join(f"{row[f'gflops_{s}']:.2f}" for s in args.sizes) + " | "
              + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
