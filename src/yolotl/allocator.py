"""glibc's allocator and big tensors: reuse freed memory in training, hand it back when asked.

PyTorch's CPU tensors come from ``malloc``. glibc serves every block over its mmap threshold (32 MB at
most) with a fresh ``mmap`` and unmaps it when freed, so a training step page-faults and zeroes its large
activations anew every time: one 16 x 96 x 208 x 208 float tensor of EfficientNet-Lite0 at 416 px, batch 16,
is 266 MB. With mmap off and no trimming (:func:`reuse_freed_memory`), freed blocks stay in the heap and
the next step reuses their pages: ``bench/profile_train.py``'s ``end_to_end`` step took 2.4-2.5 s instead
of 3.1-4.0 s on the project's 2-core CPU, for a peak resident size 13 % higher (6.0 against 5.3 GB).

A process forked while freed memory is kept (a DataLoader worker started after a training epoch, as the
validation loader's is) shares that heap; each page the parent writes again is copied for the parent and
the old one stays with the child alone, until the child holds the parent's whole peak (a 6.6 GB validation
worker beside a 6.7 GB trainer after 4 BCCD epochs; 2.2 GB for the test loader's worker, forked by the
evaluation after the fit, when reuse was off but the heap still held freed blocks). So once reuse has been
turned on in a process, every child forked from it drops the inherited free pages at once (and goes back
to glibc's defaults if reuse is still on).

Linux with glibc only; elsewhere (macOS, musl, Windows) every function here does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from typing import Any

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults, restored by default_allocation (setting them turns glibc's dynamic threshold off)
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int

_reusing = False  # reuse_freed_memory is in force in this process


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (both exist in glibc only)
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory() -> bool:
    """Keep big freed blocks in the heap for the next allocation (no mmap, no trimming); False where the
    C library is not glibc (nothing changed)."""
    global _reusing
    libc = _libc()
    if libc is None:
        return False
    _register_fork_hook()
    _reusing = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return _reusing


def default_allocation() -> None:
    """glibc's default mmap count and trim threshold again, and the heap's free pages handed back."""
    global _reusing
    _reusing = False
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _after_fork_in_child() -> None:
    """In a forked child: the inherited free pages dropped, and glibc's defaults again while reusing."""
    if _reusing:
        default_allocation()
    else:
        return_freed_memory()


@functools.cache
def _register_fork_hook() -> None:
    """Register :func:`_after_fork_in_child` once per process; every later fork runs it."""
    os.register_at_fork(after_in_child=_after_fork_in_child)
