"""The host allocator settings (jaxscale/host.py): applied once, reported, and switchable off."""

import subprocess
import sys

import pytest

CODE = ("import jaxscale.host as h; a = h.tune_malloc(); b = h.tune_malloc(); "
        "print(repr(a), repr(b), repr(h.allocator_description()))")


def _run(env_value):
    import os
    env = dict(os.environ)
    env.pop("JAXSCALE_MALLOC", None)
    if env_value is not None:
        env["JAXSCALE_MALLOC"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_applied_once_and_described():
    from jaxscale.host import DESCRIPTION
    out = _run(None)
    assert out == f"{DESCRIPTION!r} {DESCRIPTION!r} {DESCRIPTION!r}", out


def test_off_leaves_the_allocator_alone():
    out = _run("off")
    assert out == "None None \"the C library's defaults\"", out


def test_threads_keep_their_own_malloc_arenas():
    # one arena for the whole process made every lane's thread take one lock per allocation: a
    # sweep on two lanes lost a third of its time to it (jaxscale/host.py); glibc's per-thread
    # arenas must stay
    from jaxscale.host import SETTINGS
    m_arena_max = -8  # glibc malloc.h
    assert m_arena_max not in [param for param, _ in SETTINGS]
