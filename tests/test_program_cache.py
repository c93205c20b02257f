"""The on-disk program cache: a hit runs the same binary without tracing, and every input that
shapes a program (source, static configs, signature, environment) is part of its key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale import program_cache
from jaxscale.config import ModelConfig
from jaxscale.data.corpus import random_tokens_corpus
from jaxscale.data.source import from_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXSCALE_PROGRAM_CACHE", raising=False)
    folder = program_cache.enable(tmp_path / "programs")
    assert folder is not None, "this jax lacks the switch the program cache needs"
    yield folder
    program_cache.enable(None)
    program_cache._WRAPPED.clear()


def _other_source(monkeypatch):
    """The process as if it had imported another source (another digest, the same files)."""
    from jaxscale import source_snapshot

    monkeypatch.setattr(source_snapshot, "SNAPSHOT", source_snapshot.SNAPSHOT._replace(digest="0" * 64))


def _edited_on_disk(monkeypatch):
    """The package's files as if edited on disk after this process imported them (its record of
    one file's modification time no longer matches the file's)."""
    from jaxscale import source_snapshot

    snap = source_snapshot.SNAPSHOT
    (rel, size, mtime), *rest = snap.stats
    monkeypatch.setattr(source_snapshot, "SNAPSHOT", snap._replace(stats=((rel, size, mtime - 1), *rest)))
    monkeypatch.setattr(program_cache, "_SOURCE_MOVED", False)


def _counting_jit():
    traces = []

    def f(x_N, w):
        traces.append(1)  # runs only while tracing
        return {"y": jnp.tanh(x_N * w["a"]) + w["b"]}

    return jax.jit(f), traces


ARGS = (jnp.linspace(-2.0, 2.0, 7), {"a": jnp.float32(1.5), "b": jnp.ones((7,))})


def test_hit_runs_the_same_program_without_tracing(cache_dir):
    jitted, traces = _counting_jit()
    first = program_cache.CachedProgram(jitted, "toy", ("v", 1))(*ARGS)
    assert len(traces) == 1 and len(list(cache_dir.glob("toy-*.pkl"))) == 1
    fresh = program_cache.CachedProgram(jitted, "toy", ("v", 1))  # a new process would start like this
    again = fresh(*ARGS)
    assert fresh.hits == 1 and fresh.last == "disk" and len(traces) == 1, "a hit must not trace"
    np.testing.assert_array_equal(np.asarray(again["y"]), np.asarray(first["y"]))
    np.testing.assert_array_equal(np.asarray(fresh(*ARGS)["y"]), np.asarray(first["y"]))
    assert fresh.last == "memory"


def test_key_covers_static_signature_source_and_environment(cache_dir, monkeypatch):
    jitted, _ = _counting_jit()
    prog = program_cache.CachedProgram(jitted, "toy", ("v", 1))
    sig = program_cache.signature(ARGS)
    base = prog._path(sig)
    other_static = program_cache.CachedProgram(jitted, "toy", ("v", 2))._path(sig)
    other_shape = prog._path(program_cache.signature((jnp.ones(8), ARGS[1])))
    other_dtype = prog._path(program_cache.signature((ARGS[0].astype(jnp.bfloat16), ARGS[1])))
    monkeypatch.setenv("JAXSCALE_ATTENTION", "xla")
    other_env = prog._path(sig)
    monkeypatch.delenv("JAXSCALE_ATTENTION")
    _other_source(monkeypatch)
    other_source = prog._path(sig)
    paths = [base, other_static, other_shape, other_dtype, other_env, other_source]
    assert len(set(paths)) == len(paths), paths


@pytest.mark.parametrize("names,value", [
    (("JAXSCALE_ALLOCATOR", "JAXSCALE_PRELOADED_ALLOCATOR", "JAXSCALE_MALLOC"), "/usr/lib/libjemalloc.so.2"),
    (("JAXSCALE_COMPILATION_CACHE",), "/somewhere/else/"),
    (("JAXSCALE_CACHE", "JAXSCALE_DISTRIBUTED", "JAX_LOG_COMPILES"), "1"),
])
def test_settings_that_change_no_program_keep_the_key(cache_dir, monkeypatch, names, value):
    # the allocator a process runs on changes no compiled program: a run restarted on jemalloc
    # (jaxscale/host.py) must load what a run on the C library's allocator stored, and back; nor
    # do the cache's own folder as written, the corpus folder or JAX's compile log
    jitted, _ = _counting_jit()
    prog = program_cache.CachedProgram(jitted, "toy", ("v", 1))
    sig = program_cache.signature(ARGS)
    base = prog._path(sig)
    for name in names:
        monkeypatch.setenv(name, value)
    assert prog._path(sig) == base


def test_unreadable_file_is_recompiled_and_overwritten(cache_dir):
    jitted, traces = _counting_jit()
    expected = np.asarray(jitted(*ARGS)["y"])
    prog = program_cache.CachedProgram(jitted, "toy", "corrupt")
    path = prog._path(program_cache.signature(ARGS))
    path.write_bytes(b"not a program")
    np.testing.assert_array_equal(np.asarray(prog(*ARGS)["y"]), expected)
    assert prog.last == "compiled" and path.read_bytes() != b"not a program"
    fresh = program_cache.CachedProgram(jitted, "toy", "corrupt")
    np.testing.assert_array_equal(np.asarray(fresh(*ARGS)["y"]), expected)
    assert fresh.last == "disk"


def test_off_means_plain_jit(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXSCALE_PROGRAM_CACHE", "off")
    assert program_cache.enable(tmp_path) is None
    jitted, traces = _counting_jit()
    prog = program_cache.CachedProgram(jitted, "toy", "off")
    prog(*ARGS)
    assert prog.last == "off" and not list(tmp_path.iterdir())


def test_two_lanes_asking_for_one_program_compile_it_once(tmp_path, monkeypatch):
    """With no cache folder, ``compile_for`` keeps the program in memory: lanes that share a
    program (planner ``Group.shared``) and ask for it at once get one compile between them."""
    import threading

    program_cache.enable(None)
    jitted, traces = _counting_jit()
    prog = program_cache.CachedProgram(jitted, "toy", "shared")
    gate = threading.Barrier(3)
    sources = []

    def lane():
        gate.wait()
        sources.append(prog.compile_for(*ARGS))

    threads = [threading.Thread(target=lane) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sources) == ["compiled", "memory", "memory"] and len(traces) == 1
    np.testing.assert_allclose(prog(*ARGS)["y"], jitted(*ARGS)["y"])


def test_two_lanes_compile_two_programs_at_once_and_the_cache_setting_comes_back(cache_dir, monkeypatch):
    """Each lane's compile switches JAX's persistent cache off (``_fresh_compile``); the switch is
    counted, so a second lane's compile starts while the first is still compiling instead of
    waiting for it (a lock held through the compile deadlocks the barrier below until its
    timeout), and the setting is restored only when the last compile leaves."""
    import threading

    inside = threading.Barrier(2, timeout=20)
    seen = []
    real = jax.stages.Lowered.compile

    def compile_meeting_the_other_lane(self, *a, **kw):
        seen.append(bool(jax.config.jax_enable_compilation_cache))
        inside.wait()  # both lanes must be inside their compiles at once
        return real(self, *a, **kw)

    monkeypatch.setattr(jax.stages.Lowered, "compile", compile_meeting_the_other_lane)
    progs = [program_cache.CachedProgram(_counting_jit()[0], "toy", ("lane", i)) for i in range(2)]
    errors, results = [], {}

    def lane(i):
        try:
            results[i] = progs[i](*ARGS)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    was = bool(jax.config.jax_enable_compilation_cache)
    jax.config.update("jax_enable_compilation_cache", True)
    try:
        threads = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        restored = bool(jax.config.jax_enable_compilation_cache)
    finally:
        jax.config.update("jax_enable_compilation_cache", was)
    assert not errors, f"the two compiles did not run at once: {errors!r}"
    assert seen == [False, False], "JAX's persistent cache must be off inside both compiles"
    assert [p.last for p in progs] == ["compiled", "compiled"]
    assert restored and program_cache._fresh_count == 0, "the setting must come back after the last compile"
    expected = np.tanh(np.asarray(ARGS[0]) * 1.5) + 1.0
    for i in range(2):
        np.testing.assert_allclose(np.asarray(results[i]["y"]), expected, rtol=1e-6, atol=1e-6)


def test_lanes_trace_one_at_a_time(cache_dir):
    """Tracing and lowering hold the GIL, so two lanes tracing at once only take turns and
    delay both compiles; ``_lower`` lets one lane trace at a time (the compiles still overlap:
    the test above). Each traced function sleeps while it is traced; the two tracing intervals
    must not overlap."""
    import threading
    import time

    spans, errors = [], []

    def slow_to_trace():  # a function per lane: JAX would share one function's trace
        def f(x_N):
            t0 = time.perf_counter()
            time.sleep(0.3)  # runs only while tracing
            spans.append((t0, time.perf_counter()))
            return x_N * 2.0
        return f

    progs = [program_cache.CachedProgram(jax.jit(slow_to_trace()), "toy", ("trace", i)) for i in range(2)]
    start = threading.Barrier(2, timeout=20)

    def lane(i):
        try:
            start.wait()
            progs[i].compile_for(ARGS[0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0, f"the lanes traced at once: {sorted(spans)}"
    np.testing.assert_allclose(np.asarray(progs[1](ARGS[0])), 2.0 * np.asarray(ARGS[0]))


def _train(mode):
    cfgs = [ModelConfig(name=f"pc{d}", vocab_size=64, d_model=d, n_heads=d // 8, n_layers=2, d_ff=2 * d,
                        max_seq_len=16) for d in (16, 32)]
    data = from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4,
                       eval_max_windows=16, vocab_size=64)
    specs = [ModelSpec(c, 1, OptimConfig(lr=3e-3), Budget("steps", 30)) for c in cfgs]
    settings = RunSettings(batch_size=4, seq_len=16, progress=False, n_evals=2, steps_per_dispatch=10)
    if mode == "stack":
        return train_group(specs, data, settings, mode="stack").rows
    return train_group(specs[:1], data, settings, mode="alone").rows


@pytest.mark.parametrize("mode", ["alone", "stack"])
def test_training_from_cached_programs_matches_uncached(cache_dir, mode, monkeypatch):
    first = _train(mode)  # compiles and stores
    assert first[0]["stack"]["program_cache"] == "compiled"
    program_cache._WRAPPED.clear()  # forget the loaded programs: the next run reads them from disk
    again = _train(mode)
    assert again[0]["stack"]["program_cache"] == "disk"
    program_cache.enable(None)
    program_cache._WRAPPED.clear()
    plain = _train(mode)
    assert plain[0]["stack"]["program_cache"] == "off"
    for a, b, c in zip(first, again, plain):
        assert [p["train_loss"] for p in a["curve"]] == [p["train_loss"] for p in b["curve"]] \
            == [p["train_loss"] for p in c["curve"]]
        assert a["val_loss"] == b["val_loss"] == c["val_loss"] and a["test_loss"] == b["test_loss"] == c["test_loss"]


def test_auto_compile_ahead_loads_stored_programs_ahead_on_a_cpu(cache_dir):
    """``RunSettings.compile_ahead="auto"`` (the default) on a CPU: a cold sweep compiles every
    group in the foreground (a background compile fights the training for the cores); a warm one
    loads each next group's programs from disk while the one before trains. Same rows either way."""
    from jaxscale.sweep import run_sweep

    cfgs = [ModelConfig(name=f"ah{d}", vocab_size=64, d_model=d, n_heads=d // 8, n_layers=1, d_ff=2 * d,
                        max_seq_len=16) for d in (8, 16, 24)]
    data = from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4,
                       eval_max_windows=16, vocab_size=64)
    specs = [ModelSpec(c, 1, OptimConfig(lr=3e-3), Budget("steps", 20)) for c in cfgs]
    settings = RunSettings(batch_size=4, seq_len=16, progress=False, n_evals=2, steps_per_dispatch=10)
    assert settings.compile_ahead == "auto"
    cold = run_sweep(specs, data, settings, mode="sequential", save_weights=False, lanes=1).rows
    assert [r["stack"]["compiled_ahead"] for r in cold] == [False, False, False]
    program_cache._WRAPPED.clear()  # a new process: programs only on disk
    warm = run_sweep(specs, data, settings, mode="sequential", save_weights=False, lanes=1).rows
    assert [r["stack"]["compiled_ahead"] for r in warm] == [False, True, True]
    assert [r["stack"]["program_cache"] for r in warm] == ["disk", "disk", "disk"]
    for a, b in zip(cold, warm):
        assert [p["train_loss"] for p in a["curve"]] == [p["train_loss"] for p in b["curve"]]
        assert a["test_loss"] == b["test_loss"]


