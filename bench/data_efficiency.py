"""Benchmark: the data-efficiency curve. Does the ImageNet start help, and how much, per strategy?

For each transfer strategy (feature_extract, finetune, end_to_end), each start (ImageNet weights,
random initialisation) and each share of the training images (10%, 25%, 50%, 100%: seeded nested
subsets, every class present), train one detector and score its val-selected checkpoint on test.

Every run gets the same schedule in optimizer steps, so a small subset is not also a short
training: exactly ``--steps`` steps (``trainer.max_steps``; the epoch count follows from the subset
size), warmup over the first tenth of them (``--warmup-share``), mosaic off for about the last
tenth (``--close-mosaic-share``, rounded to whole epochs), val every ``--steps / --val-points``
steps (the last one at the end). Finished runs (a metrics.json in their folder) are not trained
again, so an interrupted benchmark resumes where it stopped.

It prints a Markdown table (rows: strategy and start; columns: fractions) and a WARNING line for
every strategy and fraction where the ImageNet start does not beat the random start (negative
transfer). ``--plot`` writes the curves as a PNG; ``--report-only`` reports the finished runs without training.

    python bench/data_efficiency.py --dataset bccd --data-root ../shared/datasets/bccd \\
        --image-size 256 --steps 60 --out bench-runs/efficiency --plot docs/img/efficiency_bccd.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from yolotl.api import config_dir, train
from yolotl.evaluation.score_line import score_line

EXPERIMENTS = {"bccd": "experiment=bccd", "aquarium": "experiment=aquarium"}
STARTS = {"imagenet": "pretrained=auto", "random": "pretrained=false"}


def compose_cfg(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def steps_per_epoch(base: list[str], fraction: float) -> int:
    """Optimizer steps in one epoch of the ``fraction`` subset (repeat-factor sampling included)."""
    cfg = compose_cfg([*base, f"data.selection.train_fraction={fraction}", "data.loader.cache=none", "data.loader.num_workers=0"])
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    return max(1, len(datamodule.train_dataloader()))


def epochs_without_mosaic(steps: int, per_epoch: int, share: float) -> int:
    """Final epochs (the last one partial under ``max_steps``) whose steps come nearest ``share`` of the run."""
    epochs = math.ceil(steps / per_epoch)
    last = steps - (epochs - 1) * per_epoch
    target = share * steps
    if target < last / 2:
        return 0
    return min(epochs - 1, 1 + max(0, round((target - last) / per_epoch)))


def run(strategy: str, start: str, fraction: float, args: argparse.Namespace, base: list[str]) -> dict:
    run_dir = Path(args.out) / args.dataset / f"{strategy}-{start}-{round(fraction * 100)}"
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    per_epoch = steps_per_epoch(base, fraction)
    epochs = max(1, math.ceil(args.steps / per_epoch))
    overrides = [
        *base,
        f"strategy={strategy}",
        "recipe=fixed",  # the cells compare configured settings; recipe=auto would change them
        STARTS[start],
        f"data.selection.train_fraction={fraction}",
        f"++trainer.max_steps={args.steps}",
        f"trainer.max_epochs={epochs}",
        "trainer.check_val_every_n_epoch=null",  # validate by steps, across epochs
        f"++trainer.val_check_interval={args.steps // args.val_points}",
        f"model.module.schedule.warmup_epochs={args.warmup_share * args.steps / per_epoch:.4f}",
        f"data.augment.close_mosaic={epochs_without_mosaic(args.steps, per_epoch, args.close_mosaic_share)}",
        f"paths.output_dir={run_dir}",
        *args.override,
    ]
    metrics = train(compose_cfg(overrides))
    print(f"{strategy} {start} {fraction:.0%}: {score_line('test', metrics.get('test', {}), ('map',))}"
          f"  ({metrics.get('steps')} steps, {epochs} epochs, {metrics['wall_time_s']} s)", flush=True)
    return metrics


def test_map(metrics: dict) -> float:
    return float(metrics.get("test", {}).get("map", float("nan")))


def table(results: dict[tuple[str, str, float], dict], fractions: list[float]) -> str:
    header = ["strategy", "start", *[f"{f:.0%} ({_images(results, f)} img)" for f in fractions]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for strategy, start in dict.fromkeys((s, st) for s, st, _ in results):
        cells = [f"{test_map(results[(strategy, start, f)]):.3f}" if (strategy, start, f) in results else ""
                 for f in fractions]
        lines.append("| " + " | ".join([strategy, start, *cells]) + " |")
    return "\n".join(lines)


def _images(results: dict, fraction: float) -> str:
    found = [m.get("train_images") for (_, _, f), m in results.items() if f == fraction]
    return str(found[0]) if found else "?"


def negative_transfer(results: dict[tuple[str, str, float], dict]) -> list[str]:
    """One line per strategy and fraction where ImageNet does not beat random (test mAP50-95)."""
    warnings = []
    for (strategy, start, fraction), metrics in results.items():
        other = results.get((strategy, "random", fraction))
        if start != "imagenet" or other is None:
            continue
        if test_map(metrics) <= test_map(other):
            warnings.append(f"WARNING: negative transfer: {strategy} at {fraction:.0%} of the images, ImageNet start "
                            f"{test_map(metrics):.4f} <= random start {test_map(other):.4f} (test mAP50-95)")
    return warnings


def plot(results: dict[tuple[str, str, float], dict], fractions: list[float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"feature_extract": "tab:blue", "finetune": "tab:orange", "end_to_end": "tab:green"}
    for strategy, start in dict.fromkeys((s, st) for s, st, _ in results):
        xs = [f * 100 for f in fractions if (strategy, start, f) in results]
        ys = [test_map(results[(strategy, start, f)]) for f in fractions if (strategy, start, f) in results]
        ax.plot(xs, ys, marker="o", color=colours.get(strategy), linestyle="-" if start == "imagenet" else "--",
                label=f"{strategy}, {start}")
    ax.set_xscale("log")
    ax.set_xticks([f * 100 for f in fractions], [f"{f:.0%}" for f in fractions])
    ax.set_xlabel("share of the training images")
    ax.set_ylabel("test mAP50-95")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(EXPERIMENTS), default="bccd")
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the experiment's)")
    parser.add_argument("--fractions", default="0.1,0.25,0.5,1.0")
    parser.add_argument("--strategies", default="feature_extract,finetune,end_to_end")
    parser.add_argument("--starts", default="imagenet,random")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (every fraction)")
    parser.add_argument("--val-points", type=int, default=3, help="validations per run (must divide --steps)")
    parser.add_argument("--warmup-share", type=float, default=0.1, help="share of the steps that warm the LR up")
    parser.add_argument("--close-mosaic-share", type=float, default=0.1, help="share of the steps without mosaic (whole epochs)")
    parser.add_argument("--image-size", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="bench-runs/efficiency")
    parser.add_argument("--plot", default=None, help="write the curves to this PNG")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    parser.add_argument("--report-only", action="store_true", help="report the finished runs, train nothing")
    args = parser.parse_args()
    if args.steps % args.val_points:
        parser.error(f"--val-points {args.val_points} must divide --steps {args.steps}: the last validation "
                     "must see the end of the run")
    base = [EXPERIMENTS[args.dataset], f"data.image_size={args.image_size}", f"data.batch_size={args.batch_size}",
            "logger=csv"]
    if args.data_root:
        base.append(f"data.root={args.data_root}")
    run_order = [float(f) for f in args.fractions.split(",")]  # e.g. 0.1,0.25,1.0,0.5: the ends first
    fractions = sorted(run_order)
    results = {}
    for fraction in run_order:
        for strategy in args.strategies.split(","):
            for start in args.starts.split(","):
                done = Path(args.out) / args.dataset / f"{strategy}-{start}-{round(fraction * 100)}" / "metrics.json"
                if args.report_only and not done.is_file():
                    continue
                results[(strategy, start, fraction)] = run(strategy, start, fraction, args, base)
    ordered = {k: results[k] for k in sorted(results, key=lambda k: (k[0], k[1] != "imagenet", k[2]))}
    print(f"\n{args.dataset}: test mAP50-95, {args.steps} steps of batch {args.batch_size} at {args.image_size} px")
    print(table(ordered, fractions))
    for line in negative_transfer(ordered):
        print(line)
    (Path(args.out) / args.dataset / "results.json").write_text(json.dumps(
        [{"strategy": s, "start": st, "fraction": f, "train_images": m.get("train_images"), "test_map": test_map(m),
          "test_map50": m.get("test", {}).get("map_50"), "epochs": m.get("epochs"), "steps": m.get("steps"), "wall_s": m.get("wall_time_s")}
         for (s, st, f), m in ordered.items()], indent=2))
    if args.plot:
        plot(ordered, fractions, f"{args.dataset}: {args.steps} steps, {args.image_size} px", Path(args.plot))


if __name__ == "__main__":
    main()
