"""The eager-PyTorch baseline (benchmarks/torch_baseline.py): same models as jaxscale, and both
notebook workload paths run. Skipped where torch (the optional ``bench`` extra) is not installed."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxscale.config import family_configs  # noqa: E402

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_baseline.py"


@pytest.fixture(scope="module")
def tb():
    spec = importlib.util.spec_from_file_location("torch_baseline", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # One intra-op thread: on shared CI cores torch's spinning worker threads can make a step
    # 10-30x slower; these tests check correctness, not speed.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


EXPECTED = {
    "notebook-scaling": [50_676, 88_052, 167_092, 291_540, 473_684],
    "notebook-emergence": [24_164, 67_444, 147_940, 277_940, 469_732],
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_parameter_counts_match_jaxscale(tb, family):
    for cfg, expected in zip(family_configs(family), EXPECTED[family]):
        model = tb.build_model(cfg, seed=0)
        assert tb.count_parameters(model) == cfg.param_counts().total == expected


def test_logits_match_jaxscale_forward(tb):
    """With jaxscale's initial weights loaded, the torch model's logits equal jaxscale's (no dropout)."""
    import jax.numpy as jnp
    from jaxscale.model import forward, init_params

    cfg = family_configs("notebook-scaling")[2].replace(dropout=0.0)
    p = init_params(cfg, seed=3)
    model = tb.build_model(cfg, seed=0)
    d, L = cfg.d_model, cfg.n_layers
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    with torch.no_grad():
        model.tok_emb.weight.copy_(t(p["tok_emb"]))
        model.pos_emb.weight.copy_(t(p["pos_emb"]))
        for i, blk in enumerate(model.blocks):
            blk.ln1.weight.copy_(t(p["ln1_scale"][i])); blk.ln1.bias.copy_(t(p["ln1_bias"][i]))
            blk.qkv.weight.copy_(t(p["wqkv"][i].reshape(d, 3 * d).T))
            blk.qkv.bias.copy_(t(p["bqkv"][i].reshape(3 * d)))
            blk.proj.weight.copy_(t(p["wo"][i].reshape(d, d).T)); blk.proj.bias.copy_(t(p["bo"][i]))
            blk.ln2.weight.copy_(t(p["ln2_scale"][i])); blk.ln2.bias.copy_(t(p["ln2_bias"][i]))
            blk.fc1.weight.copy_(t(p["w1"][i].T)); blk.fc1.bias.copy_(t(p["b1"][i]))
            blk.fc2.weight.copy_(t(p["w2"][i].T)); blk.fc2.bias.copy_(t(p["b2"][i]))
        model.ln_f.weight.copy_(t(p["lnf_scale"])); model.ln_f.bias.copy_(t(p["lnf_bias"]))
        model.head.weight.copy_(t(p["head_w"].T)); model.head.bias.copy_(t(p["head_b"]))
    assert L == len(model.blocks)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 24))
    model.eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(tokens)).numpy()
    theirs = np.asarray(forward({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(tokens), cfg))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_init_statistics(tb):
    cfg = family_configs("notebook-scaling")[-1]
    model = tb.build_model(cfg, seed=0)
    resid = 0.02 / math.sqrt(2 * cfg.n_layers)
    assert abs(model.head.weight.std().item() - 0.02) < 2e-3
    assert abs(model.blocks[0].fc2.weight.std().item() - resid) < 1e-3
    assert model.blocks[0].qkv.bias.abs().max().item() == 0.0
    assert torch.all(model.ln_f.weight == 1.0)


@pytest.mark.parametrize("workload", ["notebook-scaling", "notebook-emergence"])
def test_short_workload_runs(tb, workload):
    res = tb.run_workload(workload, steps=3, test_sequences=10)
    assert res["workload"] == workload
    assert res["torch_version"] == torch.__version__ and res["threads"] >= 1
    assert math.isfinite(res["total_seconds"]) and res["total_seconds"] > 0
    assert [m["params"] for m in res["models"]] == EXPECTED[workload]
    for m in res["models"]:
        assert m["steps"] == 3
        assert math.isfinite(m["seconds"]) and math.isfinite(m["step_ms_median"])
        if workload == "notebook-scaling":
            assert math.isfinite(m["loss"]) and m["loss"] > 0
        else:
            assert 0.0 <= m["accuracy"] <= 1.0 and m["epochs"] == 1


def test_json_cli(tb, capsys):
    import json

    assert tb.main(["--workload", "notebook-scaling", "--steps", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["workload"] == "notebook-scaling" and len(res["models"]) == 5
    for field in ("torch_version", "threads", "total_seconds"):
        assert field in res
    for m in res["models"]:
        assert {"name", "params", "steps", "seconds", "step_ms_median", "loss"} <= set(m)


def test_steady_step(tb):
    res = tb.steady_step("notebook-emergence", iters=2, warmup=1)
    assert len(res["models"]) == 5 and all(m["steps"] == 2 for m in res["models"])
    assert math.isclose(res["sum_step_ms_median"], sum(m["step_ms_median"] for m in res["models"]))


def test_steady_step_of_any_configs_from_a_json_spec(tb, tmp_path, capsys):
    """What ``jaxscale bench --vs-torch`` runs for a family or an explicit config."""
    import dataclasses
    import json

    from jaxscale.config import ModelConfig

    cfgs = [ModelConfig(vocab_size=64, d_model=16, n_heads=1, n_layers=1, d_ff=32, max_seq_len=8, name="a"),
            ModelConfig(vocab_size=64, d_model=32, n_heads=2, n_layers=2, d_ff=64, max_seq_len=8, name="b")]
    spec = {"configs": [dataclasses.asdict(c) for c in cfgs], "batch_size": 2, "seq_len": 8,
            "optim": {"lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.95], "eps": 1e-8, "clip": 1.0}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert tb.main(["--steady-step-configs", str(path), "--iters", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in res["models"]] == ["a", "b"] and (res["batch_size"], res["seq_len"]) == (2, 8)
    assert [m["params"] for m in res["models"]] == [c.param_counts().total for c in cfgs]
    assert math.isclose(res["sum_step_ms_median"], sum(m["step_ms_median"] for m in res["models"]))
    with pytest.raises(ValueError, match="context"):
        tb.steady_step_configs(cfgs, batch_size=2, seq_len=9, iters=1, warmup=0)


def test_bench_vs_torch_on_an_explicit_config(capsys):
    """``jaxscale bench --vs-torch`` beyond the notebook presets: the eager step of the same model
    at the bench's batch, and a ratio per mode (no timing threshold)."""
    import json

    from jaxscale.cli import main

    rc = main(["bench", "--d-model", "16", "--n-heads", "1", "--n-layers", "1", "--seq-len", "8", "--batch-size", "2",
               "--k", "2", "--modes", "stack", "sequential", "--steps-per-dispatch", "2", "--repeats", "2",
               "--lanes", "2", "--vs-torch", "--json"])
    assert rc == 0
    vt = json.loads(capsys.readouterr().out)["vs_torch"]
    assert len(vt["torch_steady"]["models"]) == 1  # one config, K = 2 seeds: two eager steps summed
    assert math.isclose(vt["torch_steady"]["sum_step_ms_median"], 2 * vt["torch_steady"]["models"][0]["step_ms_median"])
    # the two seeds alone run on two lanes: timed one after another and at once
    assert set(vt["steady_ratio"]) == {"stack", "sequential", "sequential lanes"}
    assert all(r > 0 for r in vt["steady_ratio"].values())


@pytest.mark.parametrize("argv, flag", [(["--steps", "-3"], "--steps"), (["--steps", "0"], "--steps"),
                                        (["--seed", "-1"], "--seed")])
def test_nonsense_steps_and_seeds_are_refused(tb, argv, flag, capsys):
    """``--steps -3`` trained nothing and reported every model at loss nan, exit 0."""
    with pytest.raises(SystemExit) as info:
        tb.main(["--workload", "notebook-scaling", *argv])
    assert info.value.code == 2 and f"argument {flag}:" in capsys.readouterr().err
