"""``yolotl-check-data``: prints the table, writes data_health.json, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from yolotl import DatasetError
from yolotl.cli.check_data import check_from_config
from yolotl.cli.check_data import run as run_cli
from yolotl.api import config_dir

from .health_helpers import BOX


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="check_data", overrides=list(overrides))


def test_check_prints_the_table_and_writes_json(make_yolo, tmp_path, capsys) -> None:
    root = make_yolo({"train": {"a.jpg": BOX + "\n0 0.5 0.5 0 0"}, "val": {"b.jpg": BOX}})
    run_cli(_cfg("data=yolo", f"data.root={root}", f"out={tmp_path}/report"))
    out = capsys.readouterr().out
    assert "dropped_degenerate_box" in out and "train/labels/a.txt" in out and "fix does" in out
    saved = json.loads((tmp_path / "report" / "data_health.json").read_text())
    assert saved["counts"] == {"train": {"dropped_degenerate_box": 1}}
    assert f"every finding: {tmp_path}/report/data_health.json" in out
    with pytest.raises(SystemExit) as done:  # strict=true: a CI gate
        run_cli(_cfg("data=yolo", f"data.root={root}", f"out={tmp_path}/report", "strict=true"))
    assert done.value.code == 1


def test_the_splits_training_reads_are_checked(make_yolo) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}, "holdout": {"b.jpg": BOX}, "spare": {"c.jpg": BOX}})
    report = check_from_config(_cfg("data=yolo", f"data.root={root}", "data.reading.val_split=holdout"))
    assert report.splits == ["train", "holdout"]  # no test split: skipped, as training skips it
    report = check_from_config(_cfg("data=yolo", f"data.root={root}", "data.reading.val_split=holdout",
                                    "data.reading.test_split=spare"))
    assert report.splits == ["train", "holdout", "spare"]
    with pytest.raises(DatasetError, match="spar"):  # a test split the user named, mistyped: an error, not a skip
        check_from_config(_cfg("data=yolo", f"data.root={root}", "data.reading.val_split=holdout", "data.reading.test_split=spar"))


def test_experiment_and_thresholds_compose() -> None:
    cfg = _cfg("experiment=bccd", "tiny_box_px=4", "splits=[train]")
    assert cfg.data.format == "voc" and cfg.tiny_box_px == 4 and list(cfg.splits) == ["train"]


def test_console_entry_point_writes_into_the_hydra_run_folder(make_yolo, tmp_path) -> None:
    root = make_yolo({"train": {"a.jpg": BOX}, "val": {"b.jpg": BOX}})
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "yolotl.cli.check_data", "data=yolo", f"data.root={root}",
                           f"hydra.run.dir={run}"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "(no findings)" in done.stdout and (run / "data_health.json").is_file()
    missing = subprocess.run([sys.executable, "-m", "yolotl.cli.check_data", "data=voc",
                              f"data.root={tmp_path}/absent", f"hydra.run.dir={run}"],
                             capture_output=True, text=True, timeout=300, check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "yolotl: error:" in missing.stderr and "absent" in missing.stderr


def test_a_class_missing_from_train_is_named_in_the_table(make_yolo, tmp_path, capsys) -> None:
    train = {f"t{i}.jpg": "0 0.3 0.3 0.2 0.2" for i in range(5)}
    root = make_yolo({"train": train, "val": {"v.jpg": "2 0.5 0.2 0.1 0.1"}})
    run_cli(_cfg("data=yolo", f"data.root={root}", f"out={tmp_path}/report"))
    out = capsys.readouterr().out
    assert "class_missing_in_train" in out and "val: class 'c' has 1 box in val but none in train" in out
