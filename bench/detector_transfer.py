"""Benchmark: detector-to-detector transfer, keeping old classes, and knowledge distillation.

One chain of runs at one budget (image size, epochs, batch; checkpoint picked on val, scored on
test, BENCHMARKS.md protocol), every run an ordinary ``yolotl-train`` config:

1. ``aquarium_source``: efficientnet_lite0 from ImageNet, trained on Aquarium (7 classes).
2. Transfer to BCCD (3 other classes), same budget: ``bccd_imagenet`` (ImageNet start) vs
   ``bccd_from_aquarium`` (``init_from`` the Aquarium detector: backbone, neck, box branch; class
   rows fresh since no name matches).
3. Keeping the old classes: ``init_from`` + ``keep_old_classes`` (10 classes), fine-tuned on BCCD
   with ``old_classes`` = none / frozen / distill; each is also scored on **Aquarium's** test split
   (its old classes) and compared with the source detector there (before vs after).
4. Distillation: an efficientnet_lite2 teacher trained on BCCD (``--teacher-epochs``, longer than
   the student's budget so that it knows more than the student can learn) teaches an
   efficientnet_lite0 student (``distill=teacher``) for ``--epochs``; compared with the same student
   without a teacher (``bccd_imagenet``); ``--kd-seeds N`` repeats both students with N seeds
   (42, 43, ...) so that the difference can be read against the seed-to-seed spread.

Finished runs (a metrics.json in their folder) are not trained again.

    python bench/detector_transfer.py --datasets ../shared/datasets --image-size 256 --epochs 6 \\
        --source-epochs 8 --out bench-runs/transfer
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from yolotl import evaluate
from yolotl.api import config_dir, train
from yolotl.evaluation.score_line import score_line


def _train(name: str, overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    run_dir = Path(args.out) / name
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            *overrides, "recipe=fixed", f"data.image_size={args.image_size}", f"data.batch_size={args.batch_size}",
            f"paths.output_dir={run_dir}", "logger=csv", *args.override])
    metrics = train(cfg)
    print(f"{name}: {score_line('test', metrics.get('test', {}), ('map',))}  ({metrics['wall_time_s']} s)", flush=True)
    return metrics


def _best(metrics: dict[str, Any]) -> str:
    return str(Path(metrics["run_dir"]) / "checkpoints" / "best.ckpt")


def _on_aquarium(name: str, metrics: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """Test metrics of a run's best checkpoint on Aquarium's test split (its old classes)."""
    out = Path(args.out) / name / "aquarium_test"
    cached = out / "metrics.json"
    if cached.is_file():
        return json.loads(cached.read_text())["metrics"]
    data = {"_target_": "yolotl.DetectionDataModule", "root": f"{args.datasets}/aquarium", "format": "yolo",
            "val_split": "valid", "image_size": args.image_size, "num_workers": 0, "cache": "none"}
    return evaluate(_best(metrics), data=data, split="test", output_dir=out, report=False)["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="../shared/datasets", help="folder holding bccd/ and aquarium/")
    parser.add_argument("--image-size", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every BCCD run")
    parser.add_argument("--source-epochs", type=int, default=30, help="epochs of the Aquarium source run")
    parser.add_argument("--teacher", default="efficientnet_lite2")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="epochs of the teacher (default: --epochs)")
    parser.add_argument("--kd-seeds", type=int, default=1, help="seeds of the two students (42, 43, ...)")
    parser.add_argument("--out", default="bench-runs/transfer")
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    args = parser.parse_args()
    aquarium = ["experiment=aquarium", f"data.root={args.datasets}/aquarium", f"trainer.max_epochs={args.source_epochs}"]
    bccd = ["experiment=bccd", f"data.root={args.datasets}/bccd", f"trainer.max_epochs={args.epochs}"]

    source = _train("aquarium_source", aquarium, args)
    runs = {"bccd_imagenet": _train("bccd_imagenet", bccd, args),
            "bccd_from_aquarium": _train("bccd_from_aquarium", [*bccd, f"init_from={_best(source)}"], args)}
    keep = [*bccd, f"init_from={_best(source)}", "model.detector.keep_old_classes=true"]
    for mode in ("null", "frozen", "distill"):
        runs[f"bccd_keep_old_{mode}"] = _train(f"bccd_keep_old_{mode}", [*keep, f"model.module.old_classes={mode}"], args)
    teacher_epochs = args.teacher_epochs or args.epochs
    suffix = "" if teacher_epochs == args.epochs else f"_{teacher_epochs}ep"  # one folder per teacher budget
    teacher = _train(f"bccd_teacher{suffix}", [*bccd, f"backbone={args.teacher}",
                                               f"trainer.max_epochs={teacher_epochs}"], args)
    kd = [*bccd, "distill=teacher", f"distill.teacher={_best(teacher)}"]
    runs["bccd_student_kd"] = _train(f"bccd_student_kd{suffix}", kd, args)
    students: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {42: (runs["bccd_imagenet"], runs["bccd_student_kd"])}
    for seed in range(43, 42 + args.kd_seeds):  # seed 42 (the config's) is the pair above
        students[seed] = (_train(f"bccd_imagenet_seed{seed}", [*bccd, f"seed={seed}"], args),
                          _train(f"bccd_student_kd{suffix}_seed{seed}", [*kd, f"seed={seed}"], args))

    def test(m: dict[str, Any], key: str = "map") -> str:
        return f"{m.get('test', {}).get(key, float('nan')):.3f}"

    print(f"\n## Detector-to-detector transfer: BCCD test, {args.epochs} epochs at {args.image_size} px")
    print("| start | test mAP50-95 | test mAP50 |\n|---|---|---|")
    print(f"| ImageNet (timm efficientnet_lite0) | {test(runs['bccd_imagenet'])} | {test(runs['bccd_imagenet'], 'map_50')} |")
    print(f"| Aquarium detector (init_from) | {test(runs['bccd_from_aquarium'])} | "
          f"{test(runs['bccd_from_aquarium'], 'map_50')} |")

    before = _on_aquarium("aquarium_source", source, args)
    classes = [k.split("/", 1)[1] for k in before if k.startswith("ap/")]
    print("\n## Keeping the old classes: Aquarium test (old classes) and BCCD test (new classes)")
    print("| model | Aquarium mAP50-95 | Aquarium mAP50 | BCCD mAP50-95 | " + " | ".join(f"AP {c}" for c in classes)
          + " |\n|" + "---|" * (4 + len(classes)))
    rows = [("source (before)", before, source)] + [
        (f"keep_old_classes, old_classes={mode}", _on_aquarium(f"bccd_keep_old_{mode}", runs[f"bccd_keep_old_{mode}"], args),
         runs[f"bccd_keep_old_{mode}"]) for mode in ("null", "frozen", "distill")]
    for label, old, run in rows:
        bccd_map = test(run) if run is not source else "-"
        print(f"| {label} | {old.get('map', float('nan')):.3f} | {old.get('map_50', float('nan')):.3f} | {bccd_map} | "
              + " | ".join(f"{old.get(f'ap/{c}', float('nan')):.3f}" for c in classes) + " |")

    print(f"\n## Distillation: efficientnet_lite0 student on BCCD ({args.epochs} epochs), "
          f"{args.teacher} teacher ({teacher_epochs} epochs)")
    print("| model | test mAP50-95 | test mAP50 | wall s |\n|---|---|---|---|")
    for label, m in ((f"teacher {args.teacher}", teacher), ("student, no teacher", runs["bccd_imagenet"]),
                     ("student + teacher (distill=teacher)", runs["bccd_student_kd"])):
        print(f"| {label} | {test(m)} | {test(m, 'map_50')} | {m.get('wall_time_s')} |")
    if len(students) > 1:
        print("\n| seed | student, no teacher | student + teacher | difference |\n|---|---|---|---|")
        diffs = []
        for seed, (plain, taught) in students.items():
            diffs.append(taught["test"]["map"] - plain["test"]["map"])
            print(f"| {seed} | {test(plain)} | {test(taught)} | {diffs[-1]:+.3f} |")
        plain_maps = [p["test"]["map"] for p, _ in students.values()]
        taught_maps = [t["test"]["map"] for _, t in students.values()]
        print(f"| mean ± sd | {statistics.mean(plain_maps):.3f} ± {statistics.stdev(plain_maps):.3f} | "
              f"{statistics.mean(taught_maps):.3f} ± {statistics.stdev(taught_maps):.3f} | "
              f"{statistics.mean(diffs):+.3f} ± {statistics.stdev(diffs):.3f} |")


if __name__ == "__main__":
    main()
