"""Benchmark suite: one yolotl recipe over every suite dataset, at one stated budget.

Datasets (``../shared/datasets``, see its SOURCES.md and each DEFECTS.md): bccd (VOC), aquarium,
ph_coins, tree_counting, thermal_dogs_people (YOLO txt) and math_symbols (COCO). Each run composes
``train.yaml`` from the packaged Hydra configs with the dataset's own facts (format, root, split
names, class order), the budget (``--epochs``, ``--imgsz``, ``--batch``, ``--seed``), the device and
then the recipe under test (``--override``, repeatable, last wins; ``trainer.*`` ones may name any
Lightning Trainer argument, present in the config or not). Under ``recipe=auto`` (the default) the
``--override`` keys are kept as given, as ``yolotl-train`` keeps its command line's, while the budget's
``--imgsz`` is where the recipe starts (it may train larger). Each run trains, selects the checkpoint
on val and scores it on test (BENCHMARKS.md protocol). It prints one Markdown table (per dataset:
test mAP50, test mAP50-95, val mAP50-95, epochs, wall s, train images/s, what ``recipe=auto`` set;
with ``--reference FILE`` YOLOv8n-from-scratch figures beside them) and writes every figure to
``<out>/suite.json``.

Finished runs (a metrics.json in ``<out>/<dataset>``) are not trained again, so an interrupted
suite resumes; a finished run made with other overrides is an error (use another ``--out`` or
``--force``). ``--report-only`` re-reads the finished runs and prints the table. The console shows
what ``yolotl-train``'s console shows (yolotl's own lines, such as ``recipe=auto``'s choices, and every
warning); each run's ``train.log`` holds every log line.

    python bench/suite.py --epochs 30 --out bench-runs/suite-default
    python bench/suite.py --override strategy=end_to_end --out bench-runs/suite-e2e
    python bench/suite.py --datasets thermal_dogs_people --epochs 1 \\
        --override trainer.limit_train_batches=2 --override trainer.limit_val_batches=2
    python bench/suite.py --report-only --out bench-runs/suite-default --reference yolov8n.json

The reference file maps a dataset to YOLOv8n's test figures at the same budget, e.g.
``{"ph_coins": {"map50": 0.61, "map": 0.42, "wall_s": 95}}`` (``wall_s`` optional).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# The dataset facts a user would have to give on the command line; nothing here tunes the recipe.
# "root" is relative to --datasets-root. tree_counting's data.yaml holds absolute Windows paths, and
# yolotl does not find its valid/ split from them, so the suite points it at a corrected copy of
# that yaml (written under <out>/_data; the dataset itself is not touched).
DATASETS: dict[str, dict[str, Any]] = {
    "bccd": {"format": "voc", "root": "bccd", "overrides": ["data.reading.class_names=[RBC,WBC,Platelets]"]},
    "aquarium": {"format": "yolo", "root": "aquarium", "overrides": ["data.reading.val_split=valid"]},
    "ph_coins": {"format": "yolo", "root": "ph_coins/data", "overrides": ["data.reading.val_split=valid"]},
    "math_symbols": {"format": "coco", "root": "math_symbols", "overrides": ["data.reading.val_split=valid"]},
    "tree_counting": {
        "format": "yolo",
        "root": "tree_counting",
        "overrides": ["data.reading.val_split=valid"],
        "yaml": {"train": "train/images", "val": "valid/images", "test": "test/images", "nc": 1, "names": ["tree"]},
    },
    "thermal_dogs_people": {"format": "yolo", "root": "thermal_dogs_people", "overrides": ["data.reading.val_split=valid"]},
}
SUITE_FILE = "suite.json"
SETTINGS_FILE = "suite_run.json"


def default_datasets_root() -> str:
    return os.environ.get("YOLOTL_SHARED_DATASETS") or str(REPO.parent / "shared" / "datasets")


def data_root(name: str, args: argparse.Namespace) -> str:
    """The ``data.root`` for ``name``: its folder, or a corrected data.yaml pointing at it."""
    spec = DATASETS[name]
    folder = (Path(args.datasets_root) / spec["root"]).resolve()
    if not folder.is_dir():
        raise SystemExit(f"{name}: {folder} not found; pass --datasets-root (or set YOLOTL_SHARED_DATASETS)")
    if "yaml" not in spec:
        return str(folder)
    import yaml

    path = Path(args.out).resolve() / "_data" / name / "data.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"path": str(folder), **spec["yaml"]}, sort_keys=False))
    return str(path)


def overrides_for(name: str, args: argparse.Namespace) -> list[str]:
    """Dataset facts, budget, device, then the user's recipe overrides (which win)."""
    spec = DATASETS[name]
    device = ["trainer=gpu"] if args.device == "gpu" else ["trainer.accelerator=cpu"]
    return [
        f"data={spec['format']}",
        f"data.root={data_root(name, args)}",
        *spec["overrides"],
        f"data.image_size={args.imgsz}",
        f"data.batch_size={args.batch}",
        f"trainer.max_epochs={args.epochs}",
        f"seed={args.seed}",
        *device,
        "logger=csv",
        *(_trainer_key(o) for o in args.override),
        *_kept_by_recipe(args.override),
        f"paths.output_dir={Path(args.out) / name}",
    ]


