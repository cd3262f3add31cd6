"""Benchmark: a trained segmenter's masks from ONNX Runtime against PyTorch on real photos, original pixels.

Exports the checkpoint (FP32), predicts every image of a folder with both runtimes, pairs instances one
to one by class, box (IoU > 0.9) and mask, and prints the mask IoU of the pairs and how many were left
unpaired.

    python bench/onnx_mask_parity.py outputs/<run>/checkpoints/best.ckpt ../shared/datasets/animals_seg/test
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

import yolotl
from yolotl.inference import OnnxDetector, export_onnx


def mask_ious(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` and ``[M, H, W]`` bool -> ``[N, M]`` IoU (two empty masks agree: 1)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("images", help="a folder of photos")
    parser.add_argument("--score-threshold", type=float, default=0.25)
    args = parser.parse_args()

    photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    detector = yolotl.load(args.checkpoint)
    ious, unpaired = [], 0
    with tempfile.TemporaryDirectory() as folder:
        runtime = OnnxDetector(export_onnx(detector, Path(folder) / "model.onnx"), ["CPUExecutionProvider"])
        for photo in photos:
            want = detector.predict(photo, score_threshold=args.score_threshold)[0]
            got = runtime.predict(photo, score_threshold=args.score_threshold)[0]
            same = (want["labels"][:, None] == got["labels"][None]) & (box_iou(want["boxes"], got["boxes"]) > 0.9)
            iou = mask_ious(want["masks"], got["masks"]) * same
            rows, cols = linear_sum_assignment(iou.numpy(), maximize=True)
            paired = [(i, j) for i, j in zip(rows, cols) if same[i, j]]
            ious += [float(iou[i, j]) for i, j in paired]
            unpaired += len(want["boxes"]) + len(got["boxes"]) - 2 * len(paired)
    values = np.array(ious) if ious else np.array([np.nan])
    print(f"{len(photos)} photos, {len(ious)} paired instances (score >= {args.score_threshold}), {unpaired} unpaired; "
          f"mask IoU min {values.min():.4f}, median {np.median(values):.4f}, share > 0.98 {(values > 0.98).mean():.3f}")


if __name__ == "__main__":
    main()
