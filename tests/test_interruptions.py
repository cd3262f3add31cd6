"""Ctrl-C, and a kill in the middle of writing a checkpoint: the last good checkpoint survives, resume= finishes."""

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

RUN = ["data.image_size=96", "data.reading.synthetic.image_size=96", "data.reading.synthetic.num_train=48",
       "data.reading.synthetic.num_val=12", "data.reading.synthetic.num_test=12", "data.loader.num_workers=0", "data.batch_size=8",
       "trainer.max_epochs=3", "logger=csv", "seed=7"]

# yolotl-train whose next write of last.ckpt stops half-way with SIGKILL (the rest of the run is untouched).
KILLED_MID_SAVE = """
import os, signal, sys
from pathlib import Path
import yolotl.training.checkpoint_io as checkpoint_io

class _HalfWritten:
    def __init__(self, path, mode):
        self._f = open(path, mode)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self._f.close()
    def write(self, data):
        self._f.write(bytes(data[: len(data) // 2]))
        self._f.flush()
        os.fsync(self._f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

def _open(path, mode):
    return _HalfWritten(path, mode) if Path(path).name.startswith(".last.ckpt.") else open(path, mode)

checkpoint_io.open = _open
from yolotl.cli.train import main
sys.argv = ["yolotl-train", *sys.argv[1:]]
main()
"""


def _start(tmp_path: Path, *args: str, code: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "yolotl.cli.train", *args]
    return subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal


def _epoch(checkpoint: Path) -> int:
    return torch.load(checkpoint, weights_only=True, map_location="cpu")["epoch"]  # loads: not truncated


@pytest.mark.slow
def test_ctrl_c_and_a_kill_during_a_save_keep_the_last_good_checkpoint_and_resume_finishes(tmp_path):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.ckpt"
    process = _start(tmp_path, *RUN, f"data.root={tmp_path}/synthetic", f"paths.output_dir={run}")
    deadline = time.time() + 300
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, "the run ended before Ctrl-C"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-3000:]
    assert f"resume={run}" in out + err  # says how to go on
    assert (run / "FAILED").exists() and not (run / "metrics.json").exists()
    interrupted_at = _epoch(last)

    process = _start(tmp_path, f"resume={run}", code=KILLED_MID_SAVE)
    out, err = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, err[-3000:]
    assert list(last.parent.glob(".last.ckpt.*.tmp")), "the kill did not land inside a save of last.ckpt"
    assert _epoch(last) == interrupted_at  # the half-written file never replaced the good one

    process = _start(tmp_path, f"resume={run}")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    assert not (run / "FAILED").exists()
    assert not list(last.parent.glob(".*.tmp"))  # the half-written file was cleaned up
