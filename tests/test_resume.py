"""yolotl-train resume=<run>: a run killed mid-epoch continues to the weights and scores of an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from yolotl import ConfigError
from yolotl.api.resume import resume_point

# Small enough to take seconds an epoch; EMA, mosaic, colour jitter and repeat-factor sampling on.
RUN = ["data.image_size=96", "data.reading.synthetic.image_size=96", "data.reading.synthetic.num_train=48",
       "data.reading.synthetic.num_val=12", "data.reading.synthetic.num_test=12", "data.loader.num_workers=0", "data.batch_size=8",
       "trainer.max_epochs=3", "data.augment.close_mosaic=1", "logger=csv", "seed=7"]


def _train(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "yolotl.cli.train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-3000:]
    return out


def _detector_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    return {k: v for k, v in state["state_dict"].items() if k.startswith("detector.")} | {
        f"current.{k}": v for k, v in state.get("current_model_state", {}).items()}


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_unbroken_runs_weights_and_scores(tmp_path):
    data = f"data.root={tmp_path}/synthetic"
    _finish(_train(tmp_path, *RUN, data, f"paths.output_dir={tmp_path}/unbroken"))

    broken = tmp_path / "broken"
    process = _train(tmp_path, *RUN, data, f"paths.output_dir={broken}")
    last = broken / "checkpoints" / "last.ckpt"
    deadline = time.time() + 600
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next epoch
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (broken / "metrics.json").exists()
    killed_epoch = torch.load(last, weights_only=True, map_location="cpu")["epoch"]
    assert killed_epoch < 2

    (broken / "FAILED").write_text("an earlier attempt failed\n")
    out = _finish(_train(tmp_path, f"resume={broken}", "data.loader.num_workers=0"))
    assert "resuming" in out and not (broken / "FAILED").exists()
    want = json.loads((tmp_path / "unbroken" / "metrics.json").read_text())
    got = json.loads((broken / "metrics.json").read_text())
    assert got["steps"] == want["steps"] and got["epochs"] == want["epochs"]
    assert got["val"] == want["val"] and got["test"] == want["test"]  # bit-exact on the CPU
    mine, theirs = _detector_weights(last), _detector_weights(tmp_path / "unbroken" / "checkpoints" / "last.ckpt")
    assert mine.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert torch.equal(mine[name], tensor), name


def test_resume_refuses_a_setting_that_changes_the_run_and_names_it(tmp_path):
    from hydra import compose, initialize_config_dir

    from yolotl.api import config_dir, resumed_config

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={run}"])
    from omegaconf import OmegaConf

    OmegaConf.save(cfg, run / "config.yaml")
    given = OmegaConf.merge(cfg, {"resume": str(run), "data": {"loader": {"num_workers": 3}}, "model": {"module": {"optimizer": {"lr": 0.1}}}})
    with pytest.raises(ConfigError, match=r"model.module.optimizer.lr=0.1 would change what it trains.*init_from="):
        resumed_config(given, [f"resume={run}", "model.module.optimizer.lr=0.1"])
    resumed, checkpoint = resumed_config(given, [f"resume={run}", "data.loader.num_workers=3"])
    assert resumed.data.loader.num_workers == 3 and resumed.model.module.optimizer.lr == cfg.model.module.optimizer.lr
    assert checkpoint == (run / "checkpoints" / "last.ckpt").resolve() and resumed.paths.output_dir == str(run.resolve())


def test_resume_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="no such run folder"):
        resume_point(tmp_path / "nowhere")
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="stopped before its first checkpoint"):
        resume_point(tmp_path)