def test_a_program_in_jaxs_own_cache_is_stored_runnable(cache_dir, tmp_path):
    """A binary JAX read from its persistent cache cannot be serialised again (it fails when run):
    a miss must compile afresh even when JAX's cache holds the program."""
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    saved = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir", "jax_enable_compilation_cache",
                                                 "jax_persistent_cache_min_compile_time_secs",
                                                 "jax_persistent_cache_min_entry_size_bytes")}
    try:
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla"))
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax_cache.reset_cache()
        jitted, _ = _counting_jit()
        expected = np.asarray(jitted(*ARGS)["y"])  # compiled, and written to JAX's cache
        assert list((tmp_path / "xla").glob("jit_f-*")), "JAX's cache did not store the program"
        jax.clear_caches()  # the next compile reads JAX's cache
        program_cache.CachedProgram(jitted, "toy", "jax-cache")(*ARGS)
        fresh = program_cache.CachedProgram(jitted, "toy", "jax-cache")
        np.testing.assert_array_equal(np.asarray(fresh(*ARGS)["y"]), expected)
        assert fresh.last == "disk"
        assert jax.config.jax_enable_compilation_cache, "JAX's cache must be switched back on"
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)
        jax_cache.reset_cache()


def test_a_trained_group_notes_its_program_for_the_planner(cache_dir, monkeypatch):
    """After a group trains, ``train_program_key`` (computed from the models and settings alone,
    as the planner can) finds its program noted as stored; another stack size, another source
    or no cache at all finds nothing."""
    from jaxscale.group_setup import prepare_group, train_program_key

    cfg = ModelConfig(name="note8", vocab_size=64, d_model=8, n_heads=1, n_layers=1, d_ff=16, max_seq_len=16)
    data = from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4,
                       eval_max_windows=16, vocab_size=64)
    specs = [ModelSpec(cfg, s, OptimConfig(lr=3e-3), Budget("steps", 10)) for s in (0, 1)]
    settings = RunSettings(batch_size=4, seq_len=16, progress=False, n_evals=1, steps_per_dispatch=10)
    key = train_program_key(specs, data, settings, "stack")
    assert key == prepare_group(specs, data, settings, mode="stack").program_key
    assert not program_cache.is_stored("train_chunk", key)
    train_group(specs, data, settings, mode="stack")
    assert program_cache.is_stored("train_chunk", key)
    assert not program_cache.is_stored("train_chunk", train_program_key(specs[:1], data, settings, "alone"))
    assert not program_cache.is_stored("train_chunk", train_program_key(specs + specs[:1], data, settings, "stack"))
    _other_source(monkeypatch)
    assert not program_cache.is_stored("train_chunk", key)
    monkeypatch.undo()
    program_cache.enable(None)
    assert not program_cache.is_stored("train_chunk", key)


