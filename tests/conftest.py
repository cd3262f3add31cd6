"""Fixtures shared across the test tree: one small real training run that later stages reuse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory):
    """The test session's own yolotl cache (data health cache, decoded images): tests neither read a
    user's cache nor leave files in it; subprocesses inherit it through the environment."""
    patch = pytest.MonkeyPatch()
    patch.setenv("YOLOTL_CACHE", str(tmp_path_factory.mktemp("yolotl-cache")))
    yield
    patch.undo()


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path  # the yolotl-train run folder (checkpoints/, logs/metrics.csv, config.yaml, metrics.json)
    data_root: Path  # the synthetic YOLO dataset it trained on (train/val/test, 128 px)
    metrics: dict[str, Any]  # what train() returned

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """An 8-epoch fit on 128 px synthetic data through the Hydra config (about a minute on 2 CPU cores).

    Slow: only tests marked ``slow`` should request it. It learns enough (mAP50 well above 0.4) for
    evaluation, prediction and export tests to compare real detections.
    """
    from yolotl.api import config_dir, train

    root = tmp_path_factory.mktemp("trained")
    overrides = [
        f"paths.output_dir={root}/run",
        f"data.root={root}/synthetic",
        "data.image_size=128",
        "data.synthetic.image_size=128",
        "data.synthetic.num_train=96",
        "data.synthetic.num_val=20",
        "data.synthetic.num_test=20",
        "data.num_workers=0",
        "trainer.max_epochs=8",
        "logger=csv",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    metrics = train(cfg)
    return TrainedRun(run_dir=root / "run", data_root=root / "synthetic", metrics=metrics)
