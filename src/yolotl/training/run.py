"""Run outputs: the metrics.json every run leaves, the summary of a sweep, and what becomes of a
run folder when the run fails (removed, or marked ``FAILED``) or succeeds (``latest`` points at it)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
FAILED_FILE = "FAILED"
LATEST_LINK = "latest"

# What a run writes before its first checkpoint: a folder holding nothing else is removed on failure.
_RUN_FILES = {".hydra", "config.yaml", "data_health.json", "skipped.csv", "logs", "tensorboard", "checkpoints",
              "recipe.json", FAILED_FILE}


def discard_failed_run(run_dir: str | Path, error: BaseException | str, created: bool = False) -> str | None:
    """After a failed run: remove ``run_dir`` when it is this run's own folder (``created`` by it, or
    Hydra's run folder, which holds ``.hydra/``) and holds nothing but what a run writes before its
    first checkpoint (config.yaml, .hydra/, the log file, data_health.json, recipe.json, empty logs); else write
    ``FAILED`` (the error) into it, so that no one takes it for a finished run. A folder the user
    named that existed before is never removed.

    Returns ``"removed"``, ``"marked"`` or None (no such folder).
    """
    run = Path(run_dir)
    if not run.is_dir():
        return None
    if (created or (run / ".hydra").is_dir()) and _only_run_files(run):
        shutil.rmtree(run, ignore_errors=True)
        if not run.exists():
            return "removed"
    message = str(error) or type(error).__name__
    (run / FAILED_FILE).write_text(f"{type(error).__name__}: {message}\n")
    return "marked"


def _only_run_files(run: Path) -> bool:
    for entry in run.iterdir():
        if entry.name in _RUN_FILES or (entry.suffix == ".log" and entry.is_file()):
            if entry.name == "checkpoints" and any(entry.rglob("*.ckpt")):
                return False
            continue
        return False
    return True


def link_latest(run_dir: str | Path, home: str | Path) -> Path | None:
    """Point ``<home>/latest`` at ``run_dir`` (a relative symlink, replaced atomically).

    Nothing is done (None) where ``latest`` exists and is not a symlink, or where the file system
    has no symlinks.
    """
    link = Path(home) / LATEST_LINK
    if link.exists() and not link.is_symlink():
        return None
    target = os.path.relpath(Path(run_dir).resolve(), Path(home).resolve())
    temporary = link.with_name(f".{LATEST_LINK}.{os.getpid()}")
    try:
        if temporary.is_symlink():
            temporary.unlink()
        temporary.symlink_to(target, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        return None
    return link


# COCO's value for a score with nothing to score (a class without ground truth in the split).
NO_GROUND_TRUTH = -1.0
_LOSS_NAMES = ("loss", "box", "cls", "dfl")


def clean_metrics(values: dict[str, Any], prefix: str) -> dict[str, float | None]:
    """``{"val/map": tensor(0.5)}`` -> ``{"map": 0.5}`` for one stage.

    A NaN score (AP, AR, precision...) had no ground truth to score against and becomes COCO's -1;
    a non-finite loss is a diverged run and stays visible as None (``null`` in metrics.json), never a
    number that looks normal.
    """
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if not key.startswith(prefix + "/"):
            continue
        name = key[len(prefix) + 1 :]
        number = float(value)
        if math.isfinite(number):
            out[name] = number
        else:
            loss = name.startswith(_LOSS_NAMES) or name == "mask" or name.startswith("kd_")
            out[name] = None if loss else NO_GROUND_TRUTH
    return out


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return path


SUMMARY_COLUMNS = [
    ("job", lambda m: m.get("job", "")),
    ("strategy", lambda m: m.get("strategy", "")),
    ("fold", lambda m: m.get("fold")),
    ("backbone", lambda m: m.get("backbone", "")),
    ("pretrained", lambda m: m.get("pretrained", "")),
    ("val_map50", lambda m: m.get("val", {}).get("map_50")),
    ("val_map", lambda m: m.get("val", {}).get("map")),
    ("test_map50", lambda m: m.get("test", {}).get("map_50")),
    ("test_map", lambda m: m.get("test", {}).get("map")),
    ("test_f1", lambda m: m.get("test", {}).get("f1")),
    ("val_miou", lambda m: m.get("val", {}).get("miou")),
    ("test_miou", lambda m: m.get("test", {}).get("miou")),
    ("trainable_params", lambda m: m.get("trainable_params")),
    ("images_per_s", lambda m: m.get("images_per_s")),
    ("epochs", lambda m: m.get("epochs")),
    ("wall_s", lambda m: m.get("wall_time_s")),
]


def summarise_runs(sweep_dir: Path) -> tuple[Path, Path] | None:
    """Collect ``*/metrics.json`` under ``sweep_dir`` into summary.csv and summary.md.

    When the runs are the folds of one cross-validation (two or more runs, each with a ``fold``),
    two more rows give the mean and the spread (sample standard deviation) of every number.
    """
    runs = []
    for path in sorted(Path(sweep_dir).glob(f"*/{METRICS_FILE}")):
        metrics = json.loads(path.read_text())
        metrics["job"] = path.parent.name
        runs.append(metrics)
    if not runs:
        return None
    values = [[fn(m) for _, fn in SUMMARY_COLUMNS] for m in runs]
    rows = [[_format(v) for v in row] for row in values]
    if len(runs) >= 2 and all(m.get("fold") is not None for m in runs):
        rows += _mean_and_spread(values)
    header = [name for name, _ in SUMMARY_COLUMNS]
    csv_path = Path(sweep_dir) / "summary.csv"
    csv_path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    md_path = Path(sweep_dir) / "summary.md"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _mean_and_spread(values: list[list[Any]]) -> list[list[str]]:
    """Rows "mean" and "std" over the numeric columns (folds: the sample standard deviation)."""
    mean_row, std_row = ["mean"], ["std"]
    for column in list(zip(*values))[1:]:
        numbers = [float(v) for v in column if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) < 2 or SUMMARY_COLUMNS[len(mean_row)][0] == "fold":
            mean_row.append("")
            std_row.append("")
            continue
        average = sum(numbers) / len(numbers)
        spread = math.sqrt(sum((x - average) ** 2 for x in numbers) / (len(numbers) - 1))
        mean_row.append(_format(average))
        std_row.append(_format(spread))
    return [mean_row, std_row]


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value).replace(",", ";")