def test_programs_are_kept_for_later_runs_only_where_a_persistent_cache_is_on(tmp_path, monkeypatch):
    """``compile_cache.programs_kept``, which tells the planner whether a rerun will load this
    run's programs: off with both caches off, on with jaxscale's program cache or JAX's own."""
    from jaxscale.compile_cache import enable_compilation_cache, programs_kept

    before = jax.config.jax_compilation_cache_dir
    monkeypatch.delenv("JAXSCALE_PROGRAM_CACHE", raising=False)
    try:
        monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
        jax.config.update("jax_compilation_cache_dir", None)
        assert enable_compilation_cache() is None and not programs_kept()
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla"))  # JAX's cache alone
        assert not program_cache.in_use() and programs_kept()
        jax.config.update("jax_compilation_cache_dir", None)
        program_cache.enable(tmp_path / "programs")  # jaxscale's program cache alone
        assert programs_kept()
    finally:
        program_cache.enable(None)
        jax.config.update("jax_compilation_cache_dir", before)


def test_a_source_edited_during_the_run_neither_loads_nor_stores_programs(cache_dir, monkeypatch):
    """The source hash is the one taken when the package was imported; once the files on disk
    differ (an edit saved during a run) no program is stored under it (it could be the old
    code's under the new source's key: a reviewer's run loaded the old LayerNorm epsilon's
    program into the edited source's next run) nor loaded, with one warning."""
    jitted, traces = _counting_jit()
    program_cache.CachedProgram(jitted, "toy", ("v", 1))(*ARGS)  # stored while the source is current
    assert len(list(cache_dir.glob("toy-*.pkl"))) == 1
    _edited_on_disk(monkeypatch)
    with pytest.warns(RuntimeWarning, match="changed on disk since this process imported them"):
        stored = program_cache.CachedProgram(jitted, "toy", ("v", 1))
        stored(*ARGS)
    assert stored.last == "compiled" and stored.hits == 0, "a stored program was loaded after the edit"
    fresh = program_cache.CachedProgram(jitted, "toy", ("v", 2))
    fresh(*ARGS)
    assert fresh.last == "compiled" and len(list(cache_dir.glob("toy-*.pkl"))) == 1, "stored after the edit"
    program_cache.note_stored("toy", "k")
    assert not program_cache.is_stored("toy", "k")


