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


# ----- the preloaded allocator ---------------------------------------------------------------------

def test_find_allocator_prefers_jemalloc_and_honours_the_setting(tmp_path, monkeypatch):
    import jaxscale.host as h
    monkeypatch.setattr(h, "_library_dirs", lambda: [str(tmp_path / "none"), str(tmp_path)])
    assert h.find_allocator("auto") is None  # nothing installed: nothing to preload
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")
    assert h.find_allocator("") == str(tmp_path / "libtcmalloc_minimal.so.4")
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert h.find_allocator("auto") == str(tmp_path / "libjemalloc.so.2")
    assert h.find_allocator("system") is None
    mine = tmp_path / "libmine.so"
    mine.write_bytes(b"")
    assert h.find_allocator(str(mine)) == str(mine)
    with pytest.raises(ValueError, match="JAXSCALE_ALLOCATOR='/no/such/lib.so': no such library file"):
        h.find_allocator("/no/such/lib.so")


def test_preload_env_restarts_once_and_never_over_a_users_allocator():
    from jaxscale.host import PRELOADED_ENV, preload_env, without_preload
    lib = "/usr/lib/libjemalloc.so.2"
    env = preload_env({"PATH": "/bin", "LD_PRELOAD": "/opt/libhook.so"}, lib)
    assert env["LD_PRELOAD"] == f"{lib} /opt/libhook.so" and env[PRELOADED_ENV] == lib and env["PATH"] == "/bin"
    assert preload_env(env, lib) is None                                  # the restarted process: no second restart
    assert preload_env({"LD_PRELOAD": "/x/libtcmalloc_minimal.so.4.5.10"}, lib) is None  # the user's own
    assert preload_env({"PATH": "/bin"}, None) is None                    # nothing installed
    # a subprocess that must run as a user runs it gets the environment without ours
    assert without_preload(env) == {"PATH": "/bin", "LD_PRELOAD": "/opt/libhook.so"}
    assert without_preload(preload_env({}, lib)) == {}
    assert without_preload({"LD_PRELOAD": "/x/libjemalloc.so.2"}) == {"LD_PRELOAD": "/x/libjemalloc.so.2"}


RESTART = ("import sys, os; from jaxscale.host import preload_allocator, loaded_allocator, tune_malloc; "
           "preload_allocator(); print(loaded_allocator(), sys.argv[1:], tune_malloc())")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux's")
def test_a_process_restarts_on_the_installed_allocator_with_its_arguments():
    import os

    from jaxscale.host import PRELOADED_ENV, find_allocator
    library = find_allocator("auto")
    if library is None:
        pytest.skip("no jemalloc or tcmalloc installed (Debian: apt-get install libjemalloc2)")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", PRELOADED_ENV, "JAXSCALE_ALLOCATOR")}
    out = subprocess.run([sys.executable, "-c", RESTART, "a b", "--c"], capture_output=True, text=True, env=env,
                         check=True).stdout.split("\n")[0]
    name = os.path.basename(os.path.realpath(library))
    assert out == f"{name} ['a b', '--c'] {name} (preloaded)", out
    env["JAXSCALE_ALLOCATOR"] = "system"
    out = subprocess.run([sys.executable, "-c", RESTART], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    assert out.startswith("None [] glibc mallopt"), out


@pytest.mark.parametrize("prog", ["jaxscale", "power_law.py"])
def test_a_bad_allocator_setting_is_a_clean_error_of_the_command(prog):
    import os
    from pathlib import Path
    env = dict(os.environ, JAXSCALE_ALLOCATOR="/no/such/libmalloc.so")
    script = Path(__file__).resolve().parents[1] / "experiments" / "power_law.py"
    cmd = ["-m", "jaxscale.cli", "families"] if prog == "jaxscale" else [str(script), "--smoke"]
    proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{prog}: error: JAXSCALE_ALLOCATOR='/no/such/libmalloc.so': no such library file" in proc.stderr
