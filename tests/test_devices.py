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
