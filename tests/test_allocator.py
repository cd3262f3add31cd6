"""glibc keeps freed big tensors for the next allocation while training, and hands them back after."""

from __future__ import annotations

import resource
import sys

import lightning.pytorch as pl
import pytest
import torch

from yolotl.allocator import _libc, default_allocation, reuse_freed_memory
from yolotl.training import ReuseFreedMemory

pytestmark = pytest.mark.skipif(sys.platform != "linux" or _libc() is None, reason="glibc only")

MB = 1024 * 1024


def _faults_of_a_second_big_tensor(best: bool = True) -> int:
    """Minor page faults of allocating and filling a 128 MB tensor right after freeing one as big; the fewest
    (``best``) or the most of three tries (another thread holding glibc's main arena for a moment sends an
    allocation to a thread arena, which maps blocks this big whatever the settings)."""
    counts = []
    for _ in range(3):
        torch.ones(128 * MB // 4).sum()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(128 * MB // 4).sum()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(counts) if best else max(counts)


def test_freed_big_tensors_are_reused_only_while_asked() -> None:
    pages = 128 * MB // resource.getpagesize()
    try:
        assert _faults_of_a_second_big_tensor(best=False) > pages // 2, "glibc's default: a fresh mmap, every page faults"
        assert reuse_freed_memory()
        assert _faults_of_a_second_big_tensor() < pages // 10, "the freed block is reused"
    finally:
        default_allocation()
    assert _faults_of_a_second_big_tensor(best=False) > pages // 2, "defaults again afterwards"


def test_the_callback_turns_it_on_for_a_cpu_trainer_and_off_after() -> None:
    callback = ReuseFreedMemory()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    pages = 128 * MB // resource.getpagesize()
    try:
        callback.setup(trainer, pl.LightningModule(), "fit")
        assert _faults_of_a_second_big_tensor() < pages // 10
    finally:
        callback.teardown(trainer, pl.LightningModule(), "fit")
    assert _faults_of_a_second_big_tensor(best=False) > pages // 2
