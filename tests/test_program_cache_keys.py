"""What keys a compiled program (``program_cache``): a label (a model's name) is no part of it, so
models of one shape share one program; equivalent shardings of the arguments give one key, so a
stack on one model shard with its batch split over devices is keyed once, however its outputs'
shardings print."""

import dataclasses
import json
import os
import subprocess
import sys

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
    assert folder is not None
    yield folder
    program_cache.enable(None)
    program_cache._WRAPPED.clear()


def _cfg(name: str, **changes) -> ModelConfig:
    fields = dict(vocab_size=64, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=16)
    return ModelConfig(name=name, **{**fields, **changes})


def _data():
    return from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4, eval_max_windows=16,
                       vocab_size=64)


SETTINGS = RunSettings(batch_size=4, seq_len=16, progress=False, n_evals=2, steps_per_dispatch=10)


def _alone(name: str, data, **changes) -> dict:
    spec = ModelSpec(_cfg(name, **changes), 0, OptimConfig(lr=3e-3), Budget("steps", 20))
    return train_group([spec], data, SETTINGS, mode="alone").rows[0]


def _files(folder, kind: str) -> int:
    return len(list(folder.glob(f"{kind}-*.pkl")))


def test_models_differing_only_in_name_share_their_programs_in_one_process(cache_dir):
    """A family's size and the same shape under another name (explicit --sizes, another family)
    compile one training and one evaluation program: the second model finds them in memory."""
    data = _data()
    first = _alone("family-a/s", data)
    assert first["stack"]["program_cache"] == "compiled"
    second = _alone("family-b/s", data)
    assert second["stack"]["program_cache"] == "memory", "the name entered the program's key"
    assert _files(cache_dir, "train_chunk") == 1 and _files(cache_dir, "eval") == 1
    assert second["test_loss"] == first["test_loss"]  # same seed, same shape: the same model


def test_models_differing_only_in_name_load_each_others_programs_from_disk(cache_dir):
    """The on-disk key (a later process) ignores the name too, and so does the planner's note."""
    from jaxscale.group_setup import train_program_key

    data = _data()
    spec_b = ModelSpec(_cfg("family-b/s"), 0, OptimConfig(lr=3e-3), Budget("steps", 20))
    key_b = train_program_key([spec_b], data, SETTINGS, "alone")
    first = _alone("family-a/s", data)
    assert first["stack"]["program_cache"] == "compiled"
    program_cache._WRAPPED.clear()  # a new process: the programs are only on disk
    second = _alone("family-b/s", data)
    assert second["stack"]["program_cache"] == "disk", "the name entered the program's key on disk"
    assert program_cache.is_stored("train_chunk", key_b), "the planner's note was keyed by the name"
    assert _files(cache_dir, "train_chunk") == 1 and _files(cache_dir, "eval") == 1
    assert second["test_loss"] == first["test_loss"]


@pytest.mark.parametrize("changes", [dict(dropout=0.1), dict(tie_embeddings=True), dict(dtype="bfloat16"),
                                     dict(d_ff=48), dict(n_layers=2), dict(max_seq_len=32)])
def test_what_changes_the_program_stays_in_its_key(cache_dir, changes):
    """Everything of a config but its name shapes the program: each keeps the key apart (the
    planner's note and the disk key, which is made from the same static parts)."""
    from jaxscale.group_setup import train_program_key

    data = _data()

    def key(cfg, optim=OptimConfig()):
        return train_program_key([ModelSpec(cfg, 0, optim, Budget("steps", 20))], data, SETTINGS, "alone")

    base = key(_cfg("a"))
    assert key(_cfg("b")) == base
    assert key(_cfg("a", **changes)) != base
    jitted = lambda x: x  # noqa: E731  (only keyed, never called)
    sig = ("sig",)
    path = lambda static: program_cache.CachedProgram(jitted, "train_chunk", static)._path(sig)  # noqa: E731
    assert path((_cfg("a"), 1)) == path((_cfg("b"), 1))
    assert path((_cfg("a", **changes), 1)) != path((_cfg("a"), 1))


@pytest.mark.parametrize("setting", [dict(beta2=0.99), dict(eps=1e-6), dict(clip_norm=0.5), dict(min_lr_ratio=0.0),
                                     dict(decay_all=True)])
def test_optimiser_settings_baked_into_the_program_stay_in_its_key(setting):
    from jaxscale.group_setup import train_program_key

    data = _data()

    def key(optim):
        return train_program_key([ModelSpec(_cfg("a"), 0, optim, Budget("steps", 20))], data, SETTINGS, "alone")

    base = key(OptimConfig())
    assert key(OptimConfig(lr=3e-2, weight_decay=0.0, warmup_frac=0.3)) == base  # per-model data, not baked in
    assert key(dataclasses.replace(OptimConfig(), **setting)) != base


