"""`jaxscale emergence`: the analyze mode on CSV tables, and the not-yet-built train mode."""

import json

import pytest

from jaxscale.cli import main

TABLE = """name,params,MMLU,GSM8K
a,135e6,0.25,0.10
b,360e6,0.32,0.18
c,1.7e9,0.42,0.35
d,3.8e9,0.55,
e,7e9,0.68,0.75
"""


def write(tmp_path, text, name="scores.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_analyze_prints_crossing_and_fits(tmp_path, capsys):
    assert main(["emergence", "analyze", write(tmp_path, TABLE), "--n-boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "MMLU: crossing at params = 2.79e+09" in out
    assert "logistic" in out and "gompertz" in out and "GSM8K" in out


def test_analyze_json_and_plots(tmp_path, capsys):
    figs = tmp_path / "figs"
    rc = main(["emergence", "analyze", write(tmp_path, TABLE), "--threshold", "0.3", "--json",
               "--n-items", "500", "--n-boot", "200", "--plot", str(figs)])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["threshold"] == 0.3
    names = [b["name"] for b in data["benchmarks"]]
    assert names == ["MMLU", "GSM8K"]
    gsm = data["benchmarks"][1]
    assert len(gsm["scales"]) == 4                       # the empty cell is "not reported"
    assert gsm["crossing_ci"][0] < gsm["crossing"] < gsm["crossing_ci"][1]
    assert sorted(p.name for p in figs.iterdir()) == ["emergence_GSM8K.png",
                                                      "emergence_MMLU.png"]
    assert len(data["figures"]) == 2


@pytest.mark.parametrize("text,column", [
    ("params,MMLU\n1e9,0.2\n1e8,0.3\n1e10,0.6\n", "params"),        # sizes not increasing
    ("params,MMLU,GSM8K\n1e8,0.2,0.1\n1e9,0.3,55\n1e10,0.6,0.9\n", "GSM8K"),  # outside [0, 1]
    ("size,MMLU\n1e8,0.2\n1e9,0.3\n", "params"),                       # missing column
    ("params,MMLU\n1e8,0.2\n1e9,abc\n", "MMLU"),                       # not a number
    ("params\n1e8\n1e9\n", "benchmark"),                               # no benchmark columns
])
def test_bad_tables_exit_2_naming_the_column(tmp_path, capsys, text, column):
    assert main(["emergence", "analyze", write(tmp_path, text), "--n-boot", "0"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and column in err


@pytest.mark.parametrize("args,match", [
    (["--chance", "1.5"], "--chance must lie in [0, 1)"),
    (["--threshold", "2"], "--threshold must lie in (0, 1)"),
])
def test_bad_options_exit_2_naming_the_option(tmp_path, capsys, args, match):
    assert main(["emergence", "analyze", write(tmp_path, TABLE), "--n-boot", "0"] + args) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("args,expected", [
    (["--n-items", "-5"], "argument --n-items: expected a positive integer, got -5"),
    (["--n-items", "0"], "argument --n-items: expected a positive integer, got 0"),
    (["--n-boot", "-1"], "argument --n-boot: expected an integer >= 0, got -1"),
])
def test_bad_item_and_replicate_counts_are_refused_at_parse_time(tmp_path, capsys, args, expected):
    """Typed plain int, they were refused only by the command after the parse (--n-items 0 and
    -5 as "--n-items must be >= 1"); now by argparse, naming the option, as the other commands'
    counts are. --n-boot 0 (no bootstrap) stays valid."""
    with pytest.raises(SystemExit) as info:
        main(["emergence", "analyze", write(tmp_path, TABLE)] + args)
    assert info.value.code == 2
    assert expected in capsys.readouterr().err
    assert main(["emergence", "analyze", write(tmp_path, TABLE), "--n-boot", "0", "--n-items", "1"]) == 0


def test_a_table_that_is_not_utf8_says_so(tmp_path, capsys):
    path = tmp_path / "latin1.csv"
    path.write_bytes(TABLE.replace("a,135e6", "caf\xe9,135e6").encode("latin-1"))
    assert main(["emergence", "analyze", str(path), "--n-boot", "0"]) == 2
    assert "latin1.csv: not UTF-8 text" in capsys.readouterr().err
    bom = tmp_path / "bom.csv"   # a spreadsheet's UTF-8 export starts with a byte-order mark
    bom.write_bytes(TABLE.encode("utf-8-sig"))
    assert main(["emergence", "analyze", str(bom), "--n-boot", "0"]) == 0


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["emergence", "analyze", str(tmp_path / "nope.csv")]) == 2


def test_train_mode_needs_out(capsys):
    # train mode itself is tested in test_emergence_study.py
    assert main(["emergence", "--task", "addition", "--family", "ladder"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["emergence"]) == 2


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["emergence", "analyze", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--threshold" in out and "params" in out


@pytest.mark.parametrize("text,message", [
    # analysed as a benchmark named ""
    ("params,,MMLU\n1e7,1,0.1\n1e8,1,0.2\n1e9,1,0.6\n", "column 2 of 3 has no name in the header row"),
    # parsed as NaN, which is "not reported": the score was dropped without a word
    ("params,MMLU\n1e7,nan\n1e8,0.2\n1e9,0.5\n1e10,0.6\n",
     "column 'MMLU', row 2: 'nan' is not a number (leave the cell empty for a score not reported)"),
])
def test_a_blank_header_or_a_nan_score_is_refused(tmp_path, capsys, text, message):
    assert main(["emergence", "analyze", write(tmp_path, text), "--n-boot", "0"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("chance", ["0.6", "0.5"])
def test_a_threshold_at_or_below_chance_is_refused_naming_both(tmp_path, capsys, chance):
    assert main(["emergence", "analyze", write(tmp_path, TABLE), "--n-boot", "0", "--chance", chance,
                 "--threshold", "0.5"]) == 2
    assert f"--threshold 0.5 must lie above --chance {chance}" in capsys.readouterr().err


class _Reached(Exception):
    pass


def _catch_study(monkeypatch) -> list:
    """The specs the CLI hands to ``run_study``, which is replaced by one that records its spec
    and raises ``_Reached`` (nothing is trained)."""
    import jaxscale.emergence_study as study

    started = []

    def run_study(spec, out, **kwargs):
        started.append(spec)
        raise _Reached

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(study, "run_study", run_study)
    return started


@pytest.mark.parametrize("budget", ["1", "one step less 1", "per param"])
def test_train_mode_refuses_a_token_budget_below_one_step_before_writing(tmp_path, capsys, monkeypatch, budget):
    """A --tokens budget below one optimiser step (--batch-size items x the task's input tokens,
    its row length - 1: 11 of addition's 12-token rows) was not checked: it trained every model
    on a whole step without a word, as sweep and train no longer do. Refused by name before the
    study (or --out) is started; one step's tokens is accepted."""
    import jaxscale.emergence_study as study

    started = _catch_study(monkeypatch)
    seq = study.build_task("addition").seq_len - 1
    step = f"one step of 64 sequences x {seq} tokens ({64 * seq} tokens), and a budget is rounded up to whole steps"
    argv, message = {
        "1": (["--tokens", "1"], f"--tokens: a budget of 1 tokens is less than {step}"),
        "one step less 1": (["--tokens", str(64 * seq - 1)],
                            f"--tokens: a budget of {64 * seq - 1} tokens is less than {step}"),
        "per param": (["--tokens-per-param", "1e-9"], "--tokens-per-param: 1e-09 x "),
    }[budget]
    out = tmp_path / "study"
    command = ["emergence", "--task", "addition", "--family", "ladder", "--out", str(out)]
    assert main(command + argv) == 2
    err = capsys.readouterr().err
    assert message in err and step in err, err
    assert not started and not out.exists()
    with pytest.raises(_Reached):
        main(command + ["--tokens", str(64 * seq)])
    assert [spec.budget for spec in started] == [{"kind": "tokens", "value": float(64 * seq)}]


def _result(logistic_mid, gompertz_mid, best, delta_aic):
    def fit(mid, aic):
        return {"midpoint": mid, "midpoint_ci": [mid / 2, mid * 2], "width_decades": 1.0, "width_ci": [0.5, 2.0],
                "floor": 0.0, "floor_fitted": False, "identified": True, "reason": None, "step": False, "aic": aic}
    size = {"name": "s", "scale": 1e5, "exact_match": {"mean": 0.5, "lo": 0.4, "hi": 0.6},
            "token_accuracy": {"mean": 0.8}, "answer_nll_per_token": {"mean": 1.0}}
    series = {"logistic": fit(logistic_mid, 10.0), "gompertz": fit(gompertz_mid, 10.0 + (
        -delta_aic if best == "gompertz" else delta_aic)), "best_fit": best, "delta_aic": delta_aic,
        "crossing": 2e5, "crossing_ci": [1e5, 3e5]}
    return {"sizes": [size], "series": {"exact_match": series}, "threshold": 0.5, "verdict": None, "backtest": None}


@pytest.mark.parametrize("best, delta, shown, hidden", [
    ("gompertz", 5.2, ["gompertz midpoint 4.01e+05 [2e+05, 8.02e+05] (lower AIC by 5.2)"], ["1.55e+05", "logistic"]),
    ("logistic", 5.2, ["logistic midpoint 1.55e+05 [7.75e+04, 3.1e+05] (lower AIC by 5.2)"], ["4.01e+05", "gompertz"]),
    (None, 3e-8, ["logistic ≈ gompertz (AIC 3e-08 apart, within 2: neither shape preferred)",
                  "logistic midpoint 1.55e+05 [7.75e+04, 3.1e+05], gompertz midpoint 4.01e+05 [2e+05, 8.02e+05]"],
     []),
])
def test_train_digest_gives_the_midpoint_of_the_shape_the_aic_prefers_or_both_when_tied(capsys, best, delta, shown,
                                                                                       hidden):
    """The digest printed the logistic midpoint alone, also where the Gompertz shape fitted
    better by AIC, or the two tied (ΔAIC < 2) with midpoints 2.6x apart; analysis.json and
    summary.md report both shapes. It follows the analysis' best_fit now."""
    from jaxscale.commands.emergence import print_result

    print_result(_result(1.55e5, 4.01e5, best, delta))
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("exact match:"))
    for text in shown:
        assert text in line, line
    for text in hidden:
        assert text not in line, line
    assert line.endswith("; crossing of 0.5 at 2e+05 [1e+05, 3e+05]"), line


def test_train_digest_follows_a_real_analysis_of_a_series(capsys):
    """The digest reads the keys that SeriesAnalysis.as_dict writes into analysis.json; on a
    Gompertz-shaped series (slow start, quick saturation) it gives the Gompertz midpoint."""
    import numpy as np

    from jaxscale.commands.emergence import print_result
    from jaxscale.fit.emergence import analyze_series

    x = np.arange(4, 10)
    successes = np.round(1000 * np.exp(-np.exp(-1.5 * (x - 6.5)))).astype(int)  # 0 0 120 624 900 977
    scale = np.repeat(10.0 ** x, 3)
    s = analyze_series("exact match", scale, np.repeat(successes, 3), np.full(scale.size, 1000), n_boot=0).as_dict()
    assert s["best_fit"] == "gompertz"
    result = _result(1.0, 1.0, None, 0.0)
    result["series"]["exact_match"] = s
    print_result(result)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("exact match:"))
    kinds = [s["best_fit"]] if s["best_fit"] else ["logistic", "gompertz"]
    for kind in ("logistic", "gompertz"):
        assert (f"{kind} midpoint {s[kind]['midpoint']:.3g}" in line) == (kind in kinds), line


@pytest.mark.parametrize("task,given,expected", [("sparse-parity", None, 0.75), ("modular-addition", None, 0.5),
                                                 ("sparse-parity", "0.9", 0.9)])
def test_train_mode_threshold_defaults_above_the_tasks_chance(tmp_path, monkeypatch, task, given, expected):
    """Without --threshold a study of sparse parity (guessing scores exact match 1/2) takes 0.75,
    halfway from chance to 1, where the fixed default 0.5 was refused by the study as at chance;
    tasks of small chance keep 0.5; a given threshold is kept."""
    started = _catch_study(monkeypatch)
    argv = ["emergence", "--task", task, "--family", "ladder", "--out", str(tmp_path / "s")]
    with pytest.raises(_Reached):
        main(argv + ([] if given is None else ["--threshold", given]))
    assert [spec.threshold for spec in started] == [pytest.approx(expected)]


def test_train_mode_threshold_at_chance_is_refused_by_its_flag(tmp_path, capsys, monkeypatch):
    import jaxscale.emergence_study as study

    monkeypatch.setattr(study, "run_study", lambda *a, **k: pytest.fail("the study started"))
    out = tmp_path / "s"
    assert main(["emergence", "--task", "sparse-parity", "--family", "ladder", "--out", str(out),
                 "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--threshold: 0.5 lies at or below the chance level of task" in err and "0.75" in err
    assert not out.exists()
