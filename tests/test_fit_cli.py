"""`jaxscale fit` and `jaxscale allocate` on tiny CSV and result-row fixtures."""

import csv
import warnings
import json

import numpy as np
import pytest

from jaxscale.cli import main
from jaxscale.fit import HOFFMANN_2022, DivergedRowsWarning, DuplicateRunsWarning, IsoFLOPGridWarning
from jaxscale.fit.sources import load_csv, rows_to_data
from jaxscale.results import append_rows


def _chinchilla_csv(path, flops_only=True):
    N, D = np.meshgrid(np.geomspace(5e7, 1.6e10, 12), np.geomspace(2.5e8, 3e11, 12))
    N, D = N.ravel(), D.ravel()
    L = HOFFMANN_2022.loss(N, D)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        if flops_only:
            w.writerow(["Model Size", "Training FLOP", "loss"])
            w.writerows(zip(N, 6 * N * D, L))
        else:
            w.writerow(["params", "tokens", "loss"])
            w.writerows(zip(N, D, L))
    return path


def _row(name, n, tokens, lr, seed, loss, val, diverged=False):
    return {"run_id": f"{name}-{tokens:g}-{lr}-{seed}", "name": name, "config": {},
            "params": n * 1.2, "embedding_params": n * 0.2, "non_embedding_params": n,
            "flops_per_token": 6 * n, "seed": seed, "lr": lr, "batch_size": 8, "seq_len": 64,
            "steps": 100, "tokens": tokens, "flops": 6 * n * tokens, "train_loss": loss,
            "val_loss": val, "test_loss": loss, "curve": [], "diverged": diverged,
            "corpus": {"name": "t", "fingerprint": "x"}, "mode": "stack",
            "stack": {"id": 0, "size": 4}, "wall_seconds": 1.0, "versions": {}, "device": "cpu"}


def _rows_file(path):
    rows = []
    for i, n in enumerate(np.geomspace(1e4, 1e7, 7)):
        name = f"s{i}"
        good = 400 * n ** -0.34 + 1.7
        for seed in (0, 1):
            noise = 1 + 0.002 * (seed - 0.5)
            rows.append(_row(name, n, 1e6, 1e-3, seed, good * noise, good * noise))
            rows.append(_row(name, n, 1e6, 1e-2, seed, good * 1.2, good * 1.2))  # worse lr
    rows.append(_row("s0", 1e4, 1e6, 1e-1, 0, float("nan"), float("nan"), diverged=True))
    append_rows(path, rows)
    return path


def test_rows_to_data_picks_best_lr_averages_seeds_drops_diverged(tmp_path):
    from jaxscale.results import read_rows
    rows = read_rows(_rows_file(tmp_path / "r.jsonl"))
    with pytest.warns(DivergedRowsWarning, match="1 diverged"):
        data = rows_to_data(rows)
    assert data.n == 7 and data.seed_losses.shape == (7, 2)
    expected = 400 * data.N ** -0.34 + 1.7
    assert np.allclose(data.loss, expected, rtol=1e-9)  # the good lr, seeds averaged
    with pytest.warns(DivergedRowsWarning):
        total = rows_to_data(rows, x="params")
    assert np.allclose(total.N, data.N * 1.2)


