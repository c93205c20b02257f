"""Host memory-allocator settings that keep XLA's CPU runtime from page-faulting every step.

Why: on a CPU, XLA allocates each execution's temporaries (activations kept for the backward pass,
attention probabilities, gradients) with the C library's ``malloc`` and frees them when the step
ends. With glibc's defaults, blocks of more than a few megabytes are served by ``mmap`` and
returned with ``munmap``, and freed heap tops are trimmed, so every step touches fresh pages and
the kernel zero-fills them again: millions of minor page faults per run. Measured on the 2-core
CPU (width 256, 4 layers, context 256, batch 32): a training step took 2.5 s with the defaults and
2.0-2.15 s with the settings below (three interleaved pairs), page faults fell from 3.0 M to
0.5-1.4 M; a lone 8192×256×1024 float32 matmul went from 69 to 175 GFLOP/s.

The settings (``mallopt``, glibc only, applied before the XLA backend starts its threads): no
``mmap`` for large blocks, no trimming of the heap top, and 256 MiB of top padding. The cost: the
process keeps its peak heap until it exits, which is what a training process does anyway.

glibc's arenas (one per thread, up to 8 per core) are left as they are. Until the ninth session
this module also set a single arena, which made every thread of the process take one lock for
each allocation: harmless for one program, but a sweep on several lanes (threads training and
compiling at once) lost a third of its time to it. Measured on the 2-core CPU, `jaxscale sweep
--preset notebook-emergence --mode sequential` (five models on two lanes), in interleaved runs:
cold (no compiled programs) 45-49 s with one arena against 34-40 s without, warm 14.8-15.9 s
against 10.2-12.9 s; the width-256 step above took 2.22-2.24 s with one arena and 1.96-2.23 s
without (more page faults, 0.93 M against 0.27-0.55 M, but no slower).

The CLI and the experiment scripts call :func:`tune_malloc` first thing; a library user can call
it too. ``JAXSCALE_MALLOC=off`` leaves the allocator alone (for comparisons).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
SETTINGS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, 256 << 20))
DESCRIPTION = "glibc mallopt: no mmap for large blocks, no heap trimming, 256 MiB top pad"

_applied: str | None = None


def tune_malloc() -> str | None:
    """Apply the allocator settings once; returns a description of what is in force (None when
    they were not applied: not Linux/glibc, or ``JAXSCALE_MALLOC=off``)."""
    global _applied
    if _applied is not None:
        return _applied or None
    _applied = ""
    if os.environ.get("JAXSCALE_MALLOC", "").lower() == "off" or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if all(mallopt(param, value) == 1 for param, value in SETTINGS):
        _applied = DESCRIPTION
    return _applied or None


def allocator_description() -> str:
    """What the host allocator is running with, for reports and bench output."""
    return _applied or "the C library's defaults"
