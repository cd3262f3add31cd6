"""Benchmark: where a CPU training step's time goes, per transfer strategy.

For each strategy, ``--steps`` timed training steps (after ``--warmup``) of the default detector
(efficientnet_lite0, offline ImageNet weights, the strategy's freezing applied) on BCCD batches
already in memory, split into:

- forward: backbone, neck, head (forward hooks);
- assigner (task-aligned assignment) and the rest of the loss (CIoU + DFL + BCE);
- backward: loss and head, neck, backbone (tensor hooks on the neck's and the backbone's outputs
  mark when their gradients arrive; the parts overlap a little where autograd interleaves them);
- optimizer step (AdamW over the trainable parameters);
- data: the single-process cost of building those batches (decode from the RAM cache, augment,
  mosaic, collate) per batch; with ``data.loader.num_workers`` workers this runs beside the step.

    python bench/profile_train.py                                  # the three strategies, 416 px, batch 16
    python bench/profile_train.py --strategies end_to_end --threads 2 --steps 20
    python bench/profile_train.py --strategies end_to_end --ops 25   # and PyTorch's 25 costliest operators
    python bench/profile_train.py --system-malloc    # glibc's defaults, as without yolotl.ReuseFreedMemory

Freed tensors stay in the heap for the next step (``yolotl.allocator.reuse_freed_memory``, what
``yolotl-train``'s ``ReuseFreedMemory`` callback does on a CPU) unless ``--system-malloc``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import yolotl
from yolotl.allocator import reuse_freed_memory
from yolotl.training import DetectionModule, EndToEnd, FeatureExtract, Finetune

BCCD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bccd"
PARTS = ("backbone fwd", "neck fwd", "head fwd", "assigner", "loss (rest)", "loss+head bwd", "neck bwd",
         "backbone bwd", "optimizer step")


class _Clock:
    """Named time marks of one step."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def mark(self, name: str, first: bool = False) -> None:
        if first and name in self.marks:
            return
        self.marks[name] = time.perf_counter()


class _TimedAssigner:
    def __init__(self, assigner: Any, clock: _Clock) -> None:
        self.assigner, self.clock = assigner, clock

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.clock.mark("assign start")
        out = self.assigner(*args, **kwargs)
        self.clock.mark("assign end")
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.assigner, name)


def _gradient_marks(outputs: Any, clock: _Clock, name: str) -> None:
    tensors = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
            tensor.register_hook(lambda grad: clock.mark(name, first=True) or grad)


def instrument(module: DetectionModule, clock: _Clock) -> None:
    detector = module.detector
    detector.backbone.register_forward_pre_hook(lambda m, i: clock.mark("fwd start"))
    def after(name: str, gradient: str | None = None):
        def hook(module: Any, inputs: Any, outputs: Any) -> None:
            clock.mark(name)
            if gradient:
                _gradient_marks(outputs, clock, gradient)
        return hook

    detector.backbone.register_forward_hook(after("backbone end", "grad at backbone"))
    detector.neck.register_forward_hook(after("neck end", "grad at neck"))
    detector.head.register_forward_hook(after("head end"))
    module.loss.assigner = _TimedAssigner(module.loss.assigner, clock)


def split(marks: dict[str, float]) -> dict[str, float]:
    """Milliseconds per part from one step's marks (a part without its marks, e.g. no backward through a
    frozen backbone, is 0)."""
    m = marks
    out = {
        "backbone fwd": m["backbone end"] - m["fwd start"],
        "neck fwd": m["neck end"] - m["backbone end"],
        "head fwd": m["head end"] - m["neck end"],
        "assigner": m["assign end"] - m["assign start"],
        "loss (rest)": (m["loss end"] - m["head end"]) - (m["assign end"] - m["assign start"]),
    }
    neck_grad = m.get("grad at neck", m["bwd end"])
    backbone_grad = m.get("grad at backbone", m["bwd end"])
    out["loss+head bwd"] = neck_grad - m["loss end"]
    out["neck bwd"] = backbone_grad - neck_grad
    out["backbone bwd"] = m["bwd end"] - backbone_grad
    out["optimizer step"] = m["step end"] - m["bwd end"]
    return {k: 1000 * v for k, v in out.items()}


def profile(strategy_name: str, batches: list, args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    detector = yolotl.create_detector("efficientnet_lite0", class_names=["RBC", "WBC", "Platelets"],
                                      pretrained="offline", image_size=args.image_size)
    strategy = {"feature_extract": FeatureExtract, "finetune": Finetune, "end_to_end": EndToEnd}[strategy_name]()
    module = DetectionModule(detector, strategy=strategy)
    strategy.apply(module, 0)
    module.train()
    detector.train()
    strategy.apply(module, 0)  # pinned norms back in eval mode after train()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    clock = _Clock()
    instrument(module, clock)
    times: dict[str, list[float]] = defaultdict(list)
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True)
    for index, batch in enumerate(batches):
        if args.ops and index == args.warmup:
            profiler.start()
        clock.marks = {}
        start = time.perf_counter()
        _, losses = module._losses(batch)
        clock.mark("loss end")
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        clock.mark("bwd end")
        optimizer.step()
        clock.mark("step end")
        if index >= args.warmup:
            for part, value in split(clock.marks).items():
                times[part].append(value)
            times["step total"].append(1000 * (clock.marks["step end"] - start))
    if args.ops:
        profiler.stop()
        print(f"\n{strategy_name}: PyTorch's {args.ops} costliest operators (self CPU time over {args.steps} steps, "
              "by input shapes)")
        print(profiler.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                                      row_limit=args.ops, max_name_column_width=40))
    return {part: float(np.median(values)) for part, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=["feature_extract", "finetune", "end_to_end"])
    parser.add_argument("--image-size", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--system-malloc", action="store_true", help="glibc's default allocation (mmap for big blocks)")
    parser.add_argument("--ops", type=int, default=0, help="also print PyTorch's N costliest operators (torch.profiler)")
    parser.add_argument("--root", default=str(BCCD))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.system_malloc:
        reuse_freed_memory()

    data = yolotl.DetectionDataModule(args.root, format="voc", image_size=args.image_size, batch_size=args.batch_size,
                                      reading={"class_names": ["RBC", "WBC", "Platelets"]}, loader={"num_workers": 0})
    data.setup("fit")
    for _ in data.train_dataloader():  # one pass fills the RAM cache; time batches after it
        pass
    batches, start = [], time.perf_counter()
    while len(batches) < args.warmup + args.steps:  # as many epochs as the steps need
        batches += list(itertools.islice(data.train_dataloader(), args.warmup + args.steps - len(batches)))
    data_ms = 1000 * (time.perf_counter() - start) / len(batches)

    results = {name: profile(name, batches, args) for name in args.strategies}
    print(f"\nBCCD, {args.image_size} px, batch {args.batch_size}, {args.threads} threads, median of {args.steps} "
          f"steps after {args.warmup}; load average {os.getloadavg()[0]:.2f}; milliseconds per step\n")
    print("| part | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for part in (*PARTS, "step total"):
        print(f"| {part} | " + " | ".join(f"{results[name].get(part, 0.0):.0f}" for name in results) + " |")
    print(f"| data (one process, per batch) | " + " | ".join(f"{data_ms:.0f}" for _ in results) + " |")
    for name, parts in results.items():
        print(f"{name}: {args.batch_size / parts['step total'] * 1000:.1f} images/s for the step alone")


if __name__ == "__main__":
    main()
