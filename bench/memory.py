"""Peak memory of CPU training: peak RSS per transfer strategy, image size and batch size.

Each cell is one ``yolotl-train`` process (BCCD, efficientnet_lite0 with its offline ImageNet weights,
``data.loader.num_workers=0`` so the whole run is one process) that trains a few steps and stops; its peak
resident set size comes from the kernel (``os.wait4``'s ``ru_maxrss``), so the figure includes
Python, torch, the model, the optimizer state, the decoded-image cache and the activations of the
largest step. Data-loader workers (the default ``data.loader.num_workers``) add their own processes on top.
A busy machine makes it slower, not bigger.

    python bench/memory.py                           # 3 strategies x 320/416/640 px x batch 8/16
    python bench/memory.py --sizes 416 --batches 16 --strategies finetune
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"


def peak_rss_mib(strategy: str, size: int, batch: int, steps: int, root: Path, work: Path) -> tuple[float, float, int]:
    """Run a few training steps in a fresh process; (peak RSS in MiB, wall s, exit status)."""
    command = [
        sys.executable, "-m", "yolotl.cli.train", "data=voc", f"data.root={root}", "data.reading.class_names=[RBC,WBC,Platelets]",
        "recipe=fixed", f"strategy={strategy}", f"data.image_size={size}", f"data.batch_size={batch}", "data.loader.num_workers=0",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=0",
        "test_after_fit=false", "logger=csv", f"paths.output_dir={work / f'{strategy}-{size}-{batch}'}",
        f"data.checks.health_cache={work / 'health'}",
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        print(process.stderr.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, wall, process.returncode  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=["feature_extract", "finetune", "end_to_end"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[320, 416, 640])
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 16])
    parser.add_argument("--steps", type=int, default=3, help="training steps per cell")
    parser.add_argument("--root", default=str(BCCD), help="the BCCD dataset (VOC)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="yolotl-memory-") as tmp:
        for strategy in args.strategies:
            for size in args.sizes:
                for batch in args.batches:
                    rss, wall, code = peak_rss_mib(strategy, size, batch, args.steps, Path(args.root), Path(tmp))
                    rows.append({"strategy": strategy, "image_size": size, "batch": batch, "peak_rss_mib": round(rss),
                                 "wall_s": round(wall, 1), "exit": code})
                    print(f"{strategy:16s} {size:4d} px  batch {batch:3d}: peak RSS {rss:7.0f} MiB  "
                          f"({wall:.0f} s{'' if code == 0 else f', exit {code}'})", flush=True)
    print("\n| strategy | " + " | ".join(f"{s} px, batch {b}" for s in args.sizes for b in args.batches) + " |")
    print("|---|" + "---|" * (len(args.sizes) * len(args.batches)))
    for strategy in args.strategies:
        cells = [next(r for r in rows if (r["strategy"], r["image_size"], r["batch"]) == (strategy, s, b))
                 for s in args.sizes for b in args.batches]
        # A cell whose run failed after training (exit != 0) still measured its training steps: marked *.
        print(f"| {strategy} | " + " | ".join(f"{c['peak_rss_mib'] / 1024:.2f} GiB{'' if c['exit'] == 0 else '*'}"
                                             for c in cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
