"""The throughput benchmark: FLOP formula against hand counts, MFU arithmetic, the peak table, the
``jaxscale bench --json`` fields on a tiny CPU config, and the throughput experiment's smoke run.
No timing thresholds: these check the arithmetic and the outputs, never the speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jaxscale import bench, bench_torch
from jaxscale.cli import main
from jaxscale.config import ModelConfig, create_model_config

ROOT = Path(__file__).resolve().parents[1]


def test_flop_formula_hand_count_notebook_scaling_nano():
    # d=32, H=2, L=2, d_ff=64, V=500, T=32 (context), causal.
    cfg = create_model_config("notebook-scaling/nano")
    d, f, L, V, T = 32, 64, 2, 500, 32
    # one block: LNs 128; QKV 3,072 + 96; out 1,024 + 32; MLP 2,048 + 64 + 2,048 + 32 = 8,544
    block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
    assert block == 8_544 == cfg.block_params()
    n_non_emb = L * block + 2 * d
    assert n_non_emb == 17_152
    expected = 6 * n_non_emb + 6 * d * V + (12 * L * T * d) // 2
    assert expected == 102_912 + 96_000 + 12_288 == 211_200
    got = cfg.flops_per_token(seq_len=T)
    assert (got.non_embedding, got.head, got.attention, got.total) == (102_912, 96_000, 12_288, expected)
    assert bench.flops_per_step(cfg, 4, T) == expected * 4 * T


def test_flop_formula_hand_count_wide_config_at_shorter_sequence():
    # The realistic CPU config of the issue: d=256, 4 heads, 4 layers, d_ff=1024, V=256, trained at T=128.
    cfg = ModelConfig(vocab_size=256, d_model=256, n_heads=4, n_layers=4, d_ff=1024, max_seq_len=256)
    # one block: LNs 1,024; QKV 196,608 + 768; out 65,536 + 256; MLP 262,144 + 1,024 + 262,144 + 256
    assert cfg.block_params() == 789_760
    n_non_emb = 4 * 789_760 + 512
    got = cfg.flops_per_token(seq_len=128)
    assert got.non_embedding == 6 * n_non_emb == 18_957_312
    assert got.head == 6 * 256 * 256 == 393_216
    assert got.attention == 12 * 4 * 128 * 256 // 2 == 786_432
    assert got.total == 20_136_960
    assert cfg.flops_per_token(causal=False, seq_len=128).attention == 2 * got.attention


def test_mfu_arithmetic_on_a_fake_timing():
    cfg = create_model_config("notebook-scaling/nano")
    b, t = 4, 24
    per_step = bench.flops_per_step(cfg, b, t)
    # two models, one stack step of 10 ms, a 1 TFLOP/s device, 2 devices
    out = bench.throughput([cfg, cfg], 0.010, b, t, peak_flops=1e12, devices=2)
    assert out["tokens_per_s"] == pytest.approx(2 * b * t / 0.010)
    assert out["model_flops_per_s"] == pytest.approx(2 * per_step / 0.010)
    assert out["mfu"] == pytest.approx(2 * per_step / 0.010 / (1e12 * 2))
    assert bench.mfu(5e11, 1e12) == 0.5
    with pytest.raises(ValueError):
        bench.mfu(1.0, 0.0)
    with pytest.raises(ValueError):
        bench.throughput([cfg], 0.0, b, t, 1e12)


def test_mode_result_sums_true_flops_and_reports_padding():
    """The stack's MFU counts each model's true size; its padded utilisation is separate."""
    small, big = create_model_config("notebook-scaling/nano"), create_model_config("notebook-scaling/micro")
    specs = [bench.BenchSpec(small, 0), bench.BenchSpec(big, 0)]
    g = bench.GroupTiming([small.name, big.name], [0, 0], "stack", 2, "envelope", 10, 1.5, 1.4, 1, 0,
                          [0.02, 0.02, 0.03], padded_flops_util=0.8)
    m = bench._mode_result("stack", [((0, 1), g)], specs, 4, 24, 1e12, 1, 100)
    true = bench.flops_per_step(small, 4, 24) + bench.flops_per_step(big, 4, 24)
    assert m["step_s"] == 0.02
    assert m["model_flops_per_s"] == pytest.approx(true / 0.02)
    assert m["mfu"] == pytest.approx(true / 0.02 / 1e12)
    assert m["groups"][0]["padded_flops_per_s"] == pytest.approx(2 * bench.flops_per_step(big, 4, 24) / 0.02)
    assert m["groups"][0]["padded_flops_util"] == 0.8
    assert [p["tokens_per_s"] for p in m["per_model"]] == [pytest.approx(96 / 0.02)] * 2
    assert m["estimated_end_to_end_s"] == pytest.approx(1.4 + 100 * 0.02)
    r = bench._ratios({"stack": {"tokens_per_s": 8.0}, "sequential": {"tokens_per_s": 5.0}}, 2)
    assert r["stack_vs_sequential"] == 1.6 and r["stack_target"]["met"]


def test_step_iqr_lies_within_the_samples():
    # statistics.quantiles' default method extrapolated: with 2 repeats, an IQR of 1.5x the range
    g = bench.GroupTiming(["m"], [0], "alone", 1, "m", 10, 1.0, 0.9, 1, 0, [0.0020, 0.0024], padded_flops_util=1.0)
    ms = g.summary()["step_ms"]
    assert ms["iqr"] <= ms["max"] - ms["min"] + 1e-12
    assert g.summary()["step_ms"]["iqr"] == pytest.approx(0.2)  # 2.1 to 2.3 ms, the inclusive quartiles


def test_eager_steady_ratio_only_for_the_presets_own_workload():
    """The eager steady step times the preset's five sizes at its batch: a bench of five micro
    seeds, or at another batch, must not get a ratio against it."""
    from jaxscale.config import family_configs

    def result(cfgs, batch=1, seq_len=4):
        return {"models": [{"name": c.name, "config": c.to_dict()} for c in cfgs], "batch_size": batch,
                "seq_len": seq_len}

    own = family_configs("notebook-emergence")
    assert bench_torch.preset_mismatch("notebook-emergence", result(own)) is None
    assert "not the preset's own" in bench_torch.preset_mismatch("notebook-emergence", result([own[0]] * 5))
    no_dropout = [ModelConfig(**{**c.to_dict(), "dropout": 0.0}) for c in own]
    assert "not the preset's own" in bench_torch.preset_mismatch("notebook-emergence", result(no_dropout))
    assert "batch 32 x 4 tokens" in bench_torch.preset_mismatch("notebook-emergence", result(own, batch=32))


def test_peak_table_by_device_kind():
    assert bench.table_peak("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989e12
    assert bench.table_peak("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12
    assert bench.table_peak("NVIDIA H200", "bfloat16")[0] == 989e12
    assert bench.table_peak("NVIDIA A100-SXM4-40GB", "float32")[0] == 19.5e12
    assert bench.table_peak("TPU v4", "bfloat16")[0] == 275e12
    assert bench.table_peak("TPU v5 lite", "bfloat16")[0] == 197e12
    assert bench.table_peak("TPU v5p", "bfloat16")[0] == 459e12
    assert bench.table_peak("TPU v6 lite", "bfloat16")[0] == 918e12
    peak, source = bench.table_peak("TPU v4", "float32")
    assert peak == 275e12 and "no float32" in source
    assert bench.table_peak("cpu", "float32") is None


def test_bench_json_has_the_documented_fields(capsys):
    rc = main(["bench", "--d-model", "16", "--n-heads", "1", "--n-layers", "1", "--seq-len", "8", "--batch-size", "2",
               "--k", "2", "--modes", "stack", "sequential", "--steps-per-dispatch", "2", "--repeats", "2", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("device", "devices", "peak_flops", "peak_source", "flop_formula", "modes", "ratios", "recompiles",
                "models", "batch_size", "seq_len"):
        assert key in res, key
    assert res["device"]["platform"] == "cpu" and res["peak_source"].startswith("measured")
    assert res["recompiles"] == 0
    assert set(res["modes"]) == {"stack", "sequential"}
    for mode in res["modes"].values():
        assert mode["tokens_per_s"] > 0 and 0 < mode["mfu"] < 1.5
        assert len(mode["per_model"]) == 2
        for p in mode["per_model"]:
            assert p["tokens_per_s"] > 0 and p["mfu"] > 0
        for g in mode["groups"]:
            assert {"tokens_per_s", "mfu", "padded_flops_util", "compile_s", "step_ms",
                    "recompiles_after_first"} <= set(g)
            assert g["step_ms"]["repeats"] == 2
    assert res["modes"]["stack"]["groups"][0]["k"] == 2
    assert "stack_vs_sequential" in res["ratios"]
    # how each model's step was built: the attention, the remat policy and the layer unroll
    assert all(m["attention"] == "explicit" and m["remat"] in ("none", "dots") and m["layer_unroll"] == 1
               for m in res["models"])


def test_bench_bad_input_is_a_clean_error(capsys):
    assert main(["bench", "--family", "ladder", "--sizes", "nope"]) == 2
    assert "--sizes: unknown sizes ['nope']" in capsys.readouterr().err
    # the same model (two rows of one name) or mode timed twice, as a repeated --sizes is refused
    assert main(["bench", "--d-model", "16", "16", "--seq-len", "16"]) == 2
    assert "--d-model: given more than once: [16]" in capsys.readouterr().err
    assert main(["bench", "--family", "ladder", "--sizes", "l1", "--modes", "sequential", "sequential"]) == 2
    assert "--modes: given more than once: ['sequential']" in capsys.readouterr().err
    assert main(["bench", "--preset", "notebook-emergence", "--sizes", "micro", "micro"]) == 2
    assert "--sizes: given more than once: ['micro'] (--k N benches N seeds" in capsys.readouterr().err
    assert main(["bench"]) == 2


def test_vs_torch_without_torch_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ValueError, match=r"pip install -e '\.\[bench\]'"):
        bench_torch.check_torch()


def test_throughput_experiment_smoke_writes_its_files(tmp_path):
    out = tmp_path / "tp"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "throughput.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("report.md", "throughput.json", "tokens_per_s_vs_k.png", "mfu_vs_size.png"):
        assert (out / name).stat().st_size > 0, name
    res = json.loads((out / "throughput.json").read_text())
    assert res["stack"]["points"] and res["mfu"]["points"] and res["recompiles"] == 0


def test_vs_torch_of_configs_refuses_bfloat16_models():
    """The eager baseline is float32 on the CPU: a bfloat16 bench is not compared with it."""
    from jaxscale.train import OptimConfig

    cfg = ModelConfig(vocab_size=64, d_model=16, n_heads=1, n_layers=1, d_ff=32, max_seq_len=8, dtype="bfloat16")
    with pytest.raises(ValueError, match="float32"):
        bench_torch.vs_torch_configs([cfg], {"batch_size": 2, "seq_len": 8, "modes": {}}, OptimConfig())


def test_end_to_end_rounds_are_interleaved_and_reported_as_medians(monkeypatch):
    """``--e2e-repeats``: each round runs the eager baseline, then every mode cold and warm; the
    walls reported are the medians of the rounds and the ratios are of medians (fake timings:
    no torch, no subprocess)."""
    calls = []
    torch_walls = iter([90.0, 70.0, 80.0])
    jax_walls = iter([20.0, 8.0, 18.0, 17.0, 10.0, 30.0, 9.0, 22.0, 19.0, 11.0, 25.0, 7.0, 20.0, 16.0, 9.0])

    def fake_torch(name):
        calls.append("torch")
        return {"wall_s": next(torch_walls), "total_seconds": 1.0, "threads": 2, "load_avg_1m": 0.5}

    def fake_sweep(name, mode, cache, lanes, plan_for="auto"):
        calls.append((mode if cache else f"{mode} uncached") + ("" if plan_for == "auto" else f" {plan_for}"))
        return {"mode": mode, "wall_s": next(jax_walls), "compile_s_in_rows": 0.0, "models": 5}

    monkeypatch.setattr(bench_torch, "check_torch", lambda: Path("baseline.py"))
    monkeypatch.setattr(bench_torch, "torch_steady_step", lambda name: {"models": [], "sum_step_ms_median": 1.0})
    monkeypatch.setattr(bench_torch, "torch_workload", fake_torch)
    monkeypatch.delenv("LD_PRELOAD", raising=False)  # the baseline's allocator: the C library's
    monkeypatch.setattr(bench_torch, "jaxscale_sweep_e2e", fake_sweep)
    out = bench_torch.vs_torch("notebook-emergence", None, end_to_end=True, modes=["auto"], e2e_repeats=3)
    assert calls == ["torch", "auto", "auto", "auto uncached", "auto once", "auto once"] * 3
    e = out["end_to_end"]["auto"]
    assert out["torch_end_to_end"]["wall_s"] == 80.0 and out["torch_end_to_end"]["runs"] == [90.0, 70.0, 80.0]
    assert e["cold"]["wall_s"] == 25.0 and e["cold"]["runs"] == [20.0, 30.0, 25.0]
    assert e["warm"]["wall_s"] == 8.0 and e["ratio_cold"] == pytest.approx(80 / 25) and e["ratio_warm"] == 10.0
    assert e["uncached"]["wall_s"] == 20.0 and e["uncached"]["runs"] == [18.0, 22.0, 20.0]
    assert e["ratio_uncached"] == 4.0
    assert e["once"]["runs"] == [17.0, 19.0, 16.0] and e["ratio_once"] == pytest.approx(80 / 17)
    assert e["once_warm"]["wall_s"] == 10.0 and e["ratio_once_warm"] == 8.0
    with pytest.raises(ValueError, match="e2e_repeats"):
        bench_torch.vs_torch("notebook-emergence", None, end_to_end=True, modes=["auto"], e2e_repeats=0)
    report = "\n".join(bench.vs_torch_lines({**out, "torch_steady": {
        "models": [], "sum_step_ms_median": 1.0, "torch_version": "x", "threads": 2, "load_avg_1m": 0.5}}))
    assert "torch 80.0s wall [70.0-90.0]" in report and "cold   25.0s [20.0-30.0] (torch/jax 3.20x)" in report
    assert "load 0.50, the C library's allocator)" in report, report
    assert "cache off   20.0s [18.0-22.0] (torch/jax 4.00x; every run compiles, planned for one run)" in report, report
    assert ("--plan-for once: cold   17.0s [16.0-19.0] (torch/jax 4.71x), warm   10.0s [9.0-11.0] (torch/jax 8.00x; "
            "the cache on, planned for one run)") in report, report


def test_the_eager_baseline_runs_on_the_c_librarys_allocator(monkeypatch):
    # as a user runs the notebook: not on the allocator jaxscale preloads for itself (host.py),
    # but on one the user preloads for everything
    from jaxscale.host import PRELOADED_ENV

    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    monkeypatch.setenv(PRELOADED_ENV, "/usr/lib/libjemalloc.so.2")
    assert bench_torch.torch_allocator() == "the C library's allocator"
    monkeypatch.delenv(PRELOADED_ENV)
    assert bench_torch.torch_allocator() == "LD_PRELOAD=/usr/lib/libjemalloc.so.2"


def test_the_bench_plans_for_the_one_device_it_times_on(monkeypatch):
    """On a host of several devices the bench still times every group on one device, so its
    ``auto`` plan must be the plan for one device: planned for all of them, a stack looked split
    over the devices (the five emergence sizes became one stack on 4 devices, against models
    alone on shared programs for one) and the bench timed that plan on a single device."""
    import jax

    from jaxscale import device_profile
    from jaxscale.device_profile import calibrate
    from jaxscale.presets import make_preset

    preset = make_preset("notebook-emergence")
    specs = [bench.BenchSpec(s.cfg, 0) for s in preset.specs]
    b, t = preset.data.batch_size, preset.data.seq_len
    one = bench._plan_groups(specs, "auto", 1000, b, t, calibrate(measure=False))
    real = jax.devices()
    monkeypatch.setattr(jax, "devices", lambda *a: real * 4)  # a host of four devices
    # the bench's measured FLOP rate, pinned to the table's so that the plans compare
    monkeypatch.setattr(device_profile, "measure_matmul_peak", lambda *a, **k: 1e11)
    assert calibrate(measure=False).devices == 4
    four = bench._plan_groups(specs, "auto", 1000, b, t, calibrate(measure=False))
    assert [ix for ix, *_ in four] != [ix for ix, *_ in one], "premise: the plans for 1 and 4 devices differ"

    class Timed(Exception):
        pass

    def fake_time_plans(units, *args, **kwargs):
        fake_time_plans.units = [(tuple(c.name for c in u[0]), u[2]) for u in units]
        raise Timed

    monkeypatch.setattr(bench, "time_plans", fake_time_plans)
    with pytest.raises(Timed):
        bench.run_bench(specs, preset.data, modes=("auto",), peak=bench.device_peak("float32", measure=False),
                        budget_steps=1000)
    planned = [(tuple(specs[i].cfg.name for i in ix), stacked) for ix, stacked, _, _ in one]
    assert sorted(fake_time_plans.units) == sorted(planned)


@pytest.mark.parametrize("devices", [0, -1, 10**6, 1.5])
def test_calibrate_refuses_a_device_count_the_host_lacks(devices):
    from jaxscale.device_profile import calibrate

    with pytest.raises(ValueError, match="devices must be a whole number"):
        calibrate(measure=False, devices=devices)


def test_the_bench_times_each_program_with_the_sweeps_compile_choice(monkeypatch, tmp_path):
    """A sweep of the notebook's scaling workload (40 steps) compiles its programs the fast way
    (``compile_mode``), whose steps are slower; the bench timed XLA's full compile, so its
    steady-step figures described programs the sweep never runs (found by a reviewer). Each timed
    program now gets the sweep's choice; a long budget still gets the full compile."""
    from jaxscale.cli import main
    from jaxscale.presets import make_preset
    from jaxscale.results import read_rows

    preset = make_preset("notebook-scaling")
    specs = [bench.BenchSpec(s.cfg, 0) for s in preset.specs]

    class Timed(Exception):
        pass

    def fake_time_plans(units, *args, fast=(), **kwargs):
        fake_time_plans.fast = list(fast)
        raise Timed

    monkeypatch.setattr(bench, "time_plans", fake_time_plans)
    chosen = {}
    for steps in (40, 10**6):
        with pytest.raises(Timed):
            bench.run_bench(specs, preset.data, modes=("sequential",),
                            peak=bench.device_peak("float32", measure=False), budget_steps=steps)
        chosen[steps] = fake_time_plans.fast
    assert chosen[10**6] == [False] * 5
    # what the sweep itself compiles, models alone (the same five programs)
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setenv("JAXSCALE_PROGRAM_CACHE", "off")
    assert main(["sweep", "--preset", "notebook-scaling", "--mode", "sequential", "--no-save-weights",
                 "--quiet", "--out", str(tmp_path / "s")]) == 0
    swept = {r["name"]: r["stack"]["fast_compile"] for r in read_rows(tmp_path / "s" / "results.jsonl")}
    assert chosen[40] == [swept[s.cfg.name] for s in specs] and any(chosen[40])