def test_the_snapshot_sees_an_edit_an_added_file_and_a_revert(tmp_path):
    import os

    from jaxscale import source_snapshot

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    snap = source_snapshot.take(tmp_path)
    assert source_snapshot.unchanged(snap, tmp_path)
    assert snap.digest != source_snapshot.take(tmp_path / "sub").digest
    st = os.stat(tmp_path / "a.py")
    (tmp_path / "a.py").write_text("x = 3\n")  # same size, new content
    os.utime(tmp_path / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert not source_snapshot.unchanged(snap, tmp_path)
    assert source_snapshot.take(tmp_path).digest != snap.digest
    (tmp_path / "a.py").write_text("x = 1\n")  # reverted: the content again, not the time
    assert not source_snapshot.unchanged(snap, tmp_path)
    os.utime(tmp_path / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert source_snapshot.unchanged(snap, tmp_path)
    (tmp_path / "c.py").write_text("")
    assert not source_snapshot.unchanged(snap, tmp_path)


EDIT_RACE = """
import json, sys
from pathlib import Path
from jaxscale.compile_cache import enable_compilation_cache
enable_compilation_cache()
import jaxscale
from jaxscale.config import ModelConfig
from jaxscale.data.corpus import random_tokens_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import OptimConfig, Budget

model_py = Path(jaxscale.__file__).parent / "model.py"
if sys.argv[1] == "edit":  # saved after the import, before the first program is keyed
    model_py.write_text(model_py.read_text().replace("LN_EPS = 1e-5", "LN_EPS = 1e-1"))
cfg = ModelConfig(vocab_size=64, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=16, name="t")
spec = ModelSpec(cfg, 0, OptimConfig(lr=3e-2), Budget("steps", 12))
settings = RunSettings(batch_size=4, progress=False, eval_windows=4, steps_per_dispatch=6)
row = train_group([spec], random_tokens_corpus(64, 20000, seed=0), settings, mode="alone").rows[0]
print(json.dumps({"test": row["test_loss"], "source": row["stack"]["program_cache"]}))
"""


@pytest.mark.slow
def test_an_edit_saved_while_a_run_starts_does_not_poison_the_next_run(tmp_path):
    """End to end, on a copy of the package: a run whose model.py is edited on disk after its
    imports (LayerNorm's epsilon 1e-5 -> 1e-1) must not leave its program for the edited
    source's next run, which has to give what it gives with the caches off (it gave the old
    code's test loss, 4.3026 against 4.2136)."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import jaxscale

    pkg = tmp_path / "pkg"
    shutil.copytree(Path(jaxscale.__file__).parent, pkg / "jaxscale",
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert "LN_EPS = 1e-5" in (pkg / "jaxscale" / "model.py").read_text()
    script = tmp_path / "race.py"
    script.write_text(EDIT_RACE)

    def run(mode, cache):
        env = dict(os.environ, PYTHONPATH=str(pkg), JAXSCALE_COMPILATION_CACHE=cache, JAX_PLATFORMS="cpu")
        env.pop("JAXSCALE_PROGRAM_CACHE", None)
        done = subprocess.run([sys.executable, str(script), mode], env=env, capture_output=True, text=True,
                              timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    cache = str(tmp_path / "cache")
    _, err = run("edit", cache)
    assert "changed on disk since this process imported them" in err
    edited, _ = run("plain", cache)
    truth, _ = run("plain", "off")
    assert edited["source"] == "compiled" and edited["test"] == truth["test"]
