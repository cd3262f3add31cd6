"""Keep a thread's alternate signal stack across OpenVINO calls.

OpenVINO's CPU plugin gives the thread that compiles a model an alternate signal stack of its own and
puts the previous one back when the model is freed. With two compiled models alive at once, freeing them
leaves the thread's alternate stack pointing at memory the plugin has unmapped (found with OpenVINO
2026.4.1; tests/inference/test_openvino.py checks it). Python runs its signal handlers on that stack, so
the next Ctrl-C (KeyboardInterrupt, in a script or a Jupyter kernel) crashed the process with SIGSEGV
instead of stopping it (so did this project's runtime tests, in the test that interrupts a stream).
:func:`keep_signal_stack` restores the thread's own stack right after the call, so the plugin never
records its stack as the one to put back.

Linux (glibc's ``stack_t`` layout) only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _StackT(ctypes.Structure):  # Linux's stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _sigaltstack() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.POINTER(_StackT), ctypes.POINTER(_StackT)]
    return function


def current_signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack as ``(address, flags, size)``; None off Linux."""
    sigaltstack = _sigaltstack()
    if sigaltstack is None:
        return None
    stack = _StackT()
    if sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Whatever the block does to the calling thread's alternate signal stack is undone when it ends."""
    sigaltstack = _sigaltstack()
    before = _StackT()
    if sigaltstack is None or sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        before.ss_flags &= ~1  # SS_ONSTACK is reported, never set; SS_DISABLE (2) is kept
        sigaltstack(ctypes.byref(before), None)
