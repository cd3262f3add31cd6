"""Checkpoint writes: beside the target, then renamed; a full disk keeps the old file and says what to do."""

import errno
import os

import pytest
import torch

from yolotl import CheckpointError
from yolotl.training.checkpoint_io import AtomicCheckpointIO, write_atomically


def test_a_save_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    AtomicCheckpointIO().save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    write_atomically(b"good", path)
    (tmp_path / ".last.ckpt.999999.tmp").write_bytes(b"half")  # left by a process killed mid-save

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match=r"no space left to write .*last\.ckpt.*MiB free.*paths\.output_dir"):
        write_atomically(b"new bytes", path)
    monkeypatch.undo()
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.ckpt.999999.tmp", "last.ckpt"]
    write_atomically(b"new", path)  # the next good save also clears what a killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
