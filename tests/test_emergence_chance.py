"""Chance levels: every task states the score of its best constant answer per metric, checked here
against a brute-force count over the task's own generated items (or a hand count), and the
emergence analysis reads that level as the floor of its fits, the verdict's baseline, the
forecast link's floor and the level a threshold must exceed.

Why it matters: sparse parity answers one bit, so a model that guesses scores exact match 1/2.
Held at a floor of 0, the analysis read a flat series at chance as a rise from 0: a midpoint of
an emergence that never happened, a "metric-induced" verdict, and a forecast of nothing.

Fast: synthetic score series and the task generators only, no model is trained (the sigmoid
fits compile once per session).
"""

import itertools
import json
import math

import numpy as np
import pytest

from jaxscale.data.tasks import make_task
from jaxscale.emergence_report import analyse_and_write
from jaxscale.emergence_spec import StudySpec, build_task


# --- brute force: score every constant answer on a set of items -------------------------------

def best_constant(answers_NA, values_N=None, tolerance=None, guesses=None) -> dict:
    """The best constant answer's exact match, per-token accuracy and (with ``values_N``) ±
    ``tolerance`` match over the items, by counting: every answer row that occurs, every token
    at every position, every guess in ``guesses`` (the numbers the codec can write)."""
    answers_NA = np.asarray(answers_NA)
    n, a = answers_NA.shape
    out = {"exact_match": np.unique(answers_NA, axis=0, return_counts=True)[1].max() / n,
           "token_accuracy": np.mean([np.unique(answers_NA[:, i], return_counts=True)[1].max() / n
                                      for i in range(a)])}
    if values_N is not None:
        values_N = np.asarray(values_N, np.float64)
        best = 0
        for g in guesses:
            best = max(best, int(np.sum(np.abs(values_N - g) <= tolerance)))
        out["tolerance_match"] = best / n
    return out


def population(task):
    """Train and test together: for the tasks built below they hold every item of the space once."""
    answers = np.concatenate([task.train.answers_NA(), task.test.answers_NA()])
    values = None
    if task.train.target_value_N is not None:
        values = np.concatenate([task.train.target_value_N, task.test.target_value_N])
    return answers, values


# --- each task's chance levels ------------------------------------------------------------------

def test_sparse_parity_chance_is_one_half():
    """(1/2)^answer_len with a one-bit answer: the parity of k uniform bits is exactly uniform in
    every subtask (counted over all 2^k settings of each subtask's bits), and the generated
    training split's majority answer is within its noise of 1/2."""
    task = make_task("sparse-parity", seed=3, n_tasks=6, n_bits=10, k=3, n_train=8000)
    levels = task.chance_levels()
    assert levels["exact_match"] == 0.5 and levels["token_accuracy"] == 0.5
    for subset in task.params["subsets"]:
        assert len(subset) == 3
        parities = [sum(bits) % 2 for bits in itertools.product((0, 1), repeat=len(subset))]
        assert sum(parities) / len(parities) == 0.5  # hand count: 4 of 8
    answers = task.train.answers_NA()
    counted = best_constant(answers)
    se = math.sqrt(0.25 / answers.shape[0])
    assert abs(counted["exact_match"] - levels["exact_match"]) < 4 * se
    assert abs(counted["token_accuracy"] - levels["token_accuracy"]) < 4 * se


@pytest.mark.parametrize("p,tolerance", [(7, 2.0), (7, 0.0), (7, 2.5), (3, 2.0), (97, 2.0)])
def test_modular_addition_chance_counts_every_pair(p, tolerance):
    """1/p for exact match and the one answer token; the ±tolerance window holds
    min(2·floor(tol)+1, p) residues (all of them when p ≤ 5 at ±2)."""
    task = make_task("modular-addition", p=p, train_fraction=0.5)
    answers, values = population(task)
    assert answers.shape[0] == p * p
    counted = best_constant(answers, values, tolerance, guesses=range(p))
    levels = task.chance_levels(tolerance)
    for key in ("exact_match", "token_accuracy", "tolerance_match"):
        assert levels[key] == pytest.approx(counted[key], rel=1e-12), key
    assert levels["exact_match"] == pytest.approx(1 / p)
    assert levels["tolerance_match"] == pytest.approx(min(2 * math.floor(tolerance) + 1, p) / p)