FOUR_DEVICES = r"""
import json, sys
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxscale import program_cache
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig

folder = program_cache.enable(sys.argv[1])
# every key the run looks up
real_path, looked_up = program_cache.CachedProgram._path, set()
def _path(self, sig):
    path = real_path(self, sig)
    looked_up.add(path.name)
    return path
program_cache.CachedProgram._path = _path

specs = [ModelSpec(create_model_config("ladder/l1"), seed=i, budget=Budget("steps", 12)) for i in range(2)]
settings = RunSettings(batch_size=4, seq_len=16, eval_windows=4, progress=False, steps_per_dispatch=4,
                       batch_shards=4)
rows = train_group(specs, load_corpus(), settings, mode="stack").rows

# equivalent shardings of one argument, and ones that are not
x = np.zeros((4, 8), np.float32)
def sig(mesh_shape, spec):
    mesh = Mesh(np.array(jax.devices()).reshape(mesh_shape), ("models", "batch"))
    return program_cache.signature((jax.device_put(x, NamedSharding(mesh, spec)),))
same = [sig((1, 4), P("models")) == sig((1, 4), P()), sig((1, 4), P("models", None)) == sig((1, 4), P()),
        sig((1, 4), P(("models", "batch"))) == sig((1, 4), P("batch")), sig((4, 1), P("models")) == sig((4, 1), P("models", "batch"))]
apart = [sig((2, 2), P("models")) != sig((2, 2), P()), sig((1, 4), P("batch")) != sig((1, 4), P()),
         sig((2, 2), P("models")) != sig((2, 2), P("batch"))]
import jaxscale, os
print(json.dumps({"package": os.path.dirname(jaxscale.__file__), "stack": rows[0]["stack"], "keys": sorted(looked_up), "same": same, "apart": apart,
                  "rows": [[p["train_loss"] for p in r["curve"]] + [r["test_loss"]] for r in rows]}))
"""


def test_a_stack_on_one_model_shard_with_a_split_batch_is_keyed_once(tmp_path):
    """4 simulated devices, a stack of 2 on a 1 x 4 mesh (``--batch-shards 4``): its training
    program's outputs come back with the state's small leaves replicated (``P()``) where the
    inputs were split over the one-device model axis (``P('models')``), the same layout. The
    program is keyed, compiled and stored once; a second process loads it. (On a copy of the
    package: an edit saved in the checkout meanwhile would switch the cache off, rightly.)"""
    import shutil
    from pathlib import Path

    import jaxscale

    pkg = tmp_path / "pkg"
    shutil.copytree(Path(jaxscale.__file__).parent, pkg / "jaxscale", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=str(pkg))
    env.pop("JAXSCALE_PROGRAM_CACHE", None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(tmp_path / "programs")], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert (first["stack"]["devices"], first["stack"]["batch_shards"]) == (4, 4)
    train_keys = [k for k in first["keys"] if k.startswith("train_chunk-")]
    assert len(train_keys) == 1, f"the training program was keyed {len(train_keys)} times: {train_keys}"
    assert len(list((tmp_path / "programs").glob("train_chunk-*.pkl"))) == 1
    assert first["stack"]["program_cache"] == "compiled" and second["stack"]["program_cache"] == "disk"
    assert second["keys"] == first["keys"]
    assert second["rows"] == first["rows"]
    assert first["package"] == str(pkg / "jaxscale")
    assert all(first["same"]), first["same"]
    assert all(first["apart"]), first["apart"]


def test_a_path_in_the_environment_moves_the_program_cache(tmp_path, monkeypatch):
    """``JAXSCALE_PROGRAM_CACHE=PATH`` was silently ignored (only ``off`` was read), and the
    programs went under the compilation cache's folder; a path that cannot be made is refused."""
    from jaxscale import program_cache

    moved = tmp_path / "mine"
    monkeypatch.setenv("JAXSCALE_PROGRAM_CACHE", str(moved))
    assert program_cache.enable(tmp_path / "default") == moved and moved.is_dir()
    assert not (tmp_path / "default").exists()
    assert program_cache.enable(None) is None  # JAX's cache off: this one too
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("JAXSCALE_PROGRAM_CACHE", str(tmp_path / "file" / "sub"))
    with pytest.raises(ValueError, match=r"\$JAXSCALE_PROGRAM_CACHE .* cannot be made"):
        program_cache.enable(tmp_path / "default")
    monkeypatch.delenv("JAXSCALE_PROGRAM_CACHE")
    program_cache.enable(None)
