"""The prepared accelerator run (benchmarks/device_check.py): its bench arguments are valid here
(a typo must not cost a GPU lease), and its verdicts read the bench JSON correctly."""

import importlib.util
import json
from pathlib import Path

import pytest

from jaxscale.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
_PATH = ROOT / "benchmarks" / "device_check.py"


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_check_parses_and_builds_the_intended_workload(dc):
    from jaxscale.commands.bench import build

    expected_models = {"cudnn_vmap_test": None, "stack_emergence_cmdbuf": 5, "stack_emergence_unroll": 5,
                       "stack_emergence_unroll_cmdbuf": 5, "stack_scaling_unroll_cmdbuf": 5,
                       "mfu_w1024_cudnn_remat_dots_unroll": 1, "mfu_w1024_cudnn_remat_dots_cublas": 1,
                       "mfu_w1024_cudnn_remat_dots_spd1": 1, "mfu_w1024_cudnn": 1, "stack_emergence": 5,
                       "mfu_w1024_cudnn_remat_dots": 1, "stack_scaling_autotune0": 5, "mfu_w1024_explicit_attention": 1, "stack_emergence_k8": 8,
                       "stack_scaling": 5}
    assert [c[0] for c in dc.CHECKS] == list(expected_models)
    assert all((ROOT / path).is_file() for path in dc.PYTEST_CHECKS.values())
    # the unmeasured checks fit one 10-minute device command, with start-up to spare
    assert sum(c[1] for c in dc.CHECKS[:4]) <= 570 and all(c[1] <= 200 for c in dc.CHECKS)
    for name, _, full, dry in dc.CHECKS:
        if name in dc.PYTEST_CHECKS:
            continue
        for argv in (full, dry):
            args = build_parser().parse_args(["bench", *argv, "--json"])
            specs, data, optim, budget, workload = build(args)
            if argv is full:
                assert len(specs) == expected_models[name], name
    args = build_parser().parse_args(["bench", *dict((c[0], c[2]) for c in dc.CHECKS)["mfu_w1024_cudnn"]])
    (spec,), *_ = build(args)
    assert (spec.cfg.d_model, spec.cfg.head_dim, spec.cfg.dtype, spec.cfg.dropout) == (1024, 64, "bfloat16", 0.0)


def test_mfu_verdict(dc):
    res = {"device": {"kind": "NVIDIA H200"}, "dtype": "bfloat16", "peak_source": "table",
           "models": [{"attention": "cudnn"}], "modes": {"sequential": {"mfu": 0.45, "tokens_per_s": 1e6}}}
    v = dc.verdict("mfu_w1024_cudnn", res)
    assert v["met"] and v["measured"] == 0.45 and v["target"] == 0.40 and v["device"] == "NVIDIA H200"
    assert "cudnn attention" in v["what"]
    res["modes"]["sequential"]["mfu"] = 0.39
    assert not dc.verdict("mfu_w1024_cudnn", res)["met"]
    assert dc.CHECK_ENV["mfu_w1024_explicit_attention"] == {"JAXSCALE_ATTENTION": "explicit"}
    assert dc.CHECK_ENV["mfu_w1024_cudnn"] == {"JAXSCALE_ATTENTION": "cudnn"}


def test_pytest_check_verdicts(dc):
    ok = dc.pytest_verdict("cudnn_vmap_test", 0, "2 passed in 3.1s", "cmd", 3.1)
    assert ok["met"] and not ok.get("skipped")
    skipped = dc.pytest_verdict("cudnn_vmap_test", 0, "2 skipped in 0.5s", "cmd", 0.5)
    assert not skipped["met"] and skipped["skipped"]
    failed = dc.pytest_verdict("cudnn_vmap_test", 1, "1 failed, 1 passed in 4s", "cmd", 4.0)
    assert not failed["met"] and not failed.get("skipped")
    assert "FAILED" in dc.format_summary([failed]) and "skipped" in dc.format_summary([skipped])


def test_stack_verdict_on_a_real_bench_result(dc, capsys):
    rc = main(["bench", "--d-model", "16", "--n-heads", "1", "--n-layers", "1", "--seq-len", "8", "--batch-size", "2",
               "--k", "2", "--modes", "stack", "sequential", "--steps-per-dispatch", "2", "--repeats", "2", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    v = dc.verdict("stack_emergence_k8", res)
    assert v["measured"] == pytest.approx(res["ratios"]["stack_vs_sequential"])
    assert v["target"] == pytest.approx(1.6)  # 0.8 x K, K = 2
    assert v["met"] == (v["measured"] >= 1.6)
    del res["ratios"]["stack_vs_sequential"]
    with pytest.raises(ValueError, match="stack_emergence_k8.*stack_vs_sequential"):
        dc.verdict("stack_emergence_k8", res)


def test_summary_reports_errors_and_verdicts(dc):
    rows = [{"check": "mfu_w1024_cudnn", "measured": 0.41, "target": 0.4, "met": True, "device": "gpu", "what": "w",
             "wall_s": 3.0},
            {"check": "stack_scaling", "error": "timed out after 150 s"}]
    text = dc.format_summary(rows)
    assert "41.0%" in text and "met" in text and "ERROR timed out" in text


def test_budget_skips_what_no_longer_fits(dc, tmp_path, capsys):
    """With no time left every check is reported as skipped (not an error), and summary.json says so."""
    import json

    assert dc.main(["--dry-run", "--budget", "0", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "summary.json").read_text())["checks"]
    assert [r["check"] for r in rows] == [c[0] for c in dc.CHECKS]
    assert all(r["error"].startswith("skipped") for r in rows)