@pytest.mark.parametrize("n_digits,reverse", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("tolerance", [0.0, 2.0])
def test_addition_chance_counts_every_pair(n_digits, reverse, tolerance):
    """The sum of two uniform numbers is triangular, so the best constant answer is the mode
    B − 1 (exact match 1/B, ten times 1/10^(n+1), a uniform guess over the answer digits); the
    per-token level has the carry digit (0 in (B+1)/(2B) of the pairs) beside uniform digits.
    Counted over every (a, b) pair, as the task's own rows write them."""
    base = 10 ** n_digits
    task = make_task("addition", n_digits=n_digits, reverse=reverse, n_train=base * base - 10, n_test=10)
    answers, values = population(task)
    assert answers.shape[0] == base * base  # train and test together are every pair once
    counted = best_constant(answers, values, tolerance, guesses=range(10 ** (n_digits + 1)))
    levels = task.chance_levels(tolerance)
    for key in ("exact_match", "token_accuracy", "tolerance_match"):
        assert levels[key] == pytest.approx(counted[key], rel=1e-12), key
    assert levels["exact_match"] == pytest.approx(1 / base)


def test_addition_chance_closed_form_matches_a_count_at_three_digits():
    """Three digits (a million pairs, counted from the sums rather than from generated rows)."""
    base = 1000
    sums = (np.arange(base)[:, None] + np.arange(base)[None, :]).ravel()
    counts = np.bincount(sums)
    levels = make_task("addition", n_digits=3, n_train=100, n_test=10).chance_levels(2.0)
    assert levels["exact_match"] == pytest.approx(counts.max() / sums.size, rel=1e-12)
    window = np.convolve(counts, np.ones(5))  # every ±2 window of sums, each centre
    assert levels["tolerance_match"] == pytest.approx(window.max() / sums.size, rel=1e-12)
    digits = [(np.arange(counts.size) // 10 ** i) % 10 for i in range(4)]
    per_position = [np.bincount(d, weights=counts).max() / sums.size for d in digits]
    assert levels["token_accuracy"] == pytest.approx(np.mean(per_position), rel=1e-12)


@pytest.mark.parametrize("n_symbols,copy_len", [(5, 2), (4, 3)])
def test_induction_chance_counts_every_arrangement(n_symbols, copy_len):
    """Every arrangement of distinct symbols is equally likely: exact match 1/(n)_m, each
    position uniform over the n symbols (not the n + 1 tokens of the vocabulary), counted over
    every arrangement; the task's generated rows (train and held-out test together) are
    exactly those arrangements."""
    task = make_task("induction", n_symbols=n_symbols, copy_len=copy_len, n_train=20_000, n_test=5)
    arrangements = list(itertools.permutations(range(n_symbols), copy_len))
    counted = best_constant(np.array(arrangements))  # the population, each arrangement once
    levels = task.chance_levels()
    assert levels["exact_match"] == pytest.approx(counted["exact_match"], rel=1e-12)
    assert levels["token_accuracy"] == pytest.approx(counted["token_accuracy"], rel=1e-12)
    assert levels["exact_match"] == pytest.approx(1 / math.perm(n_symbols, copy_len))
    assert levels["token_accuracy"] == pytest.approx(1 / n_symbols)
    answers, _ = population(task)
    assert {tuple(int(t) for t in r) for r in answers} == set(arrangements)


def test_notebook_chance_matches_its_audit():
    """The notebook's 42 (start, step) pairs: the audit's best constant guess, 16, scores 35.7%
    under ±2 (15 of 42); exact match is 3 of 42 (13 … 18 are reached by every step). Counted
    over the pairs by hand, and over a large generated training split within its noise."""
    task = make_task("notebook-arithmetic", n_train=20_000)
    levels = task.chance_levels(2.0)
    fifth = [a + 4 * d for a in range(1, 15) for d in range(1, 4)]
    assert len(fifth) == 42
    assert levels["exact_match"] == pytest.approx(max(fifth.count(t) for t in fifth) / 42)
    assert levels["exact_match"] == pytest.approx(3 / 42)
    assert levels["tolerance_match"] == pytest.approx(sum(abs(t - 16) <= 2 for t in fifth) / 42)
    assert levels["tolerance_match"] == pytest.approx(15 / 42)
    assert levels["token_accuracy"] == levels["exact_match"]  # one answer token
    answers, values = task.train.answers_NA(), task.train.target_value_N
    sampled = best_constant(answers, values, 2.0, guesses=range(-10, 90))
    for key in ("exact_match", "tolerance_match"):
        p = levels[key]
        assert abs(sampled[key] - p) < 5 * math.sqrt(p * (1 - p) / answers.shape[0]), key


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("tolerance", [0.0, 2.0, 7.0])
def test_arithmetic_chance_counts_every_pair(reverse, tolerance):
    """The fifth term start + 4·step is not uniform; the best constant is counted over every
    (start, step) pair as the task's rows write it (multi-digit answers)."""
    task = make_task("arithmetic", max_start=30, max_step=4, n_test=20, reverse=reverse)
    answers, values = population(task)
    assert answers.shape[0] == 30 * 4
    width = task.params["width"]
    counted = best_constant(answers, values, tolerance, guesses=range(10 ** width))
    levels = task.chance_levels(tolerance)
    for key in ("exact_match", "token_accuracy", "tolerance_match"):
        assert levels[key] == pytest.approx(counted[key], rel=1e-12), key


def test_a_task_that_cannot_say_reads_zero():
    task = make_task("addition", n_digits=1, n_train=50, n_test=10)
    import dataclasses
    silent = dataclasses.replace(task, chance_fn=None)
    assert silent.chance_levels() == {"exact_match": 0.0, "tolerance_match": 0.0, "token_accuracy": 0.0}


# --- the analysis reads them ----------------------------------------------------------------------

PARITY_SPEC = StudySpec(task="sparse-parity", family="depth", seeds=(0, 1, 2), threshold=0.75,
                        n_boot=50, task_knobs={"n_train": 2000})
N_ITEMS = 1600  # 16 subtasks × 100 test items


def rows_from(scale_M, em_MS, nll_MS, n=N_ITEMS):
    """Result rows as a study writes them (the metrics the analysis reads), one per size and seed;
    per-token accuracy equals exact match (one answer token)."""
    rows = []
    for m, size in enumerate(scale_M):
        for s, (em, nll) in enumerate(zip(em_MS[m], nll_MS[m])):
            succ = float(round(em * n))
            rate = succ / n
            metrics = {"answer_nll_per_token": float(nll), "answer_log_likelihood": -float(nll),
                       "answer_probability": math.exp(-nll), "edit_distance": 1 - rate,
                       "predicted_exact_match": math.exp(-nll)}
            for key in ("exact_match", "token_accuracy"):
                metrics.update({key: rate, f"{key}_successes": succ, f"{key}_n": float(n),
                                f"{key}_lo": rate, f"{key}_hi": rate})
            rows.append({"params": float(size), "seed": s, "name": f"m{m}", "run_id": f"m{m}-s{s}",
                         "steps": 10, "batch_size": 8, "metrics": metrics})
    return rows


SCALE = np.logspace(3, 6, 5)


def parity_at_chance():
    """Sparse parity that is never learned: the smallest models often write no valid bit
    (exact match ~0.3), the others guess (0.5 give or take the test set's noise), while the
    answer loss falls slowly towards ln 2."""
    em = 0.5 + np.array([[0, .01, -.01], [.005, -.005, 0], [.01, 0, -.01], [-.005, .005, 0],
                         [0, .01, -.005]])
    em[0] = [0.30, 0.32, 0.28]
    nll = np.repeat((1.2 * (SCALE / 1e3) ** -0.08)[:, None], 3, axis=1)
    return rows_from(SCALE, em, nll)


def test_parity_at_chance_reads_no_transition(tmp_path):
    """Held at 0, the fits read this series as a rise with an identified midpoint (1.7e5) and the
    verdict as "metric-induced" (the climb from 0.3 to 0.5 is 12 standard errors); at the
    task's chance level, 1/2, it is what it is: no transition, no midpoint, no forecast."""
    task = build_task("sparse-parity", 0, PARITY_SPEC.task_knobs)
    a = analyse_and_write(parity_at_chance(), PARITY_SPEC, task, tmp_path, figures=False)
    assert a["verdict"]["label"] == "no transition"
    assert a["verdict"]["chance"] == 0.5
    for kind in ("logistic", "gompertz"):
        fit = a["series"]["exact_match"][kind]
        assert fit["floor"] == 0.5 and fit["chance"] == 0.5
        assert not fit["identified"], (kind, fit["midpoint"])
    assert a["forecast"]["scale"] is None or not np.isfinite(a["forecast"]["scale"])
    assert "nowhere clearly above chance (0.5)" in " ".join(a["notes"])
    on_disk = json.loads((tmp_path / "analysis.json").read_text())
    assert on_disk["chance"] == {"exact_match": 0.5, "token_accuracy": 0.5}
    summary = (tmp_path / "summary.md").read_text()
    assert "**chance levels**" in summary and "exact match 0.5, per-token accuracy 0.5" in summary
    assert "floor 0.5 (chance)" in summary
    assert "never rises clearly above chance (0.5) or its level at the first size" in summary


def test_verdict_measures_the_rise_from_chance():
    """The same series through ``emergence_verdict``: from the first size (the old baseline) the
    climb to chance is a transition; from chance it is none."""
    from jaxscale.fit.emergence import emergence_verdict

    rows = parity_at_chance()
    scale = np.array([r["params"] for r in rows])
    s = np.array([r["metrics"]["exact_match_successes"] for r in rows])
    n = np.full(s.size, float(N_ITEMS))
    nll = np.array([r["metrics"]["answer_nll_per_token"] for r in rows])
    assert emergence_verdict(scale, s / n, nll, successes=s, trials=n).label != "no transition"
    v = emergence_verdict(scale, s / n, nll, successes=s, trials=n, chance=0.5, n_boot=100)
    assert v.label == "no transition" and v.settled and v.chance == 0.5
    assert v.em_rise_z < 3.0
    # a real rise above chance still counts: the largest size learns the task
    s_up = s.copy()
    s_up[-3:] = N_ITEMS
    assert emergence_verdict(scale, s_up / n, nll, successes=s_up, trials=n, chance=0.5).label != "no transition"


def test_a_rise_from_chance_recovers_the_true_midpoint(tmp_path):
    """Exact match 1/2 + 1/2·σ(3·(log10 N − 4.5)): the fit at the chance floor finds the midpoint
    10^4.5 inside its interval; held at 0 it puts it 1.2 decades early (where the curve from 0
    would be halfway to 1, i.e. at chance), and the forecast follows it."""
    from jaxscale.fit.emergence import fit_sigmoid

    true_x0 = 4.5
    x = np.log10(SCALE)
    em = np.repeat((0.5 + 0.5 / (1 + np.exp(-3.0 * (x - true_x0))))[:, None], 3, axis=1)
    nll = np.repeat((0.9 * (SCALE / 1e3) ** -0.6)[:, None], 3, axis=1)
    rows = rows_from(SCALE, em, nll)
    task = build_task("sparse-parity", 0, PARITY_SPEC.task_knobs)
    a = analyse_and_write(rows, PARITY_SPEC, task, tmp_path, figures=False)
    fit = a["series"]["exact_match"]["logistic"]
    assert abs(math.log10(fit["midpoint"]) - true_x0) < 0.02
    assert fit["midpoint_ci"][0] <= 10 ** true_x0 <= fit["midpoint_ci"][1]
    assert fit["identified"] and fit["floor"] == 0.5
    assert abs(math.log10(a["forecast"]["scale"]) - true_x0) < 0.1  # 0.75 is crossed at x0
    assert a["verdict"]["label"] != "no transition"
    # the same counts held at a floor of 0 misplace it, far outside their own interval
    scale = np.array([r["params"] for r in rows])
    s = np.array([r["metrics"]["exact_match_successes"] for r in rows])
    zero = fit_sigmoid(scale, s, np.full(s.size, float(N_ITEMS)), floor=0.0, n_boot=50)
    assert true_x0 - math.log10(zero.midpoint) > 0.5
    assert not zero.midpoint_ci[0] <= 10 ** true_x0 <= zero.midpoint_ci[1]


def test_a_threshold_at_or_below_chance_is_refused_by_name(tmp_path):
    """Sparse parity with the default threshold 0.5: guessing crosses it. Refused before any
    training (``prepare``), before ``--eval-only`` recomputes anything, and by the analysis."""
    from jaxscale.emergence_study import eval_only, prepare

    spec = StudySpec(task="sparse-parity", family="depth", seeds=(0, 1, 2), threshold=0.5,
                     task_knobs={"n_train": 2000})
    message = r"threshold: 0.5 lies at or below the chance level of task 'sparse-parity' \(a constant answer scores exact match 0.5\)"
    with pytest.raises(ValueError, match=message):
        prepare(spec)
    (tmp_path / "study.json").write_text(json.dumps(spec.to_dict()))
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(ValueError, match="study.json: " + message):
        eval_only(tmp_path, figures=False)
    task = build_task("sparse-parity", 0, spec.task_knobs)
    with pytest.raises(ValueError, match="at or below the chance level of exact match, 0.5"):
        analyse_and_write(parity_at_chance(), spec, task, tmp_path / "a", figures=False)
    assert not (tmp_path / "a").exists()
    prepare(PARITY_SPEC)  # 0.75 lies above chance


def test_a_score_table_threshold_at_chance_has_no_crossing():
    """A published 2-way benchmark at chance, 0.49 … 0.51: with the threshold at chance (0.5) the
    noise "crossed" it; guessing alone reaches it, so there is no crossing to report."""
    from jaxscale.fit.emergence import measure_emergent_ability

    sizes = [1e8, 1e9, 1e10, 1e11]
    report = measure_emergent_ability(sizes, {"2-way": [0.49, 0.50, 0.51, 0.50]}, 0.5, chance=0.5,
                                      n_boot=0)
    c = report["2-way"].crossing
    assert c.status == "threshold at or below chance" and math.isnan(c.scale)


def test_a_tolerance_that_guessing_always_meets_is_not_fitted(tmp_path):
    """Modular addition mod 5 under ±2: every guess is within 2 of every residue 0 … 4, so the
    tolerance match is 1 whatever the model; fitted against 0 it made a transition of it."""
    task = make_task("modular-addition", p=5, train_fraction=0.6)
    rows = parity_at_chance()
    em = np.array([0.15, 0.2, 0.25, 0.5, 0.9])
    for r in rows:
        m = int(r["name"][1:])
        succ = float(round(em[m] * N_ITEMS))
        r["metrics"].update({key: succ / N_ITEMS for key in ("exact_match", "token_accuracy")})
        r["metrics"].update({"exact_match_successes": succ, "token_accuracy_successes": succ,
                             "tolerance_match": 1.0, "tolerance_match_successes": float(N_ITEMS),
                             "tolerance_match_n": float(N_ITEMS), "tolerance_match_lo": 1.0,
                             "tolerance_match_hi": 1.0})
    spec = StudySpec(task="modular-addition", family="depth", seeds=(0, 1, 2), n_boot=0,
                     task_knobs={"p": 5, "train_fraction": 0.6})
    a = analyse_and_write(rows, spec, task, tmp_path, figures=False)
    assert "tolerance_match" not in a["series"]
    assert "tolerance match: not fitted, a constant answer already scores 1" in a["notes"]
    assert a["chance"] == {"exact_match": 0.2, "tolerance_match": 1.0, "token_accuracy": 0.2}
    assert a["series"]["exact_match"]["logistic"]["floor"] == 0.2
    assert task.chance_levels(2.0)["tolerance_match"] == 1.0


def _verdict_of(em_MS, n, nll_M, chance):
    from jaxscale.fit.emergence import emergence_verdict

    em_MS = np.asarray(em_MS, float)
    k = em_MS.shape[1]
    scale = np.repeat(np.logspace(3, 6, em_MS.shape[0]), k)
    s = np.round(em_MS.reshape(-1) * n)
    return emergence_verdict(scale, s / n, np.repeat(nll_M, k), successes=s, trials=np.full(s.size, n),
                             chance=chance)


def test_a_rise_from_chance_is_not_hidden_by_a_scattered_first_size_below_chance():
    """Small parity models that do not yet write a valid bit (seeds at 0, 0.3, 0.5) under larger
    ones at 0.5, 0.65, 0.8: the rise is measured from chance, and so is its error; the first
    size's seed spread once made it 1.5 standard errors, "no transition"."""
    nll = 0.7 * np.logspace(0, -1, 5)
    v = _verdict_of([[0.0, 0.3, 0.5], [0.5] * 3, [0.5] * 3, [0.65] * 3, [0.8] * 3], 1600, nll, 0.5)
    assert v.label != "no transition" and v.em_rise == pytest.approx(0.3) and v.em_rise_z > 10


def test_a_rise_measured_from_a_first_size_above_chance_ignores_chance():
    """0.90 → 0.96 on 160 items: measured from the first size (above chance), so chance 1/2 must
    not change the verdict (its binomial error around chance once made it "no transition")."""
    nll = 0.5 * np.logspace(0, -1, 5)
    em = [[0.90] * 3, [0.90] * 3, [0.92] * 3, [0.94] * 3, [0.96] * 3]
    at_zero, at_half = _verdict_of(em, 160, nll, 0.0), _verdict_of(em, 160, nll, 0.5)
    assert (at_half.label, at_half.em_rise_z) == (at_zero.label, pytest.approx(at_zero.em_rise_z))
    assert at_half.label != "no transition"


@pytest.mark.parametrize("name,knobs", [("modular-addition", {}), ("addition", {"n_digits": 2}),
                                        ("notebook-arithmetic", {}), ("arithmetic", {})])
def test_tolerance_edges_read_as_the_metric_scores_them(name, knobs):
    """-inf matches nothing (it read 1.0: every non-finite tolerance was taken as +inf), and a
    tolerance past 2^63 matches everything (it raised OverflowError)."""
    from jaxscale.data.tasks import make_task

    task = make_task(name, seed=0, **knobs)
    assert task.chance_levels(float("-inf"))["tolerance_match"] == 0.0
    assert task.chance_levels(-1.0)["tolerance_match"] == 0.0
    assert task.chance_levels(1e300)["tolerance_match"] == 1.0
    assert task.chance_levels(float("inf"))["tolerance_match"] == 1.0


@pytest.mark.parametrize("tolerance", [float("-inf"), -1.0, float("nan"), float("inf")])
def test_a_study_refuses_a_tolerance_that_is_not_a_finite_number_at_least_zero(tolerance):
    from jaxscale.emergence_spec import StudySpec

    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        StudySpec(task="addition", family="depth", seeds=(0, 1, 2), tolerance=tolerance)


def test_eval_only_of_a_study_saved_at_chance_takes_a_threshold(tmp_path, monkeypatch, capsys):
    """A sparse-parity study saved with threshold 0.5 (before chance levels were checked) is
    refused by --eval-only with a message saying how to go on, and --threshold overrides it
    (it was ignored with --eval-only, leaving only a hand edit of study.json)."""
    import json

    import jaxscale.results
    from jaxscale.cli import main
    from jaxscale.emergence_spec import StudySpec
    from jaxscale.emergence_study import eval_only

    spec = StudySpec(task="sparse-parity", family="depth", seeds=(0, 1, 2), threshold=0.5,
                     task_knobs={"n_train": 2000})
    (tmp_path / "study.json").write_text(json.dumps(spec.to_dict()))
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"lies at or below the chance level.*give --threshold"):
        eval_only(tmp_path, figures=False)

    class Past(Exception):
        pass

    def reached(*a, **k):
        raise Past

    monkeypatch.setattr(jaxscale.results, "read_rows", reached)  # the step after the check
    with pytest.raises(Past):
        eval_only(tmp_path, figures=False, threshold=0.75)
    with pytest.raises(Past):
        main(["emergence", "--eval-only", str(tmp_path), "--threshold", "0.75", "--no-figures"])
    assert main(["emergence", "--eval-only", str(tmp_path), "--threshold", "0.5", "--no-figures"]) == 2
    assert "--threshold: 0.5 lies at or below the chance level" in capsys.readouterr().err


@pytest.mark.parametrize("chance", [-0.3, float("nan"), 1.0, 1.5, {"A": 2.0}])
def test_measure_emergent_ability_refuses_a_chance_outside_zero_one_naming_the_column(chance):
    """With two sizes a chance of -0.3, NaN or 1.5 was taken (1.5 silently gave "threshold at
    or below chance"); with three the error named the fit's ``floor``."""
    from jaxscale.fit.emergence import measure_emergent_ability

    with pytest.raises(ValueError, match=r"chance of column 'A': must lie in \[0, 1\)"):
        measure_emergent_ability(np.array([1e6, 1e7]), {"A": np.array([0.1, 0.9])}, chance=chance)


def test_a_series_at_chance_says_its_sharpness_scores_are_noise(tmp_path):
    """BIG-bench's breakthroughness of the parity series at chance (171: a climb from below
    chance to it, then a flat line) stood in summary.md beside the verdict "no transition"
    without a word; it is now marked as noise there."""
    task = build_task("sparse-parity", 0, PARITY_SPEC.task_knobs)
    a = analyse_and_write(parity_at_chance(), PARITY_SPEC, task, tmp_path, figures=False)
    assert a["verdict"]["label"] == "no transition"
    line = next(x for x in (tmp_path / "summary.md").read_text().splitlines() if x.startswith("**exact match**"))
    assert "breakthroughness" in line and "(noise: exact match never rises clearly, see the verdict)" in line