def _kept_by_recipe(overrides: list[str]) -> list[str]:
    """recipe=auto keeps what ``--override`` sets (``data.image_size=512``, ``strategy=finetune``), as
    ``yolotl-train`` keeps its command line's keys; the budget (``--imgsz``) is where the recipe starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    kept = {o.key_or_group for o in parsed} - {"recipe", "recipe.mode", "recipe.keep"}
    kept |= {str(key) for o in parsed if o.key_or_group == "recipe.keep" for key in o.value() or []}
    return [f"recipe.keep=[{','.join(sorted(kept))}]"] if kept else []


def _trainer_key(override: str) -> str:
    """``trainer.limit_train_batches=2`` -> ``++trainer.limit_train_batches=2``: any Lightning Trainer
    argument may be set, present in trainer/*.yaml or not (the Trainer itself rejects a misspelt one)."""
    return f"++{override}" if override.startswith("trainer.") else override


def console_logging() -> None:
    """The console ``yolotl-train`` shows: yolotl's INFO lines and every warning, no Lightning tips."""
    import lightning  # noqa: F401 - its import adds stderr handlers, removed below

    from yolotl.cli.console import (ConsoleFilter, ConsoleFormatter, ConsoleHandler, DropLightningTips,
                                    console_to_hydra_logging)

    handler = ConsoleHandler()
    handler.setFormatter(ConsoleFormatter("%(message)s"))
    handler.addFilter(ConsoleFilter())
    handler.addFilter(DropLightningTips())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)
    console_to_hydra_logging()


def run_log(run_dir: Path) -> logging.Handler:
    """Every log line of one run into ``<run_dir>/train.log``, as ``yolotl-train`` writes it."""
    from yolotl.cli.console import DropLightningTips

    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.addFilter(DropLightningTips())
    return handler


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from yolotl.api import config_dir, train
    from yolotl.evaluation.score_line import BRIEF, score_line

    run_dir = Path(args.out) / name
    overrides = overrides_for(name, args)
    settings = {"dataset": name, "overrides": overrides}
    metrics_file, settings_file = run_dir / "metrics.json", run_dir / SETTINGS_FILE
    if metrics_file.is_file() and not args.force:
        previous = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
        if previous.get("overrides") != overrides:
            raise SystemExit(f"{run_dir} holds a finished run with other overrides ({previous.get('overrides')}); "
                             f"use another --out, or --force to train again")
        print(f"{name}: finished run found in {run_dir}, not trained again", flush=True)
        return json.loads(metrics_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_file.unlink(missing_ok=True)
    settings_file.write_text(json.dumps(settings, indent=2))
    print(f"{name}: yolotl-train " + " ".join(overrides), flush=True)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    log_file = run_log(run_dir)
    logging.getLogger().addHandler(log_file)
    try:
        metrics = train(cfg)
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    print(f"{name}: {score_line('test', metrics.get('test', {}), BRIEF)}"
          f"  ({metrics.get('epochs')} epochs, {metrics.get('wall_time_s')} s)", flush=True)
    return metrics


def recipe_set(metrics: dict[str, Any]) -> list[str]:
    """What ``recipe=auto`` changed in one run, as overrides (``strategy=end_to_end``, ``data.selection.balance=null``)."""
    choices = (metrics.get("recipe") or {}).get("choices", [])
    return [f"{c['key']}={'null' if c['value'] is None else c['value']}" for c in choices if c.get("changed")]


def summary(name: str, metrics: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """The figures the table and suite.json keep for one run (per-class AP included)."""
    test, val = metrics.get("test", {}), metrics.get("val", {})
    return {
        "dataset": name,
        "test_map50": test.get("map_50"),
        "test_map": test.get("map"),
        "val_map50": val.get("map_50"),
        "val_map": val.get("map"),
        "epochs": metrics.get("epochs"),
        "steps": metrics.get("steps"),
        "wall_time_s": metrics.get("wall_time_s"),
        "images_per_s": metrics.get("images_per_s"),
        "train_images": metrics.get("train_images"),
        "strategy": metrics.get("strategy"),
        "backbone": metrics.get("backbone"),
        "weights": metrics.get("weights"),
        "recipe_set": recipe_set(metrics),
        "overrides": overrides,
        "run_dir": metrics.get("run_dir"),
        "test": test,
        "val": val,
    }


def read_finished(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for name in names:
        run_dir = Path(args.out) / name
        if not (run_dir / "metrics.json").is_file():
            continue
        settings = run_dir / SETTINGS_FILE
        overrides = json.loads(settings.read_text()).get("overrides") if settings.is_file() else None
        found[name] = summary(name, json.loads((run_dir / "metrics.json").read_text()), overrides)
    return found


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {"host": platform.node(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def write_suite(args: argparse.Namespace, results: dict[str, dict[str, Any]], errors: dict[str, str]) -> Path:
    """Merge this invocation's runs into <out>/suite.json (several invocations may share one --out)."""
    path = Path(args.out) / SUITE_FILE
    suite = json.loads(path.read_text()) if path.is_file() else {}
    suite.setdefault("runs", {}).update(results)
    for name in results:
        suite.setdefault("errors", {}).pop(name, None)
    suite.setdefault("errors", {}).update(errors)
    if not args.report_only:  # the budget and machine of the runs, not of a later report
        suite["budget"] = {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch, "seed": args.seed,
                           "device": args.device, "override": args.override}
        suite["environment"] = environment()
    if args.reference and Path(args.reference).is_file():
        suite["reference"] = json.loads(Path(args.reference).read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, sort_keys=True))
    return path


def load_reference(path: str | None) -> dict[str, dict[str, float]]:
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        print(f"WARNING: reference file {file} not found; table without YOLOv8n figures", file=sys.stderr)
        return {}
    return json.loads(file.read_text())


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or value < 0)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(results: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]]) -> str:
    header = ["dataset", "test mAP50", "test mAP50-95", "val mAP50-95", "epochs", "wall s", "images/s",
              "recipe=auto set"]
    if reference:
        header += ["YOLOv8n test mAP50", "YOLOv8n test mAP50-95", "mAP50-95 - YOLOv8n", "YOLOv8n wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        cells = [name, _fmt(r["test_map50"]), _fmt(r["test_map"]), _fmt(r["val_map"]), _fmt(r["epochs"]),
                 _fmt(r["wall_time_s"], 0), _fmt(r["images_per_s"], 1), ", ".join(r.get("recipe_set") or []) or "-"]
        if reference:
            ref = reference.get(name, {})
            delta = (r["test_map"] - ref["map"]) if ref.get("map") is not None and r["test_map"] is not None else None
            cells += [_fmt(ref.get("map50")), _fmt(ref.get("map")),
                      "n/a" if delta is None else f"{delta:+.3f}", _fmt(ref.get("wall_s"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--datasets-root", default=default_datasets_root(),
                        help="folder holding the suite datasets (default: $YOLOTL_SHARED_DATASETS or ../shared/datasets)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="gpu: trainer=gpu (16-mixed)")
    parser.add_argument("--override", action="append", default=[],
                        help="Hydra override for every dataset, repeatable (the recipe under test)")
    parser.add_argument("--out", default=str(REPO / "bench-runs" / "suite"), help="run folder root")
    parser.add_argument("--reference", default=None, help="JSON: dataset -> {map50, map[, wall_s]} of YOLOv8n")
    parser.add_argument("--report-only", action="store_true", help="re-read finished runs, print the table")
    parser.add_argument("--force", action="store_true", help="train again even if a finished run exists")
    parser.add_argument("--keep-going", action="store_true", help="a failed dataset is recorded, the rest still run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results, errors = {}, {}
    if args.report_only:
        results = read_finished(args, args.datasets)
        if not results:
            raise SystemExit(f"no finished runs under {args.out}")
    else:
        console_logging()
        for name in args.datasets:
            try:
                metrics = run_dataset(name, args)
            except Exception as err:  # noqa: BLE001 - recorded, then the next dataset (with --keep-going)
                if not args.keep_going:
                    raise
                errors[name] = f"{type(err).__name__}: {err}"
                print(f"{name}: FAILED: {errors[name]}", file=sys.stderr, flush=True)
                continue
            results[name] = summary(name, metrics, overrides_for(name, args))
            write_suite(args, results, errors)  # after every dataset: an interrupted suite keeps its figures
    path = write_suite(args, results, errors)
    suite = json.loads(path.read_text())
    b, env = suite.get("budget", {}), suite.get("environment", {})
    budget = f"{b.get('epochs')} epochs, {b.get('imgsz')} px, batch {b.get('batch')}, seed {b.get('seed')}, {b.get('device')}"
    recipe = " ".join(b.get("override") or []) or "(library defaults)"
    print(f"\nyolotl suite: {budget}; recipe: {recipe}; {env.get('gpu', 'cpu')} on {env.get('host')}, "
          f"load average {env.get('load_average')} (budget and machine of the last training invocation)")
    print(table(results, load_reference(args.reference)))
    for name, error in errors.items():
        print(f"FAILED {name}: {error}")
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
