"""Freed memory stays in the process: the C allocator setting of the fast executions.

Every forward allocates its activations afresh (eager PyTorch on the CPU has no caching
allocator). glibc's ``malloc`` serves a request larger than its mmap threshold (128 KiB at
first, raised up to 32 MiB as large blocks are freed) with a new ``mmap`` and returns it to the
kernel on ``free``; it also trims the top of its heap once more than twice that threshold is
free. So each pass's large activations are new pages, and the kernel zero-fills every 4 KiB of
them on first touch: one page fault each. A CNN's activations at a run's batch size are
hundreds of MiB per forward, so those faults take a large share of a CPU forward's time, in
NCHW and in channels_last alike (the measurements are in ``perf/README.md``).

:func:`keep_freed_memory` tells glibc (``mallopt``) never to ``mmap`` a block
(``M_MMAP_MAX = 0``: large blocks come from the heap too) and never to trim the heap
(``M_TRIM_THRESHOLD`` = 2 GiB - 1), so freed activations are reused by the next pass. The
process then keeps its peak memory until it exits. Nothing computed changes: only where the
bytes live. It is what preloading tcmalloc or jemalloc (the usual advice for PyTorch on CPUs)
achieves, without a library to install or an environment variable set before the start.

It is a setting of the whole process, taken by the ``channels_last`` and ``compiled``
executions (the run applies it before any model work); ``eager`` leaves the allocator as it
was, as the benchmark's original path did. Platforms without glibc keep their allocator (and
say so in ``results.json``).
"""

from __future__ import annotations

import ctypes
import platform

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The largest trim threshold mallopt accepts (an ``int``): the heap is in effect never trimmed.
NEVER_TRIM = 2**31 - 1

DEFAULT = "the platform's default"
KEPT = "glibc malloc, freed memory kept (mallopt M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB)"

_in_force = DEFAULT


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> str:
    """Keep freed memory in this process for its reuse (see the module's docstring); returns
    the allocator now in force (:func:`allocator_in_force`). Safe to call more than once."""
    global _in_force
    libc = _glibc()
    if libc is not None and _in_force != KEPT:
        if libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1:
            _in_force = KEPT
    return _in_force


def allocator_in_force() -> str:
    """How this process's C allocator handles freed memory (for ``results.json``)."""
    return _in_force
