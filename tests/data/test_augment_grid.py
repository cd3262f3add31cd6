"""The augmented-sample grid: function and console script write a picture of what the model sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from yolotl import DetectionDataModule, save_augmentation_grid
from yolotl.data.datamodule import resolve_num_workers
from yolotl.data.augment_grid import preview_keys
from yolotl.api import config_dir

SYNTHETIC = {"num_train": 12, "num_val": 2, "num_test": 2, "image_size": 64}


def test_grid_of_augmented_samples(tmp_path: Path) -> None:
    dm = DetectionDataModule(str(tmp_path / "syn"), format="synthetic", image_size=64, augment={"preset": "heavy", "close_mosaic": 0}, reading={"synthetic": SYNTHETIC}, loader={"num_workers": 0})
    path = save_augmentation_grid(dm, tmp_path / "grid.png", num_samples=9)
    grid = cv2.imread(str(path))
    assert grid.shape == (3 * 66, 3 * 66, 3)
    assert grid[:64, :64].std() > 10  # a real image, not an empty canvas


def test_grid_shows_mosaic_off_after_close_mosaic(tmp_path: Path) -> None:
    dm = DetectionDataModule(str(tmp_path / "syn"), format="synthetic", image_size=64, augment={"preset": "heavy", "mosaic": 1.0, "close_mosaic": 3}, reading={"synthetic": SYNTHETIC}, loader={"num_workers": 0})
    assert all(key.mosaic for key in preview_keys(dm, 6, epoch=6, max_epochs=10))
    assert not any(key.mosaic for key in preview_keys(dm, 6, epoch=7, max_epochs=10))
    assert all(key.mosaic for key in preview_keys(dm, 6, epoch=7))  # no training length: never closed


def test_preview_console_script(tmp_path: Path) -> None:
    out = tmp_path / "samples.jpg"
    command = [sys.executable, "-m", "yolotl.cli.preview_augment", f"out={out}", "num_samples=4", "augment=light",
               f"data.root={tmp_path / 'syn'}", "data.reading.synthetic.num_train=8", "data.reading.synthetic.num_val=2",
               "data.reading.synthetic.num_test=2", "data.image_size=64", "data.reading.synthetic.image_size=64", "data.loader.num_workers=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"augmented samples: {out}" in result.stdout and out.is_file()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"), \
            pytest.raises(ConfigCompositionException, match="heavy"):  # the valid presets are listed
        compose(config_name="preview", overrides=["augment=extreme"])


def test_num_workers_auto_leaves_a_core_for_training(monkeypatch) -> None:
    for cores, workers in [(1, 0), (2, 1), (4, 3), (16, 4)]:
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert resolve_num_workers("auto") == workers
    assert resolve_num_workers(3) == 3
