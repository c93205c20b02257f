"""The experiment scripts end to end: ``--smoke`` in the default suite (in-process), ``--quick``
as a subprocess in the slow suite. Each writes the documented rows, valid PNG figures and a
report whose numbers are the fits' own."""

import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from jaxscale.results import missing_fields, read_rows

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def est(e):
    """The report's 'value [lo, hi]' form of a fit's JSON estimate."""
    if isinstance(e, dict) and all(v is not None and math.isfinite(v) for v in e["ci95"]):
        return f"{e['value']:.4g} [{e['ci95'][0]:.4g}, {e['ci95'][1]:.4g}]"
    return f"{e['value'] if isinstance(e, dict) else e:.4g}"


def check_rows_and_figures(out, parts):
    rows = read_rows(out / "results.jsonl")
    assert rows and all(not missing_fields(r) for r in rows)
    assert {r["part"] for r in rows} == set(parts)
    report = (out / "report.md").read_text()
    figures = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert figures
    for name in figures:
        w, h = png_size(out / name)
        assert w > 400 and h > 300, (name, w, h)
    for r in rows:
        assert r["corpus"]["fingerprint"] in report
    assert rows[0]["versions"]["jax"] in report and rows[0]["device"]["kind"] in report
    return rows, report


@pytest.fixture(scope="module")
def power_law_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("power_law")
    assert load_script("power_law").main(["--smoke", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def chinchilla_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("chinchilla")
    assert load_script("chinchilla").main(["--smoke", "--out", str(out)]) == 0
    return out


def test_power_law_smoke(power_law_smoke):
    out = power_law_smoke
    rows, report = check_rows_and_figures(out, {"text", "random_tokens"})
    for name in ("power_law.png", "power_law_total.png", "random_tokens.png", "curves.png"):
        assert (out / name).exists()
    fits = json.loads((out / "fits.json").read_text(), parse_constant=lambda c: pytest.fail(f"fits.json holds {c}"))
    for key in ("non_embedding", "total"):
        law = fits["text"][key]
        for p in ("A", "alpha", "B"):
            assert est(law[p]) in report, (key, p)
        assert f"{law['r2_log']:.4f}" in report
        assert f"{100 * law['backtest']['mean_abs_rel_error']:.2f}%" in report
    rnd = fits["random_tokens"]
    assert "6.2146" in report and "No scaling law can be learned" in report
    from jaxscale.lr_grid import lr_edge_note

    note = lr_edge_note([r for r in rows if r["part"] == "text"])
    assert note.startswith("Learning-rate grid: two rates") and note in report
    for s in rnd["sizes"]:
        assert f"{s['train_minus_lnv']:+.4f}" in report
    if rnd["fit"] is not None:
        assert est(rnd["fit"]["alpha"]) in report
    else:
        assert rnd["fit_error"] in report
    random_rows = [r for r in rows if r["part"] == "random_tokens"]
    assert all(r["steps"] == 40 and r["corpus"]["name"] == "random-tokens-v500" for r in random_rows)
    assert all(abs(r["train_loss"] - math.log(500)) < 0.2 for r in random_rows)


def test_chinchilla_smoke(chinchilla_smoke):
    out = chinchilla_smoke
    rows, report = check_rows_and_figures(out, {"race", "isoflop"})
    assert (out / "race.png").exists()
    fits = json.loads((out / "fits.json").read_text(), parse_constant=lambda c: pytest.fail(f"fits.json holds {c}"))
    race = fits["race"]
    # Equal training FLOPs by the model's own formula, up to one step's rounding.
    for r in (r for r in rows if r["part"] == "race"):
        step_flops = r["flops_per_token"] * r["batch_size"] * r["seq_len"]
        assert race["flops"] <= r["flops"] < race["flops"] + step_flops
        assert r["flops"] == r["flops_per_token"] * r["tokens"]
    assert (f"Winner by validation loss: {race['winner_val']}" in report
            or f"No clear winner by validation loss**: {race['winner_val']} leads" in report)
    from jaxscale.lr_grid import lr_edge_note  # the smoke grids (two rates) cannot bracket: both notes show

    for part in ("race", "isoflop"):
        note = lr_edge_note([r for r in rows if r["part"] == part])
        assert note.startswith("Learning-rate grid: two rates") and note in report, part
    for e in race["entries"]:
        assert f"{e['val_mean']:.4f}" in report
    for i in (1, 2, 3):
        fit = fits[f"approach{i}"]
        if "error" in fit:
            assert fit["error"] in report and "not identified" in report
        else:
            assert f"{est(fit['a'])} | {est(fit['b'])}" in report
    assert "0.50 / 0.50" in report and "0.49 / 0.51" in report and "0.46 / 0.54" in report
    # the smoke grid (l2-l4) is off-centre on purpose: a budget with its minimum at an end gets the
    # next size out at every rate, and the report names it
    from jaxscale.isoflop_grid import budget_of, family_order, sizes_beyond

    plan = load_script("chinchilla").PLANS["smoke"]
    grid = read_rows(out / "isoflop" / "results.jsonl")
    wanted = sizes_beyond(grid, plan["budgets"], family_order("ladder"))
    assert wanted, "the smoke grid must have a budget with its minimum at an end"
    extra = read_rows(out / "isoflop-ext1" / "results.jsonl")
    assert sorted({(budget_of(r, plan["budgets"]), r["name"]) for r in extra}) == sorted(wanted)
    assert len(extra) == len(wanted) * len(plan["lrs"]) * len(plan["seeds"])
    assert "IsoFLOP grid extended" in report
    for c in ("1.0e+18", "1.0e+19", "1.0e+20", "1.0e+21"):
        assert f"| {c} |" in report
    assert "extrapolation" in report


def test_chinchilla_race_headline_weighs_the_lead_against_seed_noise():
    """A lead within twice the standard error of the difference of the two best seed means is no
    clear winner (the full run's balanced model led by 0.013 nats against a seed SD of 0.022)."""
    load_script("chinchilla")  # puts experiments/ on the path
    from _chinchilla_report import race_headline

    def race(margin, sd):
        entries = [{"strategy": "balanced", "val_mean": 2.0, "val_sd": sd, "diverged": False},
                   {"strategy": "small", "val_mean": 2.0 + margin, "val_sd": sd, "diverged": False}]
        return {"entries": entries, "winner_val": "balanced", "winner_test": "balanced", "margin_val": margin}

    close = race_headline(race(0.013, 0.022), n_seeds=2)
    assert close.startswith("**No clear winner by validation loss**: balanced leads small by 0.0130 nats")
    clear = race_headline(race(0.1, 0.022), n_seeds=2)
    assert clear.startswith("**Winner by validation loss: balanced** (by 0.1000 nats over small, more than twice")
    assert "one seed, so no noise estimate" in race_headline(race(0.013, None), n_seeds=1)


def test_emergence_smoke(tmp_path):
    """The emergence script's --smoke run end to end (its analysis must survive a study far too
    short to show a transition: an earlier version crashed forecasting it)."""
    import json

    assert load_script("emergence").main(["--smoke", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    for text in ("fingerprint", "Device", "midpoint", "backtest", "exact match"):
        assert text in report, text
    w, h = png_size(tmp_path / "notebook_emergence_2x2.png")
    assert w > 400 and h > 300
    analysis = json.loads((tmp_path / "transition" / "analysis.json").read_text())
    em = analysis["series"]["exact_match"]
    assert em["logistic"]["floor_fitted"] is True
    assert read_rows(tmp_path / "notebook" / "results.jsonl")
    # the headline follows the AIC gap: under 2 no shape is preferred and both midpoints show
    # (the smoke fits tie to 1e-7, and the report used to headline the Gompertz midpoint alone)
    if em["delta_aic"] < 2:
        assert em["best_fit"] is None and "logistic ≈ Gompertz (ΔAIC" in report
        for kind in ("logistic", "gompertz"):
            assert f"{em[kind]['midpoint']:.3g} parameters" in report
    else:
        assert f"({em['best_fit']} fit, lower AIC by" in report
    # 20 steps teach no model 2-digit addition: exact match stays on its floor, which is no
    # transition (it read "smooth, settled" from a sharpness of noise)
    assert analysis["verdict"]["label"] == "no transition" and "**no transition**" in report


def test_emergence_midpoint_headline_reports_both_fits_when_the_aics_tie():
    headline = load_script("emergence").midpoint_headline
    fits = {"logistic": {"midpoint": 1.55e5, "midpoint_ci": [1.4e5, 7.86e5], "identified": False},
            "gompertz": {"midpoint": 4.01e5, "midpoint_ci": [3.35e5, 1.08e6], "identified": True}}
    tied = headline({"fit": None, "delta_aic": 3e-8, "fits": fits})
    assert tied == ("exact-match midpoint: logistic ≈ Gompertz (ΔAIC 3e-08, no preference): logistic "
                    "1.55e+05 parameters [1.4e+05, 7.86e+05] (NOT identified); Gompertz 4.01e+05 "
                    "parameters [3.35e+05, 1.08e+06] (identified)")
    assert headline({"fit": "gompertz", "delta_aic": 5.2, "fits": fits}, bold="**") == (
        "exact-match midpoint (gompertz fit, lower AIC by 5.2): **4.01e+05 parameters [3.35e+05, "
        "1.08e+06]** (identified)")
    assert "no fit" in headline({"fit": None, "delta_aic": None, "fits": {}})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["power_law", "chinchilla"])
def test_quick_subprocess(name, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "report.md").exists() and (tmp_path / "fits.json").exists()
    rows = read_rows(tmp_path / "results.jsonl")
    assert rows and all(not missing_fields(r) for r in rows)


def test_help_runs():
    for name in ("power_law", "chinchilla"):
        proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--help"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0 and "--quick" in proc.stdout and "--smoke" in proc.stdout


def test_an_experiment_takes_only_its_own_folder(tmp_path, capsys):
    """A script given a sweep's folder replaced its results.jsonl (and a later ``jaxscale sweep``
    there appended to the script's); given another mode's or script's run, its sweeps failed deep
    inside. Now a non-empty folder must hold the same script's run in the same mode (made_by.json),
    and ``jaxscale sweep`` refuses an experiment's folder."""
    common = load_script("_common")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text("theirs\n")
    (sweep / "sweep.json").write_text("{}")
    with pytest.raises(SystemExit):
        common.parse_args("doc", "power_law", ["--smoke", "--out", str(sweep)])
    assert "holds no run of experiments/power_law.py" in capsys.readouterr().err
    assert (sweep / "results.jsonl").read_text() == "theirs\n" and not (sweep / "made_by.json").exists()
    mine = tmp_path / "mine"
    _, mode, folder = common.parse_args("doc", "power_law", ["--smoke", "--out", str(mine)])
    assert mode == "smoke" and folder == mine
    assert json.loads((mine / "made_by.json").read_text()) == {"script": "power_law", "mode": "smoke"}
    (mine / "text").mkdir()
    assert common.parse_args("doc", "power_law", ["--smoke", "--out", str(mine)])[2] == mine  # its own: resumed
    assert "holds an earlier power_law --smoke run" in capsys.readouterr().err
    for argv, name in ((["--quick"], "power_law"), (["--smoke"], "chinchilla")):
        with pytest.raises(SystemExit):
            common.parse_args("doc", name, [*argv, "--out", str(mine)])
        assert "holds a run of experiments/power_law.py --smoke" in capsys.readouterr().err
    from jaxscale.cli import main

    assert main(["sweep", "--family", "ladder", "--sizes", "l1", "--steps", "2", "--out", str(mine)]) == 2
    assert "made_by.json" in capsys.readouterr().err
    # a run made before made_by.json existed is still the script's own (its parts' subfolders)
    earlier = tmp_path / "earlier"
    (earlier / "text").mkdir(parents=True)
    (earlier / "text" / "sweep.json").write_text("{}")
    (earlier / "results.jsonl").write_text("\n")
    assert common.parse_args("doc", "power_law", ["--smoke", "--out", str(earlier)])[2] == earlier
    assert json.loads((earlier / "made_by.json").read_text()) == {"script": "power_law", "mode": "smoke"}
    (sweep / "checkpoints").mkdir()  # a sweep's folder passes for no script's earlier run
    with pytest.raises(SystemExit):
        common.parse_args("doc", "chinchilla", ["--smoke", "--out", str(sweep)])
