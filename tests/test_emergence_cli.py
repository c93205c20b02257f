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
    (["--n-items", "-5"], "--n-items must be >= 1"),
    (["--chance", "1.5"], "--chance must lie in [0, 1)"),
    (["--threshold", "2"], "--threshold must lie in (0, 1)"),
])
def test_bad_options_exit_2_naming_the_option(tmp_path, capsys, args, match):
    assert main(["emergence", "analyze", write(tmp_path, TABLE), "--n-boot", "0"] + args) == 2
    assert match in capsys.readouterr().err


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
