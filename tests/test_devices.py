"""Several devices: 8 simulated CPU devices give the same rows as 1 (stack of 8, and of 3)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import jax
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig
k = int(sys.argv[1])
cfgs = [create_model_config("ladder/l1"), create_model_config("ladder/l2")]
specs = [ModelSpec(cfgs[i % 2], seed=i, optim=OptimConfig(lr=1e-3 * (1 + i % 3)), budget=Budget("steps", 20 + 2 * i))
         for i in range(k)]
settings = RunSettings(batch_size=4, seq_len=32, eval_windows=8, progress=False)
rows = train_group(specs, load_corpus(), settings, mode="stack").rows
print(json.dumps({"devices": jax.device_count(), "rows": [
    {"curve": [p["train_loss"] for p in r["curve"]], "test": r["test_loss"], "stack": r["stack"]} for r in rows]}))
"""


def _run(k: int, devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(k)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("k", [8, 3])
def test_eight_devices_match_one(k):
    one, eight = _run(k, 1), _run(k, 8)
    assert one["devices"] == 1 and eight["devices"] == 8
    assert eight["rows"][0]["stack"]["devices"] == 8
    assert eight["rows"][0]["stack"]["inert_models"] == (8 - k) % 8
    for a, b in zip(one["rows"], eight["rows"]):
        a_curve, b_curve = np.array(a["curve"]), np.array(b["curve"])
        assert a_curve.shape == b_curve.shape
        np.testing.assert_allclose(b_curve, a_curve, rtol=1e-5)
        assert b["test"] == pytest.approx(a["test"], rel=1e-5)


CACHED_SCRIPT = r"""
import json, sys
import jax
from jaxscale import program_cache
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig
program_cache.enable(sys.argv[1])
specs = [ModelSpec(create_model_config("ladder/l1"), seed=i, budget=Budget("steps", 12)) for i in range(3)]
rows = train_group(specs, load_corpus(), RunSettings(batch_size=2, seq_len=16, eval_windows=4, progress=False),
                   mode="stack").rows
print(json.dumps({"source": rows[0]["stack"]["program_cache"], "devices": rows[0]["stack"]["devices"],
                  "rows": [[p["train_loss"] for p in r["curve"]] + [r["test_loss"]] for r in rows]}))
"""


@pytest.mark.parametrize("prng", ["threefry2x32", "rbg"])
def test_program_cache_on_four_devices(tmp_path, prng):
    """On a 4-device host, the sharded stack's programs and the one-device ones are stored and
    loaded back onto the devices they were compiled for: a second run gives the same rows.
    (Loaded onto every device, a one-device program rejected its inputs.) With JAX's default PRNG
    the initial state is built on the host (no program); with another, by the one-device
    ``init_state`` program, which must round-trip too."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_DEFAULT_PRNG_IMPL=prng)
    env.pop("JAXSCALE_PROGRAM_CACHE", None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CACHED_SCRIPT, str(tmp_path)], env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [r["source"] for r in runs] == ["compiled", "disk"] and runs[0]["devices"] == 4
    assert runs[0]["rows"] == runs[1]["rows"]
    assert list(tmp_path.glob("train_chunk-*")) and list(tmp_path.glob("eval-*"))
    assert bool(list(tmp_path.glob("init_state-*"))) == (prng != "threefry2x32")


# ----- the batch axis (data parallelism) -------------------------------------------------------------

def test_mesh_shape_puts_a_stack_on_the_model_axis_and_splits_a_lone_models_batch():
    from jaxscale.devices import mesh_shape

    assert mesh_shape(5, 16, 8, stacked=True) == (8, 1)      # as before the batch axis: inert models pad
    assert mesh_shape(3, 16, 8, stacked=True, batch_shards=2) == (4, 2)
    assert mesh_shape(1, 16, 8, stacked=False) == (1, 8)     # a model alone uses every device
    assert mesh_shape(1, 12, 8, stacked=False) == (1, 4)     # ... that divides its batch
    assert mesh_shape(1, 1, 8, stacked=False) == (1, 1)
    assert mesh_shape(1, 16, 8, stacked=False, batch_shards=2) == (1, 2)
    assert mesh_shape(4, 16, 1, stacked=True) == (1, 1)
    # several processes: a model alone splits its batch over every device or none
    assert mesh_shape(1, 16, 8, stacked=False, processes=2) == (1, 8)
    assert mesh_shape(1, 12, 8, stacked=False, processes=2) == (1, 1)
    assert mesh_shape(3, 12, 8, stacked=True, processes=2) == (8, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(k=3, batch_size=16, n_devices=8, stacked=True, batch_shards=3), "does not divide the batch of 16"),
    (dict(k=3, batch_size=12, n_devices=8, stacked=True, batch_shards=3), "does not divide the 8 devices"),
    (dict(k=1, batch_size=16, n_devices=1, stacked=False, batch_shards=2), "exceeds the 1 device"),
    (dict(k=1, batch_size=16, n_devices=8, stacked=False, batch_shards=0), "positive int"),
    (dict(k=2, batch_size=16, n_devices=8, stacked=False), "trains one model"),
    (dict(k=1, batch_size=0, n_devices=8, stacked=False), "`batch_size` must be a positive int"),
    (dict(k=1, batch_size=16, n_devices=8, stacked=False, batch_shards=4, processes=2), "all 8 devices or none"),
])
def test_mesh_shape_refuses_what_the_devices_or_batch_cannot_hold(kwargs, message):
    from jaxscale.devices import mesh_shape

    with pytest.raises(ValueError, match=message):
        mesh_shape(**kwargs)


def test_batch_shards_beyond_the_devices_is_refused_before_anything_is_written(tmp_path, capsys):
    import jax

    from jaxscale.cli import main

    beyond = str(2 * jax.device_count())  # divides the batch of 16 on 1, 2, 4 or 8 devices
    for command in (["sweep", "--family", "ladder", "--sizes", "l1"], ["train"]):
        out = tmp_path / command[0]
        assert main([*command, "--steps", "3", "--batch-shards", beyond, "--out", str(out), "--quiet"]) == 2
        assert not out.exists()
        assert "--batch-shards" in capsys.readouterr().err


BATCH_SCRIPT = r"""
import dataclasses, json, sys
import jax
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.group_setup import prepare_group
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig
mode, shards = sys.argv[1], None if sys.argv[2] == "auto" else int(sys.argv[2])
l1, l2 = create_model_config("ladder/l1", dropout=0.1), create_model_config("ladder/l2", dropout=0.1)
if mode == "alone":
    specs = [ModelSpec(l1, seed=3, optim=OptimConfig(lr=2e-3), budget=Budget("steps", 50))]
else:
    specs = [ModelSpec([l1, l2][i % 2], seed=i, optim=OptimConfig(lr=1e-3 * (1 + i)), budget=Budget("steps", 50 + 2 * i))
             for i in range(3)]
settings = RunSettings(batch_size=8, seq_len=32, eval_windows=8, progress=False, batch_shards=shards)
rows = train_group(specs, load_corpus(), settings, mode=mode).rows
g = prepare_group(specs, load_corpus(), settings, mode=mode)
hlo = g.chunk_fn.jitted.lower(g.state, g.hyper, g.dims, g.arrays, g.key, 0, 1).compile().as_text()
print(json.dumps({"devices": jax.device_count(), "all_reduce": "all-reduce" in hlo, "rows": [
    {"curve": [p["train_loss"] for p in r["curve"]], "test": r["test_loss"], "stack": r["stack"]} for r in rows]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode, shards, mesh", [("alone", "auto", (8, 8, 0)), ("stack", "2", (8, 2, 1))])
def test_a_batch_split_over_devices_matches_one_device(mode, shards, mesh):
    """Data parallelism: a model alone (dropout on) with its batch of 8 split over all 8 devices,
    and a stack of 3 on a 4 x 2 mesh (one inert model), give the one-device losses to rounding."""
    runs = []
    for devices in (1, 8):
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        done = subprocess.run([sys.executable, "-c", BATCH_SCRIPT, mode, shards if devices > 1 else "auto"],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    one, eight = runs
    s = eight["rows"][0]["stack"]
    assert (s["devices"], s["batch_shards"], s["inert_models"]) == mesh
    assert one["rows"][0]["stack"]["batch_shards"] == 1
    # the batch is really split: the step sums its shards' gradients across devices
    assert eight["all_reduce"] and not one["all_reduce"]
    for a, b in zip(one["rows"], eight["rows"]):
        assert len(a["curve"]) == len(b["curve"]) >= 50
        np.testing.assert_allclose(b["curve"], a["curve"], rtol=1e-5)
        assert b["test"] == pytest.approx(a["test"], rel=1e-5)


def test_a_stack_mesh_refusal_names_the_flag_and_leaves_no_folder(tmp_path):
    """--batch-shards 3 on 4 devices: a model alone may run on 3 of them, a stack cannot; the
    plan's refusal came after --out was made (left empty) and without the flag's name."""
    out = tmp_path / "bad"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAXSCALE_COMPILATION_CACHE="off")
    done = subprocess.run([sys.executable, "-m", "jaxscale.cli", "sweep", "--family", "ladder", "--sizes", "l1",
                           "--seeds", "0", "1", "2", "--steps", "5", "--mode", "stack", "--seq-len", "32",
                           "--eval-windows", "8", "--quiet", "--batch-size", "12", "--batch-shards", "3",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--batch-shards" in done.stderr and "does not divide the 4 devices" in done.stderr, done.stderr[-2000:]
    assert not out.exists()


RESUME_SCRIPT = """
import json, sys
import numpy as np
from jaxscale.checkpoint import GroupCheckpoint
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.data.source import from_corpus
from jaxscale.runner import Interrupted, ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig

folder, stop_after = sys.argv[1], int(sys.argv[2])
cfgs = [create_model_config("ladder/l1"), create_model_config("ladder/l2")]
specs = [ModelSpec(cfgs[i % 2], seed=i, optim=OptimConfig(lr=1e-3 * (1 + i)), budget=Budget("steps", 30 + 2 * i))
         for i in range(3)]
data = from_corpus(load_corpus(), seq_len=32, batch_size=8, eval_max_windows=8)
settings = RunSettings(batch_size=8, seq_len=32, eval_windows=8, progress=False, steps_per_dispatch=10)
calls = []
stop = (lambda: calls.append(1) or len(calls) >= stop_after) if stop_after else None
try:
    res = train_group(specs, data, settings, mode="stack", stack_id="g",
                      checkpoint=GroupCheckpoint(folder) if folder != "-" else None, should_stop=stop)
except Interrupted as e:
    print(json.dumps({"interrupted": e.step}))
    sys.exit(0)
print(json.dumps({"rows": [{"curve": [p["train_loss"] for p in r["curve"]], "test": r["test_loss"],
                            "inert": r["stack"]["inert_models"], "segments": r["stack"]["segments"]}
                           for r in res.rows]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("first,then", [(4, 1), (1, 4)])
def test_a_stack_checkpointed_on_one_device_count_resumes_on_another(tmp_path, first, then):
    """Three models: on 4 devices the stack is padded with an inert fourth, on 1 it is not. The
    snapshot held the padded stack, so the resume on the other count failed ("array 0 has shape
    (4, 1, 64), expected (3, 1, 64)"); it now holds the three and the resume matches a run that
    was never interrupted."""
    def run(devices, folder, stop_after):
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        done = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, folder, str(stop_after)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    whole = run(1, "-", 0)["rows"]
    folder = str(tmp_path / "ck")
    stopped = run(first, folder, 2)["interrupted"]
    assert 0 < stopped < 30  # stopped mid-run, a snapshot saved
    resumed = run(then, folder, 0)["rows"]
    assert [r["inert"] for r in resumed] == [1 if then == 4 else 0] * 3
    # the row records where each part ran (it recorded only the last mesh)
    assert resumed[0]["segments"] == [{"from_step": 0, "devices": first, "batch_shards": 1},
                                      {"from_step": stopped, "devices": then, "batch_shards": 1}]
    assert whole[0]["segments"] == [{"from_step": 0, "devices": 1, "batch_shards": 1}]
    for a, b in zip(resumed, whole):
        np.testing.assert_allclose(np.array(a["curve"], float), np.array(b["curve"], float), rtol=1e-5)
        np.testing.assert_allclose(a["test"], b["test"], rtol=1e-5)
