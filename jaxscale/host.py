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

**Another allocator.** Before that, the ``jaxscale`` command and the experiment scripts restart
themselves once with jemalloc (else tcmalloc) preloaded, where one is installed
(:func:`preload_allocator`; Debian/Ubuntu: ``apt-get install libjemalloc2``). Why: XLA's CPU
compiler (MLIR and LLVM: millions of small allocations per program) runs faster on either than
on glibc's allocator, even as tuned above, and on a CPU a cold sweep of small models is mostly
compiling. Measured on the 2-core CPU (2026-12-03, six interleaved triples of a cold
``jaxscale sweep --preset notebook-emergence --no-save-weights`` with both caches off):
glibc 22.1-25.0 s (median 23.9 s, 40-42 s of CPU), jemalloc 19.5-21.7 s (median 20.6 s, 34-37
s), tcmalloc 19.1-23.5 s (median 21.0 s); warm runs moved within their noise (7.7-8.4 s against
7.8-8.7 s). ``JAXSCALE_ALLOCATOR=system`` keeps the C library's allocator; a path to a shared
library preloads that one instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import sysconfig
from typing import Mapping

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
    preloaded = loaded_allocator()
    if preloaded:  # glibc's malloc is not in use: its settings would change nothing
        _applied = f"{preloaded} (preloaded)"
        return _applied
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


# ----- a preloaded allocator -----------------------------------------------------------------------

ALLOCATOR_ENV = "JAXSCALE_ALLOCATOR"
# the libraries ``auto`` looks for, best first (both measured above; jemalloc was the steadier)
ALLOCATOR_LIBRARIES = ("libjemalloc.so.2", "libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
# file names of allocators a process may already have preloaded (by us or by its user)
ALLOCATOR_PREFIXES = ("libjemalloc.", "libtcmalloc", "libmimalloc.")
# set in the restarted process: the library preloaded (so that it never restarts twice)
PRELOADED_ENV = "JAXSCALE_PRELOADED_ALLOCATOR"


def _library_dirs() -> list[str]:
    multiarch = sysconfig.get_config_var("MULTIARCH")
    dirs = [os.path.join(sys.prefix, "lib")]  # a conda environment's own
    for root in ("/usr/local/lib", "/usr/lib", "/lib"):
        if multiarch:
            dirs.append(os.path.join(root, multiarch))
        dirs.append(root)
    return dirs + ["/usr/lib64"]


def find_allocator(setting: str | None = None) -> str | None:
    """The shared library to preload for ``$JAXSCALE_ALLOCATOR`` (``setting``): ``auto`` or
    unset, the first of ``ALLOCATOR_LIBRARIES`` installed in the usual library folders (None if
    none is); ``system``, None; anything else is a path, which must exist."""
    setting = (os.environ.get(ALLOCATOR_ENV, "") if setting is None else setting).strip()
    if setting.lower() == "system":
        return None
    if setting and setting.lower() != "auto":
        if not os.path.isfile(setting):
            raise ValueError(f"{ALLOCATOR_ENV}={setting!r}: no such library file (use 'auto', 'system' or the "
                             "path of a malloc library such as libjemalloc.so.2)")
        return os.path.abspath(setting)
    for name in ALLOCATOR_LIBRARIES:
        for folder in _library_dirs():
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def _preload_entries(environ: Mapping[str, str]) -> list[str]:
    """The libraries of ``$LD_PRELOAD`` (the loader takes spaces or colons between them)."""
    return environ.get("LD_PRELOAD", "").replace(":", " ").split()


def preload_env(environ: Mapping[str, str], library: str | None) -> dict | None:
    """The environment to restart with so that ``library`` is preloaded, or None when there is
    nothing to do: no library, or this process was started with it (by us or by the user)."""
    if library is None or environ.get(PRELOADED_ENV):
        return None
    entries = _preload_entries(environ)
    if any(os.path.basename(e).startswith(ALLOCATOR_PREFIXES) or e == library for e in entries):
        return None  # the user preloads an allocator already
    env = dict(environ)
    env["LD_PRELOAD"] = " ".join([library, *entries])
    env[PRELOADED_ENV] = library
    return env


def preload_allocator() -> None:
    """Restart this process (same interpreter, same arguments: ``sys.orig_argv``) with the
    allocator of :func:`find_allocator` preloaded, once. Call it first thing in a program's
    entry point, before any thread starts or any output is written: the process is replaced.
    Nothing happens off Linux, when no allocator is installed, or with
    ``JAXSCALE_ALLOCATOR=system``."""
    if not sys.platform.startswith("linux") or not getattr(sys, "orig_argv", None) or not sys.executable:
        return  # elsewhere, or an embedded interpreter that cannot be started again
    env = preload_env(os.environ, find_allocator())
    if env is None:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def preload_allocator_or_exit(prog: str) -> None:
    """:func:`preload_allocator` for a program's entry point: a bad ``$JAXSCALE_ALLOCATOR`` ends
    the program with ``{prog}: error: …`` and status 2, not a traceback."""
    try:
        preload_allocator()
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)


def loaded_allocator() -> str | None:
    """The file name of the preloaded allocator this process runs on (from its memory map):
    jemalloc, tcmalloc, mimalloc or the library :func:`preload_allocator` preloaded; None when
    it runs on the C library's."""
    ours = os.environ.get(PRELOADED_ENV)
    ours = os.path.realpath(ours) if ours and os.path.sep in ours else ours
    try:
        with open("/proc/self/maps") as maps:
            paths = dict.fromkeys(line.split()[-1] for line in maps if "/" in line)
    except OSError:  # not Linux
        return None
    for path in paths:
        name = os.path.basename(path)
        if name.startswith(ALLOCATOR_PREFIXES) or path == ours:
            return name
    return None


def without_preload(environ: Mapping[str, str]) -> dict:
    """``environ`` without the allocator :func:`preload_allocator` added: for a subprocess that
    must run as a user would run it (the eager PyTorch baseline of ``bench --vs-torch``)."""
    env = dict(environ)
    library = env.pop(PRELOADED_ENV, None)
    if library:
        rest = [e for e in _preload_entries(env) if e != library]
        if rest:
            env["LD_PRELOAD"] = " ".join(rest)
        else:
            env.pop("LD_PRELOAD", None)
    return env