def test_rows_to_data_refuses_mixed_corpora_and_counts_a_repeated_run_once(tmp_path, capsys):
    """Averaging would take rows of two corpora, or one run twice, for seeds of one point."""
    from jaxscale.results import read_rows
    rows = [r for r in read_rows(_rows_file(tmp_path / "r.jsonl")) if not r["diverged"]]
    other = [{**r, "corpus": {"name": "mine.txt", "fingerprint": "y" * 64}} for r in rows]
    with pytest.raises(ValueError, match=r"rows: come from 2 corpora: t \(x\), mine.txt \(yyyyyyyyyyyy\)"):
        rows_to_data(rows + other)
    once = rows_to_data(rows)
    with pytest.warns(DuplicateRunsWarning, match=r"28 run\(s\) given more than once, each counted once .*"
                                                  r"s0 at 1e\+06 tokens, lr 0.001, seed 0 \(rows 0 and 28"):
        twice = rows_to_data(rows + rows)
    assert twice.seed_losses.shape == (7, 2)
    np.testing.assert_array_equal(twice.loss, once.loss)
    np.testing.assert_array_equal(twice.seed_losses, once.seed_losses)
    # another data order is another run, not a repeat: seeds of the point
    reordered = [{**r, "data_seed": 7} for r in rows]
    assert rows_to_data(rows + reordered).seed_losses.shape == (7, 4)
    # another setting is another experiment, which the point must not average as a seed
    adam = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1, "warmup_frac": 0.1}
    base = [{**r, "optimizer": {**adam, "lr": r["lr"]}} for r in rows]
    assert rows_to_data(base).n == 7  # the rate differs between points, not a setting
    decayed = [{**r, "seed": r["seed"] + 2, "optimizer": {**r["optimizer"], "weight_decay": 0.0}} for r in base]
    with pytest.raises(ValueError, match=r"rows: s0 at 1e\+06 tokens, lr 0.001: its rows differ in "
                                         r"optimizer.weight_decay \(0.1 against 0.0\); a point averages seeds"):
        rows_to_data(base + decayed)
    halved = [{**r, "seed": r["seed"] + 2, "config": {"dtype": "bfloat16"}} for r in base]
    with pytest.raises(ValueError, match=r"differ in config.dtype \(None against 'bfloat16'\)"):
        rows_to_data(base + halved)
    # the CLI fits the file appended to itself as the file alone, and says so
    append_rows(tmp_path / "once.jsonl", rows)
    append_rows(tmp_path / "twice.jsonl", rows + rows)
    assert main(["fit", "power-law", str(tmp_path / "once.jsonl"), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    with pytest.warns(DuplicateRunsWarning, match="28 run"):
        assert main(["fit", "power-law", str(tmp_path / "twice.jsonl"), "--json"]) == 0
    out = capsys.readouterr()
    fitted = json.loads(out.out)
    assert fitted["power_law"] == alone["power_law"]
    assert fitted["source"]["notes"] == alone["source"]["notes"]


def test_csv_aliases_and_derived_tokens(tmp_path):
    d = load_csv(_chinchilla_csv(tmp_path / "a.csv"))
    assert d.n == 144 and any("D = C/(6N)" in n for n in d.notes)
    d2 = load_csv(_chinchilla_csv(tmp_path / "b.csv", flops_only=False))
    assert np.allclose(d.D, d2.D, rtol=1e-9)


def test_csv_without_columns_is_a_clean_error(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("size,value\n1,2\n")
    with pytest.raises(ValueError, match="N \\(any of N, params, Model Size"):
        load_csv(p)
    assert main(["fit", "power-law", str(p)]) == 2
    assert "lacks needed column" in capsys.readouterr().err
    assert main(["fit", "chinchilla", str(tmp_path / "missing.csv")]) == 2


def test_csv_with_a_non_finite_or_negative_value_names_its_row(tmp_path):
    p = tmp_path / "nan.csv"
    for value, shown in (("nan", "nan"), ("-2.5", "-2.5"), ("inf", "inf")):
        p.write_text(f"params,loss\n1e6,3\n1e7,{value}\n1e8,2.2\n")
        with pytest.raises(ValueError, match=rf"column 'loss' \(loss\) must be finite and > 0; row 3 holds {shown}$"):
            load_csv(p)


def test_fit_chinchilla_json_and_allocate(tmp_path, capsys):
    src = _chinchilla_csv(tmp_path / "runs.csv")
    assert main(["fit", "chinchilla", str(src), "--approach", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    a3 = out["approach3"]
    assert {"E", "A", "B", "alpha", "beta", "a", "b", "G"} <= set(a3)
    assert a3["alpha"] == pytest.approx(HOFFMANN_2022.alpha, rel=1e-3)
    fit_file = tmp_path / "fit.json"
    fit_file.write_text(json.dumps(out))
    assert main(["allocate", "--compute", "1e21", "1e23", "--fit", str(fit_file), "--json"]) == 0
    alloc = json.loads(capsys.readouterr().out)
    assert alloc["method"] == "fitted_law"
    for row in alloc["allocation"]:
        assert 6 * row["params"] * row["tokens"] == pytest.approx(row["compute"], rel=1e-9)
        assert row["params"] == pytest.approx(HOFFMANN_2022.n_opt(row["compute"]), rel=1e-2)
    assert main(["allocate", "--compute", "1e21"]) == 0
    assert "tokens per parameter" in capsys.readouterr().out


def test_fit_chinchilla_approaches_1_and_2_json(tmp_path, capsys):
    src = _chinchilla_csv(tmp_path / "runs.csv", flops_only=False)
    # the grid's largest budget is reached only near its largest sizes: its pick is an edge
    with pytest.warns(IsoFLOPGridWarning, match=r"Approach 1: skipped 1 budget\(s\)"):
        assert main(["fit", "chinchilla", str(src), "--approach", "1", "--json"]) == 0
    a1 = json.loads(capsys.readouterr().out)["approach1"]
    assert {"a", "b", "k_N", "k_D"} <= set(a1)


def test_fit_power_law_on_rows(tmp_path, capsys):
    src = _rows_file(tmp_path / "rows.jsonl")
    with pytest.warns(DivergedRowsWarning):
        rc = main(["fit", "power-law", str(src), "--json", "--bootstrap", "50",
                   "--plot", str(tmp_path / "figs")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    pl = out["power_law"]
    assert {"A", "alpha", "B", "r2_log", "rmse_log", "n", "improvement", "backtest"} <= set(pl)
    assert pl["alpha"]["value"] == pytest.approx(0.34, rel=0.02)
    assert set(pl["alpha"]) >= {"value", "ci95"}
    assert (tmp_path / "figs" / "power_law.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.warns(DivergedRowsWarning):
        assert main(["fit", "power-law", str(src), "--bootstrap", "50"]) == 0
    assert "% lower" in capsys.readouterr().out


def test_help_has_examples(capsys):
    for argv in (["fit", "--help"], ["fit", "chinchilla", "--help"], ["allocate", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "examples:" in capsys.readouterr().out


def test_fit_power_law_notes_an_unidentified_floor_only_where_there_is_one(tmp_path, capsys):
    p = tmp_path / "runs.csv"
    sizes = np.geomspace(1e6, 1e9, 8)
    for floor, noted in ((0.0, True), (1.7, False)):
        p.write_text("params,loss\n" + "".join(f"{n:g},{floor + 400 * n ** -0.3:.8f}\n" for n in sizes))
        assert main(["fit", "power-law", str(p), "--bootstrap", "0", "--holdout", "0"]) == 0
        out = capsys.readouterr().out
        assert ("note: B is not identified: the fit drives it below 1% of the smallest loss" in out) == noted, out


def test_fit_chinchilla_all_keeps_every_approach_when_approach_3_has_no_frontier(tmp_path, capsys):
    """A fitted alpha <= 0 (the loss rising in N) used to end `--approach all` with "error: alpha:
    must be > 0" and nothing on stdout: the summary asked the law for N_opt outside the
    per-approach guard, and Approaches 1 and 2 were lost."""
    from jaxscale.fit import IsoFLOPGridWarning
    from jaxscale.fit.chinchilla import NoFrontierWarning

    N, D = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5))
    N, D = N.ravel(), D.ravel()
    src = tmp_path / "inc.csv"
    src.write_text("N,D,loss\n" + "".join(f"{n:.17g},{d:.17g},{2 + 400 / d ** 0.3 + 0.3 * (n / 1e7) ** 0.1:.17g}\n"
                                          for n, d in zip(N, D)))
    for extra in (["--json"], ["--plot", str(tmp_path / "figs")]):
        with pytest.warns(NoFrontierWarning), warnings.catch_warnings():
            warnings.simplefilter("ignore", IsoFLOPGridWarning)
            assert main(["fit", "chinchilla", str(src), "--approach", "all", *extra]) == 0
        out = capsys.readouterr().out
        if extra == ["--json"]:
            payload = json.loads(out)
            assert set(payload) >= {"approach1", "approach2", "approach3"}
            assert "a" in payload["approach2"]
            assert payload["approach3"]["has_frontier"] is False
            assert payload["approach3"]["alpha"] == pytest.approx(-0.1, abs=1e-4)
        else:
            assert "Approach 2 (IsoFLOP parabolas)" in out and "C = 1e+21: N_opt" not in out
            assert "no compute-optimal frontier" in out
            assert (tmp_path / "figs" / "optimal_allocation.png").exists()
            assert not (tmp_path / "figs" / "loss_contours.png").exists()


def test_fit_json_is_strict_and_an_infinite_bound_is_null(tmp_path, capsys, runaway_resample):
    """A bootstrap whose A overflowed reaches inf at its upper bound; --json used to print bare
    Infinity/NaN tokens (not JSON), and the bound itself dropped the inf resample."""
    p = tmp_path / "runs.csv"
    p.write_text("params,loss\n" + "".join(f"{n:g},{1.7 + 400 * n ** -0.3:.8f}\n"
                                           for n in np.geomspace(1e6, 1e9, 8)))
    assert main(["fit", "power-law", str(p), "--json", "--bootstrap", "20", "--holdout", "0"]) == 0

    def refuse(token):
        raise AssertionError(f"non-JSON token {token}")

    pl = json.loads(capsys.readouterr().out, parse_constant=refuse)["power_law"]
    assert pl["A"]["ci95"][1] is None and pl["A"]["se"] is None
    assert pl["alpha"]["ci95"][1] is not None
    assert main(["fit", "power-law", str(p), "--bootstrap", "20", "--holdout", "0"]) == 0
    assert "inf]" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    # a negative --holdout meant no backtest (only 0 says so)
    (["fit", "power-law", "r.csv", "--holdout", "-1"], "argument --holdout: expected an integer >= 0, got -1"),
    # inf passed where 0 and nan were refused
    (["fit", "power-law", "r.csv", "--delta", "inf"], "argument --delta: expected a finite positive number, got inf"),
    # numpy's "expected non-negative integer", after the data were read
    (["fit", "chinchilla", "r.csv", "--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
    # "budgets: budgets must be > 0 FLOPs", no option named
    (["allocate", "--compute", "-1"], "argument --compute: expected a finite positive number, got -1.0"),
    (["allocate", "--compute", "nan"], "argument --compute: expected a finite positive number, got nan"),
    (["allocate", "--compute", "1e20", "0"], "argument --compute: expected a finite positive number, got 0.0"),
])
def test_bad_options_are_refused_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_files_and_repeated_budgets_are_clean_errors(tmp_path, capsys):
    """Exit status 2 and one line naming the argument or file, no traceback."""
    assert main(["allocate", "--compute", "1e21", "1e19", "1e21"]) == 2  # was two identical rows
    assert capsys.readouterr().err.strip() == "jaxscale allocate: error: --compute: budget(s) 1e+21 given more than once"
    (tmp_path / "fits").mkdir()
    assert main(["allocate", "--compute", "1e21", "--fit", str(tmp_path / "fits")]) == 2  # was exit 1
    assert "is a folder; a JSON file is expected" in capsys.readouterr().err
    rows = tmp_path / "r.jsonl"
    rows.write_text(json.dumps({"run_id": "a", "name": "s", "non_embedding_params": 1e4, "tokens": None,
                                "lr": 1e-3, "seed": 0, "test_loss": 3.0, "val_loss": 3.0}) + "\n")
    assert main(["fit", "power-law", str(rows)]) == 2  # was a TypeError traceback
    assert (f"error: {rows}: rows: row 0 (from 0, run_id 'a'): field 'tokens' must be a finite number > 0, got None"
            in capsys.readouterr().err)


@pytest.mark.parametrize("law", ["power-law", "chinchilla"])
@pytest.mark.parametrize("flag", ["--bootstrap", "--drop-highest"])
def test_negative_bootstrap_or_drop_highest_is_refused_by_name_at_parse_time(law, flag, tmp_path, capsys):
    """Typed plain int, -1 was accepted and refused only once the source was read: --bootstrap by
    the fit ("bootstrap: must be >= 0", naming no option), --drop-highest after loading. Refused
    by argparse now, before the (here missing) source is looked at; 0 stays valid (no bootstrap,
    no point dropped)."""
    missing = str(tmp_path / "missing.csv")
    with pytest.raises(SystemExit) as info:
        main(["fit", law, missing, flag, "-1"])
    assert info.value.code == 2
    assert f"argument {flag}: expected an integer >= 0, got -1" in capsys.readouterr().err
    assert main(["fit", law, missing, flag, "0"]) == 2  # parsed; the missing source is what is refused
    assert "missing.csv" in capsys.readouterr().err


@pytest.mark.parametrize("ratio", ["0", "-20", "nan", "inf"])
def test_allocate_refuses_a_bad_tokens_per_param_by_its_flag(ratio, capsys):
    """Refused at parse time naming --tokens-per-param (it was refused inside the allocation, in
    the words of its keyword argument ``tokens_per_param``)."""
    with pytest.raises(SystemExit) as err:
        main(["allocate", "--compute", "1e21", "--tokens-per-param", ratio])
    assert err.value.code == 2
    assert "--tokens-per-param" in capsys.readouterr().err
