"""glibc keeps freed big tensors for the next allocation while training, and hands them back after."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import lightning.pytorch as pl
import pytest
import torch

from yolotl.allocator import _libc
from yolotl.training import ReuseFreedMemory

pytestmark = pytest.mark.skipif(sys.platform != "linux" or _libc() is None, reason="glibc only")

MB = 1024 * 1024
_HELPERS = textwrap.dedent('''
    import resource
    import torch

    MB = 1024 * 1024
    PAGES = 128 * MB // resource.getpagesize()


    def faults_of_a_second_big_tensor(best=True):
        """Minor page faults of allocating and filling a 128 MB tensor right after freeing one as big; the
        fewest (best) or the most of three tries (another thread holding glibc's main arena for a moment
        sends an allocation to a thread arena, which maps blocks this big whatever the settings)."""
        counts = []
        for _ in range(3):
            torch.ones(128 * MB // 4).sum()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            torch.ones(128 * MB // 4).sum()
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return min(counts) if best else max(counts)


    def resident_mb():
        return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // MB
''')


def _resident_mb() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // MB


def test_freed_big_tensors_are_reused_while_asked_and_handed_back_after() -> None:
    """In a fresh process (a heap that earlier tests left holding big free blocks reuses them anyway)."""
    script = _HELPERS + textwrap.dedent('''
        from yolotl.allocator import default_allocation, reuse_freed_memory

        assert faults_of_a_second_big_tensor(best=False) > PAGES // 2, "glibc's default: a fresh mmap each time"
        assert reuse_freed_memory()
        assert faults_of_a_second_big_tensor() < PAGES // 10, "the freed block is reused"
        before = resident_mb()
        default_allocation()
        assert before - resident_mb() >= 100, (before, resident_mb())  # the freed 128 MB block handed back
        print("ok")
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_the_callback_turns_it_on_for_a_cpu_trainer_and_hands_memory_back_after() -> None:
    callback = ReuseFreedMemory()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    callback.setup(trainer, pl.LightningModule(), "fit")
    try:
        assert callback._active, "glibc: the callback turns reuse on for a CPU trainer"
        block = torch.ones(256 * MB // 4)
        block.sum()
        del block  # freed, but kept in the heap while the trainer runs
        kept = _resident_mb()
    finally:
        callback.teardown(trainer, pl.LightningModule(), "fit")
    assert not callback._active
    assert kept - _resident_mb() >= 200, "teardown hands the kept 256 MB back"


def test_a_worker_forked_while_memory_is_kept_does_not_keep_the_parents_old_pages() -> None:
    """A DataLoader worker forked after a training epoch (the validation loader's) shares the trainer's heap
    of freed activations; as the trainer writes them again, each page it copies leaves the old one to the
    worker alone: a 6.6 GB validation worker beside a 6.7 GB trainer after 4 BCCD epochs. The worker drops
    the inherited free pages when it starts: here it maps 0.3 GB (torch's own), not that plus the freed 1 GB."""
    script = textwrap.dedent('''
        import multiprocessing

        import torch
        from torch.utils.data import DataLoader, Dataset

        from yolotl.allocator import reuse_freed_memory

        MB = 1024 * 1024


        def anonymous_mb(pid):
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) // 1024


        class Items(Dataset):
            def __len__(self):
                return 1

            def __getitem__(self, index):
                return index


        def one_step():
            """Activations written and freed: with reuse on they stay in the heap for the next step."""
            blocks = [torch.ones(64 * MB // 4) for _ in range(16)]  # 1 GB
            del blocks


        assert reuse_freed_memory()
        one_step()
        loader = DataLoader(Items(), num_workers=1, batch_size=None, persistent_workers=True,
                            multiprocessing_context="fork")
        list(loader)  # the worker is forked now, and stays
        one_step()
        (worker,) = multiprocessing.active_children()
        print(anonymous_mb(worker.pid))
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 800, f"the worker maps {done.stdout.split()[-1]} MB of anonymous memory"
