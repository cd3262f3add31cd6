"""metrics.json handling and the sweep summary table."""

import json
import os
import subprocess
import sys

import pytest

from yolotl.training.run import clean_metrics, summarise_runs, write_metrics


def test_clean_metrics_keeps_one_stage_and_tells_no_ground_truth_from_a_diverged_loss():
    values = {"val/map": 0.5, "val/ap/RBC": float("nan"), "val/loss": float("nan"), "val/cls": float("inf"),
              "test/map": 0.1, "train/loss": 3.0}
    assert clean_metrics(values, "val") == {"map": 0.5, "ap/RBC": -1.0, "loss": None, "cls": None}


def test_summary_table_has_one_row_per_job(tmp_path):
    for job, strategy, score in (("0_finetune", "finetune", 0.81), ("1_feature_extract", "feature_extract", 0.7)):
        write_metrics(tmp_path / job, {"strategy": strategy, "val": {"map_50": score}, "test": {"map_50": score - 0.1},
                                       "trainable_params": 10, "images_per_s": 5.0, "wall_time_s": 100.0, "epochs": 3})
    csv_path, md_path = summarise_runs(tmp_path)
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("job,strategy") and len(rows) == 3
    assert "| 0_finetune | finetune |" in md_path.read_text()
    assert "0.7100" in rows[1]


def test_fold_runs_get_mean_and_spread_rows(tmp_path):
    for fold, score in enumerate((0.5, 0.6, 0.7)):
        write_metrics(tmp_path / f"{fold}_fold", {"strategy": "finetune", "fold": fold, "test": {"map": score},
                                                  "epochs": 3})
    rows = [r.split(",") for r in (tmp_path / "summary.csv").read_text().splitlines()] if summarise_runs(tmp_path) else []
    header = rows[0]
    mean, std = rows[-2], rows[-1]
    assert mean[0] == "mean" and std[0] == "std" and len(rows) == 6
    column = header.index("test_map")
    assert float(mean[column]) == pytest.approx(0.6) and float(std[column]) == pytest.approx(0.1)
    assert mean[header.index("fold")] == ""  # no mean of fold numbers
    assert "| mean |" in (tmp_path / "summary.md").read_text()


def test_no_runs_no_summary(tmp_path):
    assert summarise_runs(tmp_path) is None


@pytest.mark.slow
def test_parallel_sweep_over_strategies_writes_the_summary(tmp_path):
    """Two jobs side by side through the joblib launcher (hydra/launcher=parallel), one summary table."""
    result = subprocess.run(
        [sys.executable, "-m", "yolotl.cli.train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
         "strategy=feature_extract,end_to_end", "debug=fast",
         "pretrained=false", "backbone=mobilenetv3_small_100", "data.image_size=64", "data.reading.synthetic.image_size=64",
         "data.reading.synthetic.num_train=16", "data.reading.synthetic.num_val=4", "data.reading.synthetic.num_test=4",
         f"data.root={tmp_path}/synthetic", f"hydra.sweep.dir={tmp_path}/sweep", "logger=csv"],
        capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout  # the jobs really went through joblib
    table = (tmp_path / "sweep" / "summary.md").read_text()
    assert "feature_extract" in table and "end_to_end" in table
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(runs) == 2
    first = json.loads(runs[0].read_text())
    assert first["strategy"] == "feature_extract" and first["trainable_params"] < first["total_params"]


def test_warmup_then_cosine_schedule():
    from yolotl.training.optimization import warmup_cosine

    factors = [warmup_cosine(step, total=100, warmup=10, floor=0.05) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:10], factors[1:11]))  # rising during warmup
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # then falling
    assert factors[100] == pytest.approx(0.05)


@pytest.mark.parametrize(("trainer_args", "total", "warmup"), [
    ({"max_epochs": 30, "max_steps": 6}, 6, 2),  # max_steps ends the run: an epoch is still 2 steps
    ({"max_epochs": 3, "accumulate_grad_batches": 2}, 3, 1),
])
@pytest.mark.slow
def test_warmup_is_counted_in_epochs_of_the_loader_also_under_max_steps(trainer_args, total, warmup):
    """warmup_epochs=1 is one pass over the loader (2 batches of 4 here), whatever ends the run."""
    import lightning.pytorch as pl

    from tests.training.conftest import loader
    from yolotl import DetectionModule, WarmupCosine, adamw, create_detector

    detector = create_detector("efficientnet_lite0", num_classes=2, pretrained=False, image_size=64, neck_width=16)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, **trainer_args)
    trainer.fit(DetectionModule(detector, optimizer=adamw(lr=1e-2), schedule=WarmupCosine(warmup_epochs=1.0)), train_dataloaders=loader())
    schedule = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == total
    assert (schedule.lr_lambdas[0].keywords["total"], schedule.lr_lambdas[0].keywords["warmup"]) == (total, warmup)


@pytest.mark.slow
def test_a_run_without_validation_finishes_with_its_last_checkpoint(tmp_path):
    """trainer.limit_val_batches=0: before, EarlyStop stopped the fit and the evaluation hit an IndexError."""
    from hydra import compose, initialize_config_dir

    from yolotl.api import config_dir, train

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "debug=fast", "pretrained=false", "backbone=mobilenetv3_small_100", "data.image_size=64",
            "data.reading.synthetic.image_size=64", "data.reading.synthetic.num_train=8", "data.reading.synthetic.num_val=4",
            "data.reading.synthetic.num_test=4", "data.loader.num_workers=0", "trainer.limit_val_batches=0", "logger=csv",
            f"data.root={tmp_path}/synthetic", f"paths.output_dir={tmp_path}/run"])
    metrics = train(cfg)
    assert metrics["checkpoint"] == "last weights" and "val" not in metrics and "test" not in metrics
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] > 0


def test_summary_table_has_the_mean_iou_of_semantic_runs(tmp_path):
    write_metrics(tmp_path / "0_semantic", {"strategy": "finetune", "val": {"miou": 0.55}, "test": {"miou": 0.5}})
    rows = [r.split(",") for r in summarise_runs(tmp_path)[0].read_text().splitlines()]
    assert rows[1][rows[0].index("val_miou")] == "0.5500" and rows[1][rows[0].index("test_miou")] == "0.5000"
