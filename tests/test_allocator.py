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


@pytest.mark.parametrize("reusing", [True, False], ids=["while-reusing", "after-reusing"])
def test_a_forked_worker_does_not_keep_the_parents_old_pages(reusing: bool) -> None:
    """A DataLoader worker shares the heap of the process it was forked from; each page the parent writes
    again is copied for the parent and the old one stays with the worker alone. The validation loader's
    worker, forked after a training epoch while freed activations are kept, reached 6.6 GB beside a 6.7 GB
    trainer after 4 BCCD epochs; the test loader's, forked by the evaluation after the fit (reuse off by
    then, the heap full of small freed blocks), 2.2 GB. A forked worker drops the inherited free pages when it
    starts: here it maps 0.3 GB (torch's own), not that plus the 1 GB the parent freed and writes again."""
    script = textwrap.dedent('''
        import multiprocessing
        import sys

        import torch
        from torch.utils.data import DataLoader, Dataset

        from yolotl.allocator import default_allocation, reuse_freed_memory

        MB = 1024 * 1024
        REUSING = sys.argv[1] == "True"


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
            """1 GB written and freed: kept in the heap while reusing; else 100 KB blocks (under glibc's mmap
            threshold, so in the heap too) below a live one, so freeing them returns nothing."""
            if REUSING:
                blocks = [torch.ones(64 * MB // 4) for _ in range(16)]
            else:
                blocks = [torch.ones(100 * 1024 // 4) for _ in range(10240)]
            top = torch.ones(100 * 1024 // 4)
            del blocks
            return top


        assert reuse_freed_memory()
        if not REUSING:
            default_allocation()  # as after a fit: reuse off again
        kept = one_step()
        loader = DataLoader(Items(), num_workers=1, batch_size=None, persistent_workers=True,
                            multiprocessing_context="fork")
        list(loader)  # the worker is forked now, and stays
        del kept
        kept = one_step()
        (worker,) = multiprocessing.active_children()
        print(anonymous_mb(worker.pid))
    ''')
    done = subprocess.run([sys.executable, "-c", script, str(reusing)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 800, f"the worker maps {done.stdout.split()[-1]} MB of anonymous memory"
