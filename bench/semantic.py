"""Semantic segmentation evidence: indoor_semseg on a block split of its frames, ImageNet start against
random start at the same budget (and, with ``--datasets indoor animals``, animals_seg through the
instance-to-class maps).

indoor_semseg's given splits interleave the frames of one walk-through video (valid frame 0001 lies
between train frames 0000 and 0002; see its DEFECTS.md), so scores on them are optimistic. This script
writes a re-split by contiguous blocks of frame numbers, and writes the split down (``split.csv``) so
anyone can repeat it:

- every frame number found in any split is one unit (train holds 3 augmented copies of each of its
  frames: the copies of a frame always go together);
- frames are sorted by number and cut into blocks of ``--block`` consecutive frames; block ``i`` goes to val
  when ``i % 8 == 3``, to test when ``i % 8 == 7``, else to train (6:1:1, spread over the whole walk);
- train frames within ``--gap`` frame numbers of a val or test frame are dropped (neighbouring frames
  are near-identical);
- ``--copies 1`` (default) keeps one file per frame (the unaugmented val/test original where there is
  one, else the first augmented train copy); ``--copies all`` keeps every train copy (3x the epoch time).

The split is written as symlinks in the Roboflow PNG-mask layout under ``<out>/data`` (the dataset itself
is not touched), then each start trains through the real ``yolotl-train`` CLI
(``experiment=indoor_semseg``, 320 px, ``--epochs``; the random start with ``strategy=end_to_end
strategy.norm=train``, see :func:`start_overrides`), picks on val, scores on test, and one Markdown
table is printed (test mIoU, pixel accuracy, val mIoU, epochs, wall time) and written to
``<out>/semantic.json``. Finished runs are not trained again.

    python bench/semantic.py --out bench-runs/semantic --epochs 30
    python bench/semantic.py --out bench-runs/semantic-animals --epochs 12 --datasets animals
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FRAME = re.compile(r"frame_(\d+)")
SPLITS = ("train", "valid", "test")


def frame_files(root: Path) -> dict[int, dict[str, list[Path]]]:
    """frame number -> {given split: image files of that frame}, over every split of indoor_semseg."""
    frames: dict[int, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for split in SPLITS:
        for image in sorted((root / split).glob("*.jpg")):
            match = FRAME.search(image.name)
            if match:
                frames[int(match.group(1))][split].append(image)
    return frames


def block_split(frames: list[int], block: int, gap: int) -> dict[int, str]:
    """frame -> train / valid / test by blocks of ``block`` consecutive frame numbers (see the module doc)."""
    assigned = {}
    for rank, frame in enumerate(sorted(frames)):  # blocks of consecutive frames (the numbers have gaps)
        index = rank // block
        assigned[frame] = "valid" if index % 8 == 3 else "test" if index % 8 == 7 else "train"
    held_out = [f for f, s in assigned.items() if s != "train"]
    for frame in frames:
        if assigned[frame] == "train" and any(abs(frame - other) <= gap for other in held_out):
            assigned[frame] = "dropped"
    return assigned


def write_split(root: Path, out: Path, block: int, gap: int, copies: str) -> Path:
    """The block split as symlinks in the PNG-mask layout under ``out/data``; ``out/split.csv`` lists it."""
    frames = frame_files(root)
    assigned = block_split(sorted(frames), block, gap)
    data = out / "data"
    rows = []
    for split in SPLITS:
        (data / split).mkdir(parents=True, exist_ok=True)
        link = data / split / "_classes.csv"
        if not link.exists():
            link.symlink_to((root / "train" / "_classes.csv").resolve())
    for frame, split in sorted(assigned.items()):
        given = frames[frame]
        if split == "dropped":
            rows.append((frame, split, ""))
            continue
        originals = given.get("valid", []) + given.get("test", [])
        if copies == "all" and split == "train":
            images = [*given.get("train", []), *originals]
        else:
            images = (originals or given.get("train", []))[:1]
        for image in images:
            for source in (image, image.with_name(image.stem + "_mask.png")):
                target = data / split / source.name
                if source.exists() and not target.exists():
                    target.symlink_to(source.resolve())
        rows.append((frame, split, " ".join(f"{p.parent.name}/{p.name}" for p in images)))
    with open(out / "split.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "split", "files (given split/name)"])
        writer.writerows(rows)
    counts = {s: sum(1 for _, split, _ in rows if split == s) for s in (*SPLITS, "dropped")}
    print(f"block split (block {block}, gap {gap}, copies {copies}): frames {counts}; written to {out / 'split.csv'}")
    return data


def start_overrides(start: str) -> list[str]:
    """The ImageNet start as a user gets it (recipe=auto picks the strategy); the random start trains
    everything, norm statistics included (frozen norms keep a random backbone's initial statistics, which
    no from-scratch recipe would do)."""
    if start == "imagenet":
        return ["pretrained=auto"]
    return ["pretrained=false", "strategy=end_to_end", "strategy.norm=train"]


def train(name: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """One run through the real yolotl-train (skipped when its metrics.json exists)."""
    run_dir = out / name
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        command = [sys.executable, "-m", "yolotl.cli.train", *overrides, f"hydra.run.dir={run_dir}"]
        print(f"{name}: yolotl-train {' '.join(overrides)}", flush=True)
        subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return json.loads(metrics.read_text())


def row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    test, val = metrics.get("test", {}), metrics.get("val", {})
    return {"run": name, "test_miou": test.get("miou"), "test_pixel_acc": test.get("pixel_acc"),
            "val_miou": val.get("miou"), "epochs": metrics.get("epochs"), "wall_s": metrics.get("wall_time_s"),
            "images_per_s": metrics.get("images_per_s"), "strategy": metrics.get("strategy"),
            "test_iou": {k[len("iou/"):]: round(v, 3) for k, v in test.items() if k.startswith("iou/")}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets-root", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--out", default="bench-runs/semantic")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--gap", type=int, default=2)
    parser.add_argument("--copies", choices=("1", "all"), default="1")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--starts", nargs="+", default=["imagenet", "random"], choices=("imagenet", "random"))
    parser.add_argument("--datasets", nargs="+", default=["indoor"], choices=("indoor", "animals"),
                        help="indoor: indoor_semseg on the block split; animals: animals_seg (COCO instances -> class maps)")
    parser.add_argument("--override", action="append", default=[], help="extra yolotl-train override")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    datasets = Path(args.datasets_root).resolve()
    common = [f"trainer.max_epochs={args.epochs}", f"seed={args.seed}", *args.override]
    results = []
    if "indoor" in args.datasets:
        data = write_split(datasets / "indoor_semseg", out, args.block, args.gap, args.copies)
    for start in args.starts if "indoor" in args.datasets else []:
        name = f"indoor-{start}-s{args.seed}"
        metrics = train(name, out, ["experiment=indoor_semseg", f"data.root={data}", *start_overrides(start),
                                    *common])
        results.append(row(name, metrics))
    if "animals" in args.datasets:
        for start in args.starts:
            name = f"animals-{start}-s{args.seed}"
            metrics = train(name, out, ["data=coco", f"data.root={datasets / 'animals_seg'}",
                                        "data.reading.val_split=valid", "data.image_size=320",
                                        "model.detector.task=semantic", *start_overrides(start), *common])
            results.append(row(name, metrics))
    (out / "semantic.json").write_text(json.dumps(results, indent=1))
    print("\n| run | test mIoU | test pixel acc | val mIoU | epochs | wall s | train img/s | strategy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        cells = [r["run"], *(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                             for k in ("test_miou", "test_pixel_acc", "val_miou", "epochs", "wall_s", "images_per_s",
                                       "strategy"))]
        print("| " + " | ".join(cells) + " |")
    for r in results:
        print(f"{r['run']} test IoU per class: {r['test_iou']}")


if __name__ == "__main__":
    main()
