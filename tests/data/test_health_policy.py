"""``DetectionDataModule(policy=...)``: strict stops with the report, fix repairs and counts, one log
line, write_health() keeps every action; the catalogue covers every kind the code can emit."""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import pytest

from yolotl.data import DetectionDataModule, check_dataset, make_synthetic_dataset
from yolotl.data.catalogue import ACTIONS, KINDS, SEVERITIES
from yolotl.errors import ConfigError, DatasetError

from .health_helpers import BOX, datamodule, train_names

SRC = Path(__file__).resolve().parents[2] / "src" / "yolotl"


def _messy(make_yolo) -> Path:
    """train: a broken label, a zero-area box, a tiny box, a good image; val: clean."""
    return make_yolo({"train": {"good.jpg": BOX, "bad.jpg": "0 0.5 0.5\n",
                                "boxes.jpg": BOX + "\n0 0.5 0.5 0 0\n0 0.3 0.3 0.01 0.2\n"},
                      "val": {"v.jpg": BOX}})


def test_unknown_policy_is_a_config_error_listing_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'lenient'.*\['strict', 'fix'\]"):
        DetectionDataModule("anywhere", checks={"policy": "lenient"})


def test_bad_policy_in_the_config_is_one_clear_error(tmp_path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from yolotl.api import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["data=voc", f"data.root={tmp_path}",
                                                      "data.checks.policy=lenient", "paths.output_dir=x"])
    with pytest.raises(Exception) as err:
        instantiate(cfg.data)
    cause = err.value.__cause__ or err.value  # Hydra wraps it; cli_errors() prints the cause
    assert isinstance(cause, ConfigError) and "['strict', 'fix']" in str(cause)


def test_strict_stops_with_the_table_and_the_way_out(make_yolo) -> None:
    dm = datamodule(_messy(make_yolo), "yolo", "strict")
    for _ in range(2):  # a second setup() must not pass silently
        with pytest.raises(DatasetError) as err:
            dm.setup()
    message = str(err.value)
    assert "malformed_label" in message and "bad.txt" in message
    assert "dropped_degenerate_box" in message and "tiny_box" in message
    assert "data.checks.policy=fix" in message and "fix does" in message  # the table's header


def test_fix_repairs_counts_logs_one_line_and_writes_every_action(make_yolo, tmp_path, caplog) -> None:
    dm = datamodule(_messy(make_yolo), "yolo", "fix")
    with caplog.at_level(logging.INFO, logger="yolotl.data"):
        dm.setup()
    lines = [r.getMessage() for r in caplog.records if r.name == "yolotl.data"]
    assert len(lines) == 1
    assert "data.checks.policy=fix: skipped 1 images, dropped 2 boxes" in lines[0]
    assert train_names(dm) == ["boxes.jpg", "good.jpg"] and dm.split("train").num_boxes == 2
    assert dm.health.actions() == {"skipped image": 1, "dropped box": 2}
    assert dm.health.totals() == {"malformed_label": 1, "dropped_degenerate_box": 1, "tiny_box": 1}

    paths = dm.write_health(tmp_path)
    assert paths == {"json": tmp_path / "data_health.json", "csv": tmp_path / "skipped.csv"}
    saved = json.loads(paths["json"].read_text())
    assert saved["policy"] == "fix" and saved["splits"] == ["train", "val"]
    assert saved["stats"]["train"]["images"] == 2 and saved["stats"]["train"]["boxes"] == 2
    assert saved["kinds"]["tiny_box"] == {"severity": "warning", "action": "dropped box"}
    assert set(saved["findings"][0]) == {"split", "kind", "severity", "action", "file", "detail"}
    with paths["csv"].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["split"], r["kind"], Path(r["file"]).name) for r in rows] == [
        ("train", "malformed_label", "bad.txt"), ("train", "dropped_degenerate_box", "boxes.txt"),
        ("train", "tiny_box", "boxes.txt")]


def test_fix_is_the_default_and_the_data_configs_say_so() -> None:
    assert DetectionDataModule("anywhere").policy == "fix"
    conf = SRC.parents[1] / "conf" / "data"
    for name in ("voc", "yolo", "coco", "synthetic"):
        assert re.search(r"^  policy: fix\b", (conf / f"{name}.yaml").read_text(), re.MULTILINE), name


def test_synthetic_dataset_is_clean(tmp_path) -> None:
    root = make_synthetic_dataset(tmp_path / "syn", num_train=24, num_val=6, num_test=6, image_size=128)
    report = check_dataset(root, "synthetic")
    assert report.findings == [] and report.splits == ["train", "val", "test"]
    assert "(no findings)" in report.table()


def test_every_kind_the_code_emits_is_in_the_catalogue() -> None:
    """A kind without an entry would have no severity or action; find kinds in the source."""
    pattern = re.compile(r"""(?:log\.add|Finding\([^,]+,|SkippedImage)\(?\s*["']([a-z0-9_]+)["']""")
    emitted = set()
    for path in SRC.joinpath("data").rglob("*.py"):
        emitted.update(pattern.findall(path.read_text()))
    for path in SRC.joinpath("data").rglob("*.py"):  # kinds chosen by a helper and returned
        emitted.update(re.findall(r'return "([a-z_]+_image)"', path.read_text()))
        emitted.update(re.findall(r'return \(?"([a-z_]+)", f?"', path.read_text()))
    assert len(emitted) > 25
    assert emitted <= set(KINDS), emitted - set(KINDS)
    assert all(k.severity in SEVERITIES and k.action in ACTIONS for k in KINDS.values())
