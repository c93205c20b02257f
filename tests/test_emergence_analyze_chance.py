"""`jaxscale emergence analyze`: the verdict of a score table, judged against --chance exactly as
a trained study's analysis judges exact match against the task's chance level (the shared rise
test of ``jaxscale.fit.emergence.verdict``). The table path had no rise test at chance: the same
scores could read as a transition there and as none in a study."""

import json

import numpy as np
import pytest

from jaxscale.cli import main

SIZES = [1e8, 1e9, 1e10, 1e11, 1e12]
N_ITEMS = 1000
# the table path has no continuous metric to tell "metric-induced" from "sharp under both"
SHARP = {"metric-induced": "sharp", "sharp under both": "sharp"}


def table(tmp_path, scores: dict) -> str:
    path = tmp_path / "scores.csv"
    lines = ["params," + ",".join(scores)]
    for i, size in enumerate(SIZES):
        lines.append(f"{size:g}," + ",".join("" if v[i] is None else repr(v[i]) for v in scores.values()))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def analyze_json(tmp_path, capsys, scores, *args) -> dict:
    assert main(["emergence", "analyze", table(tmp_path, scores), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def study_verdict(em_M, chance, threshold, n_boot) -> dict:
    """The trained study's analysis (``emergence_report.analyse``) of the same per-size scores:
    one model per size, ``N_ITEMS`` test items each, a falling answer loss."""
    from jaxscale.emergence_report import analyse

    rows = []
    for m, (size, em) in enumerate(zip(SIZES, em_M)):
        succ = float(round(em * N_ITEMS))
        nll = 1.5 * (size / 1e8) ** -0.1
        metrics = {"exact_match": succ / N_ITEMS, "exact_match_successes": succ,
                   "exact_match_n": float(N_ITEMS), "exact_match_lo": em, "exact_match_hi": em,
                   "answer_nll_per_token": nll, "answer_log_likelihood": -nll,
                   "answer_probability": float(np.exp(-nll)), "edit_distance": 1 - em,
                   "predicted_exact_match": float(np.exp(-nll))}
        rows.append({"params": size, "seed": 0, "name": f"m{m}", "run_id": f"m{m}",
                     "steps": 10, "batch_size": 8, "metrics": metrics})
    a = analyse(rows, threshold=threshold, chance={"exact_match": chance}, n_boot=n_boot)
    return a["as_json"]["verdict"]


# a rise from a smallest size below chance (0.10 at chance 0.25) to clearly above it; and a
# climb from below chance up to chance, where it stays: measured from the smallest size that is
# a rise of 0.12 (9 standard errors), measured from chance none
@pytest.mark.parametrize("em_M,label", [([0.10, 0.30, 0.45, 0.70, 0.90], "smooth"),
                                        ([0.15, 0.25, 0.26, 0.25, 0.27], "no transition")])
def test_analyze_and_the_study_give_the_same_verdict_from_below_chance(tmp_path, capsys, em_M, label):
    data = analyze_json(tmp_path, capsys, {"QA": em_M}, "--chance", "0.25", "--threshold", "0.6",
                        "--n-items", str(N_ITEMS), "--n-boot", "200")
    v = data["benchmarks"][0]["verdict"]
    s = study_verdict(em_M, 0.25, 0.6, 200)
    assert s["label"] == label and SHARP.get(v["label"], v["label"]) == SHARP.get(s["label"], s["label"])
    assert v["chance"] == s["chance"] == 0.25
    for key in ("em_rise", "em_rise_z", "em_sharpness", "rise_z", "n_sizes"):
        assert v[key] == pytest.approx(s[key]), key
    assert v["label_share"]["no transition"] == pytest.approx(s["label_share"]["no transition"])
    assert v["agreement"] == pytest.approx(s["agreement"])


def test_a_table_flat_at_chance_reads_no_transition(tmp_path, capsys):
    """0.25 give or take the test set's noise at chance 0.25 (4-way choice): no transition, and
    the rise is measured from chance, not from the smallest model's 0.24."""
    flat = [0.25, 0.24, 0.26, 0.25, 0.255]
    data = analyze_json(tmp_path, capsys, {"MC": flat}, "--chance", "0.25", "--threshold", "0.6",
                        "--n-items", str(N_ITEMS), "--n-boot", "100")
    v = data["benchmarks"][0]["verdict"]
    assert v["label"] == "no transition" and v["settled"]
    assert v["em_rise"] == pytest.approx(0.01) and v["em_rise_z"] < 3
    assert main(["emergence", "analyze", table(tmp_path, {"MC": flat}), "--chance", "0.25",
                 "--threshold", "0.6", "--n-items", str(N_ITEMS), "--n-boot", "0"]) == 0
    assert "verdict: no transition" in capsys.readouterr().out


def test_a_verdict_needs_the_item_counts(tmp_path, capsys):
    """Without --n-items there is no noise to judge a rise by (one score per size): every wiggle
    at chance would count as a rise, so no verdict is given, and the reason is stated."""
    data = analyze_json(tmp_path, capsys, {"MC": [0.25, 0.24, 0.26, 0.25, 0.255]}, "--chance", "0.25",
                        "--threshold", "0.6", "--n-boot", "0")
    b = data["benchmarks"][0]
    assert b["verdict"] is None and "--n-items" in b["verdict_note"]


def test_the_json_records_chance(tmp_path, capsys):
    """Chance per benchmark at the top and in each benchmark and its verdict; a benchmark with
    fewer than 3 sizes (no fits, no verdict) records it too."""
    data = analyze_json(tmp_path, capsys, {"A": [0.2, 0.3, 0.5, 0.7, 0.9],
                                           "B": [0.2, None, None, None, 0.9]},
                        "--chance", "0.25", "--threshold", "0.6", "--n-items", "500", "--n-boot", "0")
    assert data["chance"] == {"A": 0.25, "B": 0.25}
    a, b = data["benchmarks"]
    assert a["chance"] == b["chance"] == 0.25
    assert a["verdict"]["chance"] == 0.25 and a["logistic"]["chance"] == 0.25
    assert b["verdict"] is None and "3 sizes" in b["verdict_note"]
    default = analyze_json(tmp_path, capsys, {"A": [0.2, 0.3, 0.5, 0.7, 0.9]}, "--n-boot", "0")
    assert default["chance"] == {"A": 0.0} and default["benchmarks"][0]["chance"] == 0.0


def test_measure_emergent_ability_judges_each_column_at_its_own_chance():
    """The library call behind the CLI: one chance per column. The same scores read as a rise
    at chance 0 and as none at chance 0.25."""
    from jaxscale.fit.emergence import measure_emergent_ability

    scores = [0.15, 0.25, 0.26, 0.25, 0.27]
    report = measure_emergent_ability(SIZES, {"A": scores, "B": scores}, 0.6,
                                      chance={"A": 0.0, "B": 0.25}, n_items=N_ITEMS, n_boot=0)
    assert report.chance == {"A": 0.0, "B": 0.25}
    assert report.verdicts["A"].label != "no transition"
    assert report.verdicts["B"].label == "no transition" and report.verdicts["B"].chance == 0.25


def test_without_a_continuous_metric_a_sharp_series_reads_sharp():
    """A table has no loss: a step reads "sharp" (not "metric-induced" or "sharp under both"),
    with the shares over ``EM_ONLY_VERDICTS``; the rise test is the study's."""
    from jaxscale.fit.emergence import EM_ONLY_VERDICTS, emergence_verdict

    scale = np.logspace(8, 12, 5)
    em = np.array([0.25, 0.25, 0.25, 0.9, 0.9])
    n = np.full(5, 1000.0)
    v = emergence_verdict(scale, em, None, successes=em * n, trials=n, chance=0.25, n_boot=50)
    with_loss = emergence_verdict(scale, em, np.logspace(0, -1, 5), successes=em * n, trials=n,
                                  chance=0.25, n_boot=50)
    assert v.label == "sharp" and v.labels == EM_ONLY_VERDICTS and set(v.as_dict()["label_share"]) == set(EM_ONLY_VERDICTS)
    assert np.isnan(v.continuous_sharpness) and v.agreement == 1.0
    assert with_loss.label in ("metric-induced", "sharp under both")
    assert (v.em_rise, v.em_rise_z, v.em_sharpness) == (with_loss.em_rise, with_loss.em_rise_z, with_loss.em_sharpness)
