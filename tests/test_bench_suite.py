"""bench/suite.py end to end on one real suite dataset at a tiny budget: it trains through the packaged
Hydra configs, writes suite.json and the run's train.log, reports again without training, and refuses to
mix a finished run with other overrides."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.data.helpers import shared_datasets

DATASETS = shared_datasets()
SUITE = Path(__file__).resolve().parents[1] / "bench" / "suite.py"



def _suite_module():
    spec = importlib.util.spec_from_file_location("yolotl_bench_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.real_data("thermal_dogs_people")
def test_one_dataset_trains_reports_and_keeps_its_overrides(tmp_path, capsys):
    suite = _suite_module()
    out = tmp_path / "suite"
    tiny = ["--datasets", "thermal_dogs_people", "--datasets-root", str(DATASETS), "--epochs", "1",
            "--batch", "8", "--out", str(out), "--override", "data.image_size=128",
            "--override", "trainer.limit_train_batches=2", "--override", "trainer.limit_val_batches=2",
            "--override", "data.loader.num_workers=0"]
    suite.main(tiny)
    printed = capsys.readouterr().out
    assert "| thermal_dogs_people |" in printed and f"figures: {out / 'suite.json'}" in printed
    saved = json.loads((out / "suite.json").read_text())
    run = saved["runs"]["thermal_dogs_people"]
    assert run["epochs"] == 1 and run["steps"] == 2 and 0.0 <= run["test_map"] <= 1.0
    # recipe=auto (the default) keeps what --override sets, as yolotl-train keeps its command line's:
    # 128 px stays although 8.8 % of the boxes are under 8 px there; balancing is still the recipe's
    assert "recipe.keep=[data.image_size,data.loader.num_workers,trainer.limit_train_batches,trainer.limit_val_batches]" \
        in run["overrides"]
    log = (out / "thermal_dogs_people" / "train.log").read_text()
    assert "data.image_size kept 128" in log and "training  128 px, batch 8, 1 epoch, device" in log
    assert run["recipe_set"] == ["data.selection.balance=null", "model.module.loss.classes=null"]
    trained = (out / "thermal_dogs_people" / "metrics.json").stat().st_mtime_ns

    suite.main([*tiny, "--report-only"])  # the same table from the finished run, nothing trained
    assert "| thermal_dogs_people |" in capsys.readouterr().out
    suite.main(tiny)  # the finished run is found, not trained again
    assert "finished run found" in capsys.readouterr().out
    assert (out / "thermal_dogs_people" / "metrics.json").stat().st_mtime_ns == trained

    with pytest.raises(SystemExit, match="other overrides"):
        suite.main([*tiny, "--override", "strategy=end_to_end"])


def test_every_override_but_the_recipe_choice_is_kept():
    kept = _suite_module()._kept_by_recipe
    assert kept(["recipe=auto"]) == [] and kept([]) == []
    assert kept(["recipe=auto", "strategy=end_to_end", "++trainer.max_time=1"]) == \
        ["recipe.keep=[strategy,trainer.max_time]"]
    # a recipe.keep list of the user's is joined, not replaced
    assert kept(["strategy=end_to_end", "recipe.keep=[data.image_size, data.selection.balance]"]) == \
        ["recipe.keep=[data.image_size,data.selection.balance,strategy]"]
