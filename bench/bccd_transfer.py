"""Benchmark: transfer strategies and ImageNet vs random start on BCCD, at a fixed budget.

Trains each variant with the same data, image size (416), batch (16) and epoch budget, selects the
checkpoint on val, scores it on test (BENCHMARKS.md protocol), and prints one Markdown table.
Finished variants (a metrics.json in their folder) are not trained again, so an interrupted
benchmark resumes where it stopped.

    python bench/bccd_transfer.py --data-root ../shared/datasets/bccd --epochs 30 --out bench-runs/bccd
    python bench/bccd_transfer.py --variants finetune,finetune_random --epochs 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from yolotl.api import config_dir, train

VARIANTS: dict[str, list[str]] = {
    "finetune": ["strategy=finetune", "pretrained=auto"],
    "finetune_random": ["strategy=finetune", "pretrained=false"],
    "feature_extract": ["strategy=feature_extract", "pretrained=auto"],
    "end_to_end": ["strategy=end_to_end", "pretrained=auto"],
    "end_to_end_random": ["strategy=end_to_end", "pretrained=false"],
}


def run_variant(name: str, args: argparse.Namespace) -> dict:
    run_dir = Path(args.out) / name
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    overrides = [
        "experiment=bccd",
        "recipe=fixed",  # the variants compare configured settings; recipe=auto would change them
        f"data.root={args.data_root}",
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
    header = "| variant | start | epochs | test mAP50 | test mAP50-95 | AP50 RBC / WBC / Platelets | trainable params | train img/s | wall s |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for name, m in results.items():
        test = m.get("test", {})
        per_class = " / ".join(f"{test.get(f'ap50/{c}', float('nan')):.3f}" for c in ("RBC", "WBC", "Platelets"))
        start = "random" if m.get("pretrained") in ("False", "false") else "ImageNet"
        lines.append(
            f"| {name} | {start} | {m['epochs']} | {test.get('map_50', float('nan')):.3f} | "
            f"{test.get('map', float('nan')):.3f} | {per_class} | {m.get('trainable_params')} | "
            f"{m.get('images_per_s')} | {m.get('wall_time_s')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/datasets/bccd")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="bench-runs/bccd")
    parser.add_argument("--variants", default="finetune,finetune_random,feature_extract,end_to_end")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every variant")
    args = parser.parse_args()
    results = {name: run_variant(name, args) for name in args.variants.split(",")}
    print(table(results))


if __name__ == "__main__":
    main()
