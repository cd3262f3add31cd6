"""Benchmark: mosaic on vs off and the class-imbalance options, on Aquarium (7 classes).

Every variant trains the same detector (efficientnet_lite0, finetune strategy, ImageNet start)
with the same image size, batch, epochs and seed; only the named data or loss option changes.
The checkpoint is chosen on val and scored on test (BENCHMARKS.md protocol). The table shows
test mAP50-95 / mAP50 and the AP50-95 of every class, the rare ones (starfish, stingray)
first. Finished variants (a metrics.json in their folder) are not trained again.

    python bench/aquarium_data_options.py --data-root ../shared/datasets/aquarium --epochs 10 \\
        --image-size 320 --out bench-runs/aquarium
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from yolotl.api import config_dir, train

RARE = ("starfish", "stingray")
_OFF = ["data.selection.balance=null", "model.module.loss.classes=null"]
VARIANTS: dict[str, list[str]] = {  # every option spelled out: the result must not follow the defaults
    "mosaic": ["augment=medium", *_OFF],
    "no_mosaic": ["augment=medium", "data.augment.mosaic=0", *_OFF],
    "mosaic+repeat_factor": ["augment=medium", "data.selection.balance=repeat_factor", "model.module.loss.classes=null"],
    "mosaic+class_weights": ["augment=medium", "data.selection.balance=null", "model.module.loss.classes=inverse_sqrt"],
    "mosaic+both": ["augment=medium", "data.selection.balance=repeat_factor", "model.module.loss.classes=inverse_sqrt"],
}


def run_variant(name: str, args: argparse.Namespace) -> dict:
    run_dir = Path(args.out) / name
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    overrides = [
        "experiment=aquarium",
        "recipe=fixed",  # the variants compare configured settings; recipe=auto would change them
        f"data.root={args.data_root}",
        f"data.image_size={args.image_size}",
        f"trainer.max_epochs={args.epochs}",
        f"paths.output_dir={run_dir}",
        "logger=csv",
        *VARIANTS[name],
        *args.override,
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return train(cfg)


def table(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    classes = [k.split("/", 1)[1] for k in first.get("test", {}) if k.startswith("ap/")]
    classes = [c for c in RARE if c in classes] + [c for c in classes if c not in RARE]
    header = ["variant", "epochs", "test mAP50-95", "test mAP50", *[f"AP {c}" for c in classes], "train img/s", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, m in results.items():
        test = m.get("test", {})
        cells = [name, str(m["epochs"]), f"{test.get('map', float('nan')):.3f}", f"{test.get('map_50', float('nan')):.3f}"]
        cells += [f"{test.get(f'ap/{c}', float('nan')):.3f}" for c in classes]
        cells += [str(m.get("images_per_s")), str(m.get("wall_time_s"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/datasets/aquarium")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--out", default="bench-runs/aquarium")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    args = parser.parse_args()
    results = {}
    for name in args.variants.split(","):
        results[name] = run_variant(name, args)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
