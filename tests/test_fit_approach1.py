"""Chinchilla Approach 1 (Hoffmann et al. 2022): the envelope of each size's loss against
compute, read at each budget; what each point of the fit means (its own compute, once), and which
budgets it cannot use."""

import numpy as np
import pytest

from chinchilla_data import isoflop_single_runs
from jaxscale.fit import HOFFMANN_2022, IntermediatePointsWarning, IsoFLOPGridWarning, fit_approach1


def _approach1_runs(law=HOFFMANN_2022):
    sizes = np.geomspace(1e7, 1e10, 31)
    N, D = [], []
    for n in sizes:
        for tpp in np.geomspace(1, 400, 25):  # end-of-schedule points of runs of many lengths
            N.append(n)
            D.append(tpp * n)
    N, D = np.array(N), np.array(D)
    return N, D, law.loss(N, D)


def test_approach1_envelope_recovers_exponent():
    N, D, L = _approach1_runs()
    fit = fit_approach1(N, D, L, budgets=np.geomspace(1e17, 1e20, 8))
    assert fit.a.value == pytest.approx(HOFFMANN_2022.a, abs=0.03)
    assert fit.b.value == pytest.approx(HOFFMANN_2022.b, abs=0.03)
    assert fit.budgets.size == 8


@pytest.mark.filterwarnings("ignore::jaxscale.fit.IsoFLOPGridWarning")  # edge budgets, tested below
def test_approach1_warns_on_intermediate_points():
    N, D, L = _approach1_runs()
    run_id = [f"size{n:.3g}" for n in N]  # every point of one size from one run
    with pytest.warns(IntermediatePointsWarning, match="run_id"):
        fit_approach1(N, D, L, run_id=run_id)
    with pytest.warns(IntermediatePointsWarning, match="intermediate"):
        fit_approach1(N, D, L, intermediate=np.arange(N.size) % 2 == 0)


# --- Approach 1: what each point means --------------------------------------------------------

def test_approach1_records_a_single_run_at_its_own_compute_and_once():
    """A size with one run used to count at every grid budget within half a bin of it, recorded
    at the grid budget (up to ~1.5x off its real compute), so one run at C = 1e19 stood at both
    7.0e18 and 1.4e19, and a came out 0.415 [0.235, 0.596] against the true 0.4565."""
    N, D, L = isoflop_single_runs()
    fit = fit_approach1(N, D, L)
    assert np.allclose(fit.budgets, np.geomspace(1e17, 1e21, 5), rtol=1e-9)
    assert np.unique(fit.n_opt_points).size == fit.n_opt_points.size  # no run at two budgets
    for c, n, d in zip(fit.budgets, fit.n_opt_points, fit.d_opt_points):
        i = np.argmin(np.abs(N / n - 1))
        assert N[i] == n and d == pytest.approx(D[i], rel=1e-9)  # a real run, where it ran
        assert n == pytest.approx(HOFFMANN_2022.n_opt(c), rel=1e-9)
    assert fit.a.value == pytest.approx(HOFFMANN_2022.a, abs=1e-6)


def test_approach1_averages_rows_repeated_at_one_n_and_d():
    """Seeds given as separate rows (the same N and D) are one point: averaged. They used to make
    every size a "two-run" size spanning no compute, which no budget matched: "found optima at
    0 budget(s)"."""
    N, D, L = isoflop_single_runs()
    once = fit_approach1(N, D, L)
    twice = fit_approach1(np.r_[N, N], np.r_[D, D], np.r_[L * 0.99, L * 1.01])
    assert twice.a.value == pytest.approx(once.a.value, abs=1e-9)
    assert np.allclose(twice.loss_opt_points, once.loss_opt_points, rtol=1e-12)


def test_approach1_needs_two_distinct_budgets():
    """All runs on one IsoFLOP used to give a = 0.2222 [-inf, inf] (a line through one x)."""
    C = 1e20
    N = HOFFMANN_2022.n_opt(C) * np.geomspace(0.1, 10, 7)
    D = C / (6 * N)
    with pytest.raises(ValueError, match="compute: every run has C = 6\\*N\\*D within 10% of 1e\\+20"):
        fit_approach1(N, D, HOFFMANN_2022.loss(N, D))
    N, D, L = _approach1_runs()
    with pytest.raises(ValueError, match="found optima at 1 budget"):
        fit_approach1(N, D, L, budgets=[1e19, 1e19, 1e19])


def test_approach1_skips_a_budget_whose_best_size_is_an_edge():
    """At C = 1.74e17 only the two smallest of 13 sizes ran (1e7, 1.78e7); the envelope picked
    the larger, 1.78e7, against a true N_opt of 4.26e7: a bound, not an optimum. A budget with
    fewer than 3 sizes is skipped (as Approach 2 skips such a profile), one whose best size is an
    edge with a warning (5.03e17: sizes 1e7..5.62e7 ran, 5.62e7 was best); the exponent was
    0.496 with them, 0.4565 is true."""
    N, D = np.meshgrid(np.geomspace(1e7, 1e10, 13), np.geomspace(1e9, 1e12, 16))
    N, D = N.ravel(), D.ravel()
    L = HOFFMANN_2022.loss(N, D)
    with pytest.warns(IsoFLOPGridWarning, match=r"Approach 1: skipped 1 budget\(s\) \(C = 5.03e\+17\)"):
        fit = fit_approach1(N, D, L)
    assert fit.notes and "smallest or largest" in fit.notes[0]
    assert fit.budgets.min() > 1e18 and fit.budgets.max() < 1e22
    C = 6 * N * D
    for c, n in zip(fit.budgets, fit.n_opt_points):
        run_there = N[(C.min() <= c) & (6 * N * D.max() >= c) & (6 * N * D.min() <= c)]
        assert run_there.min() < n < run_there.max()
    assert fit.a.value == pytest.approx(HOFFMANN_2022.a, abs=0.01)
    # the loss rising with N everywhere: every budget's best is the smallest size
    L_up = 2 + 400 / D ** 0.3 + 0.3 * (N / 1e7) ** 0.1
    with pytest.warns(IsoFLOPGridWarning), pytest.raises(ValueError, match="smallest or largest"):
        fit_approach1(N, D, L_up)
