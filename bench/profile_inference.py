"""Benchmark: where the ONNX Runtime inference time goes, part by part (batch 1, CPU).

Exports three graphs of the default detector (efficientnet_lite0, offline ImageNet weights, 3 classes)
that stop after the backbone, after the neck and after the head (raw maps), plus the full exported
graph (``yolotl.export_onnx``: head maps decoded into boxes and scores; dynamic shapes, and once more
with ``dynamic=False``), and times each with ONNX
Runtime: median of ``--runs`` after 5 warm-ups, per thread count. A part's cost is the difference
between two graphs; graphs take turns within each thread count, so a drift in machine speed hits
them alike. Run it on a quiet machine.

    python bench/profile_inference.py                     # 640 px, 1 and 2 threads
    python bench/profile_inference.py --size 416 --threads 1
    python bench/profile_inference.py --detector neck=light head=light   # another architecture
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import yolotl
from yolotl.inference import export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_options import median_ms, parse_variant  # noqa: E402  (bench/ is not a package)

PARTS = ("backbone", "neck", "head", "decode")


class _Prefix(nn.Module):
    """The detector's forward pass up to and including ``parts`` (1 = backbone ... 3 = head)."""

    def __init__(self, detector: nn.Module, parts: int) -> None:
        super().__init__()
        self.detector, self.parts = detector, parts

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = self.detector
        x = d.backbone((images - d.mean) / d.std)
        if self.parts >= 2:
            x = d.neck(x)
        if self.parts >= 3:
            head = d.head(x)
            x = [*head.box_maps, *head.cls_maps]
        return tuple(x)


def main() -> None:
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--detector", nargs="*", default=[], metavar="KEY=VALUE",
                        help="create_detector settings, e.g. neck=light head=light reg_max=1")
    args = parser.parse_args()

    settings = parse_variant(" ".join(args.detector))
    detector = yolotl.create_detector("efficientnet_lite0", class_names=["RBC", "WBC", "Platelets"],
                                      pretrained="offline", image_size=args.size, **settings).eval()
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="yolotl-profile-") as tmp:
        paths = []
        for parts in (1, 2, 3):
            path = Path(tmp) / f"upto{parts}.onnx"
            torch.onnx.export(_Prefix(detector, parts).eval(), (x,), str(path), opset_version=18, dynamo=False,
                              input_names=["images"], dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}})
            paths.append(path)
        paths.append(export_onnx(detector, Path(tmp) / "full.onnx"))  # dynamic batch and size, as exported
        paths.append(export_onnx(detector, Path(tmp) / "static.onnx", dynamic=False))
        cumulative = {}
        for threads in args.threads:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
            feed = {"images": x.numpy()}
            rounds = [[median_ms(s, feed, args.runs) for s in sessions] for _ in range(2)]
            cumulative[threads] = [min(r[i] for r in rounds) for i in range(len(paths))]

    print(f"\n{' '.join(args.detector) or 'default detector'}: ONNX Runtime, {args.size} px, batch 1, median ms of {args.runs} runs (best of 2 rounds); "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| part | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in args.threads) + " |")
    print("|---|" + "---|" * len(args.threads))
    for index, part in enumerate(PARTS):
        cells = []
        for threads in args.threads:
            values = cumulative[threads]
            cells.append(f"{values[index] - (values[index - 1] if index else 0.0):.1f}")
        print(f"| {part} | " + " | ".join(cells) + " |")
    print("| whole graph (dynamic shapes, yolotl-export's default) | "
          + " | ".join(f"{cumulative[t][3]:.1f}" for t in args.threads) + " |")
    print("| whole graph, `dynamic=false` | " + " | ".join(f"{cumulative[t][4]:.1f}" for t in args.threads) + " |")


if __name__ == "__main__":
    main()
