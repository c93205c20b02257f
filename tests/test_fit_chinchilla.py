"""Chinchilla Approaches 1-3 (Hoffmann et al. 2022) against synthetic laws and the published
replication data (Besiroglu et al. 2024, arXiv:2404.10102; targets T3-T5 of the reference notes).
"""

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

from chinchilla_data import isoflop_data, isoflop_single_runs
from jaxscale.fit import (HOFFMANN_2022, ChinchillaLaw,
                          IsoFLOPGridWarning, fit_approach1, fit_approach2, fit_approach3,
                          hoffmann_grid, surface_isoflop_optima)

REFERENCE = (Path(__file__).resolve().parents[2] / "shared" / "reference"
             / "epoch_chinchilla_svg_extracted_data.csv")


def synthetic_grid(law=HOFFMANN_2022, n_sizes=12, n_tokens=12):
    N, D = np.meshgrid(np.geomspace(5e7, 1.6e10, n_sizes), np.geomspace(2.5e8, 3e11, n_tokens))
    N, D = N.ravel(), D.ravel()
    return N, D, law.loss(N, D)


def test_hoffmann_grid_is_4500_starts():
    g = hoffmann_grid()
    assert g.shape == (4500, 5)
    assert sorted(set(g[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(g[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(g[:, 3])) == [0, 0.5, 1, 1.5, 2]


def test_noiseless_recovery_to_1e_3():
    N, D, L = synthetic_grid()
    fit = fit_approach3(N, D, L)
    for k in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, k).value == pytest.approx(getattr(HOFFMANN_2022, k), rel=1e-3), k
    assert fit.a.value == pytest.approx(HOFFMANN_2022.a, rel=1e-3)
    assert fit.G.value == pytest.approx(HOFFMANN_2022.G, rel=1e-3)
    assert fit.n == 144 and fit.n_starts == 4500 and fit.converged


def _a3_coverage(replicates, bootstrap, noise=0.003):
    true = {k: getattr(HOFFMANN_2022, k) for k in ("E", "A", "B", "alpha", "beta")}
    hits = {k: 0 for k in true}
    N, D, L = synthetic_grid()
    for r in range(replicates):
        rng = np.random.default_rng(500 + r)
        y = L * np.exp(noise * rng.standard_normal(L.size))
        fit = fit_approach3(N, D, y, bootstrap=bootstrap, seed=r)
        for k, v in true.items():
            lo, hi = getattr(fit, k).ci95
            hits[k] += lo <= v <= hi
    return {k: h / replicates for k, h in hits.items()}


def test_a3_interval_coverage_small():
    cov = _a3_coverage(replicates=3, bootstrap=200)
    assert all(c >= 2 / 3 for c in cov.values()), cov


@pytest.mark.slow
def test_a3_interval_coverage_50_replicates():
    cov = _a3_coverage(replicates=50, bootstrap=200)
    assert all(c >= 0.90 for c in cov.values()), cov


def _reference_points():
    if not REFERENCE.exists():
        pytest.skip(f"reference data not present at {REFERENCE}")
    with REFERENCE.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    N = np.array([float(r["Model Size"]) for r in rows])
    C = np.array([float(r["Training FLOP"]) for r in rows])
    L = np.array([float(r["loss"]) for r in rows])
    keep = L < np.sort(L)[-5]  # Epoch drops the 5 highest losses: 240 points remain
    return N[keep], C[keep] / (6 * N[keep]), L[keep]


@pytest.fixture(scope="module")
def reference_fit():
    N, D, L = _reference_points()
    return fit_approach3(N, D, L, bootstrap=1000, seed=0)


def test_reference_t3_parameters(reference_fit):
    # T3 (Besiroglu et al. 2024 replication, sum of Huber terms, delta 1e-3, 4,500 starts):
    # A 477.8, B 2143.4, E 1.8172, alpha 0.3473, beta 0.3672, objective 1.0183e-3.
    f = reference_fit
    assert f.n == 240
    assert f.alpha.value == pytest.approx(0.3473, rel=5e-3)
    assert f.beta.value == pytest.approx(0.3672, rel=5e-3)
    assert f.E.value == pytest.approx(1.8172, rel=5e-3)
    assert f.A.value == pytest.approx(477.8, rel=2e-2)
    assert f.B.value == pytest.approx(2143.4, rel=2e-2)
    assert f.objective == pytest.approx(1.0183e-3, rel=1e-3)
    assert f.floor_identified  # Hoffmann's data place E well inside


def test_reference_t4_bootstrap_standard_errors(reference_fit):
    # T4: SEs alpha 0.0154, beta 0.0206, E 0.0257 (4,000 resamples); a = 0.513 +- 0.020.
    f = reference_fit
    assert f.alpha.se == pytest.approx(0.0154, rel=0.15)
    assert f.beta.se == pytest.approx(0.0206, rel=0.15)
    assert f.E.se == pytest.approx(0.0257, rel=0.15)
    assert f.a.se == pytest.approx(0.020, rel=0.15)
    assert f.alpha.ci95 == pytest.approx((0.317, 0.373), abs=0.01)
    assert f.beta.ci95 == pytest.approx((0.331, 0.415), abs=0.015)


def test_derived_quantities_and_allocation_consistency():
    N, D, L = synthetic_grid()
    fit = fit_approach3(N, D, L)
    al, be = fit.alpha.value, fit.beta.value
    assert fit.a.value == pytest.approx(be / (al + be))
    assert fit.b.value == pytest.approx(al / (al + be))
    C = np.array([1e20, 1e22, 1e24])
    assert np.allclose(6 * fit.n_opt(C) * fit.d_opt(C) / C, 1.0, atol=1e-12)
    assert fit.n_opt(1e22) == pytest.approx(fit.G.value * (1e22 / 6) ** fit.a.value)
    assert fit.d_opt(1e22) == pytest.approx((1e22 / 6) ** fit.b.value / fit.G.value)
    js = fit.to_json()
    assert {"E", "A", "B", "alpha", "beta", "a", "b", "G"} <= set(js)


def test_t5_approach2_bias_on_hoffmann_surface():
    # T5 uses the paper's rounded parameters (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28):
    # 5 IsoFLOP budgets 1e17..1e21, 15 sizes on a +-16x grid -> D_opt(1e24) ~ 3.83e12 vs 4.04e12.
    law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    N, D, L = isoflop_data(law, np.geomspace(1e17, 1e21, 5))
    with pytest.warns(IsoFLOPGridWarning, match="spans 256x"):
        fit = fit_approach2(N, D, L)
    assert law.d_opt(1e24) == pytest.approx(4.04e12, rel=5e-3)
    assert fit.d_opt(1e24) == pytest.approx(3.83e12, rel=1e-2)
    assert fit.d_opt(1e24) / law.d_opt(1e24) - 1 == pytest.approx(-0.051, abs=0.005)
    # with alpha = beta the parabola is unbiased
    sym = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.3, beta=0.3)
    N, D, L = isoflop_data(sym, np.geomspace(1e17, 1e21, 5))
    with pytest.warns(IsoFLOPGridWarning):
        fit = fit_approach2(N, D, L)
    assert fit.d_opt(1e24) == pytest.approx(sym.d_opt(1e24), rel=1e-6)


def test_approach2_narrow_centred_grid_is_accurate_and_quiet():
    N, D, L = isoflop_data(HOFFMANN_2022, np.geomspace(1e18, 1e22, 5), span=3.0, n=9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IsoFLOPGridWarning)
        fit = fit_approach2(N, D, L)
    assert fit.a.value == pytest.approx(HOFFMANN_2022.a, abs=0.01)
    assert fit.a.value + fit.b.value == pytest.approx(1.0)
    assert fit.to_json()["n_budgets"] == 5


def test_approach2_off_centre_grid_warns():
    N, D, L = isoflop_data(HOFFMANN_2022, np.geomspace(1e18, 1e22, 4), span=3.0, n=9,
                           centre_shift=2.5)
    with pytest.warns(IsoFLOPGridWarning, match="edge|off-centre"):
        fit_approach2(N, D, L)


def test_surface_isoflop_optima_matches_closed_form():
    C = np.array([1e18, 1e21, 1e24])
    n_opt, d_opt = surface_isoflop_optima(HOFFMANN_2022, C)
    assert np.allclose(n_opt, HOFFMANN_2022.n_opt(C), rtol=1e-6)
    assert np.allclose(6 * n_opt * d_opt, C, rtol=1e-12)


@pytest.mark.parametrize("N, D, L, match", [
    ([1e8] * 3, [1e9] * 3, [3.0] * 3, "N: need at least 6"),
    ([1e8] * 6, [1e9] * 7, [3.0] * 6, "mismatched lengths"),
    ([1e8] * 5 + [np.nan], [1e9] * 6, [3.0] * 6, "N: .*NaN"),
    ([1e8] * 6, [1e9] * 5 + [0.0], [3.0] * 6, "D: .*> 0"),
    ([1e8] * 6, [1e9] * 6, [3.0] * 5 + [-1.0], "loss: .*> 0"),
])
def test_bad_input(N, D, L, match):
    with pytest.raises(ValueError, match=match):
        fit_approach3(N, D, L)


# The default CPU study's runs (2026-12-04: total parameters, tokens, test loss; ladder and
# IsoFLOP grid). Approach 3 puts E at ~0 on them, where its objective is flat in E.
SMALL_LADDER_NDL = np.array([
    [12784, 66560, 2.71113], [16064, 132096, 2.53718], [16064, 622592, 2.15188],
    [16064, 1556480, 1.98912], [16064, 4150272, 1.95053], [19344, 197632, 2.49267],
    [19344, 517120, 2.23400], [19344, 1293312, 1.99897], [19344, 3446784, 1.89750],
    [31456, 256000, 2.32892], [31456, 318464, 2.27097], [31456, 795648, 2.00224],
    [31456, 2119680, 1.80172], [44160, 227328, 2.37082], [44160, 509952, 2.12507],
    [44160, 566272, 2.09636], [44160, 1510400, 1.80769], [56864, 176128, 2.59408],
    [56864, 440320, 2.13182], [56864, 763904, 2.02119], [56864, 1172480, 1.79908],
    [84544, 1133568, 1.76974], [112816, 1698816, 1.62913]])


def test_a3_bootstrap_explores_the_floor_when_e_is_on_its_boundary():
    from jaxscale.fit.chinchilla import ConvergenceWarning
    N, D, L = SMALL_LADDER_NDL.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_approach3(N, D, L, bootstrap=100)
    assert fit.E.value < 1e-3 * L.min()  # the premise: E on its boundary
    assert not fit.floor_identified and fit.to_json()["floor_identified"] is False
    # refits started only at the optimum never left E ~ 0: the interval was [E, E]
    assert fit.E.ci95[1] > 0.1, fit.E.ci95
    assert np.all(np.isfinite(fit.bootstrap_params))
    lo, hi = fit.a.ci95
    assert 0 < lo < fit.a.value < hi < 1.5, fit.a.ci95


def test_a3_bootstrap_keeps_one_warm_start_for_an_interior_optimum():
    from jaxscale.fit.chinchilla import _bootstrap_starts
    law = HOFFMANN_2022
    theta = np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])
    assert _bootstrap_starts(theta, np.array([2.0, 3.0])).shape == (1, 5)
    edge = theta.copy()
    edge[2] = -200.0
    starts = _bootstrap_starts(edge, np.array([2.0, 3.0]))
    assert starts.shape == (2, 5) and starts[1, 2] == pytest.approx(np.log(1.0))


def test_a3_bootstrap_counts_refits_beyond_float64_instead_of_overflowing(monkeypatch):
    """A resample that sends log A past 709 is kept as inf and counted in a named warning, not
    left to numpy's bare "overflow encountered in exp"."""
    from jaxscale.fit import _optim

    N, D, L = synthetic_grid(n_sizes=5, n_tokens=5)
    real = _optim.refit_from_starts

    def with_one_runaway(*args, **kwargs):
        res = real(*args, **kwargs)
        params = res.params.copy()
        params[0, 0] = 800.0  # log A of the first resample
        return _optim.LBFGSResult(params, res.values, res.grad_norms, res.converged, res.iterations)

    monkeypatch.setattr(_optim, "refit_from_starts", with_one_runaway)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_approach3(N, D, L, bootstrap=8)
    messages = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert any("1 of 8 bootstrap refits put E, A or B beyond float64's range" in m for m in messages), messages
    assert not any(m.startswith("RuntimeWarning") for m in messages), messages
    assert np.isinf(fit.bootstrap_params[0, 1]) and np.isfinite(fit.bootstrap_params[1:, 1]).all()


@pytest.mark.parametrize("fit", [fit_approach1, fit_approach2, fit_approach3])
def test_level_must_be_a_fraction(fit):
    """level=95 used to give NaN intervals (Approach 1) or be ignored (Approach 3)."""
    N, D, L = isoflop_single_runs()
    with pytest.raises(ValueError, match=r"^level: must lie in \(0, 1\), got 95$"):
        fit(N, D, L, level=95)


# --- Approach 3: what the data can identify -------------------------------------------------

@pytest.mark.parametrize("n_values, d_values, name", [
    (np.full(8, 1e8), np.geomspace(1e9, 1e11, 8), "N"),
    (np.repeat([1e8, 1e9], 4), np.geomspace(1e9, 1e11, 8), "N"),
    (np.geomspace(1e7, 1e9, 8), np.full(8, 1e10), "D"),
])
def test_a3_needs_three_distinct_sizes_and_token_counts(n_values, d_values, name):
    """One size used to return the starting values (A 148.4, alpha 1) as converged, and
    N_opt(1e21) = 3.7e4 against a true 2.2e9."""
    with pytest.raises(ValueError, match=f"^{name}: Approach 3 needs at least 3 distinct values"):
        fit_approach3(n_values, d_values, HOFFMANN_2022.loss(n_values, d_values))


def _loss_rising_in_n():
    N, D = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 5))
    N, D = N.ravel(), D.ravel()
    return N, D, 2 + 400 / D ** 0.3 + 0.3 * (N / 1e7) ** 0.1


def test_a3_without_a_frontier_warns_and_says_so():
    from jaxscale.fit.chinchilla import NoFrontierWarning
    N, D, L = _loss_rising_in_n()
    with pytest.warns(NoFrontierWarning, match="alpha = -0.1 <= 0"):
        fit = fit_approach3(N, D, L)
    assert fit.alpha.value == pytest.approx(-0.1, abs=1e-4)
    assert not fit.has_frontier and fit.to_json()["has_frontier"] is False
    with pytest.raises(ValueError, match="alpha"):
        fit.n_opt(1e21)


def test_a3_scale_beyond_float64_is_inf_not_an_overflow_error(monkeypatch):
    """A best fit with log A > 709 used to raise OverflowError from math.exp."""
    from jaxscale.fit import _optim
    from jaxscale.fit.chinchilla import NoFrontierWarning

    N, D, L = synthetic_grid(n_sizes=5, n_tokens=5)
    real = _optim.run_lbfgs

    def runaway(*args, **kwargs):
        res = real(*args, **kwargs)
        if kwargs.get("max_iter") != 1000:  # only the final float64 phase
            return res
        params = res.params.copy()
        params[:, 0] = 800.0
        return _optim.LBFGSResult(params, res.values, res.grad_norms, res.converged, res.iterations)

    monkeypatch.setattr(_optim, "run_lbfgs", runaway)
    with pytest.warns(NoFrontierWarning, match="A = inf is beyond float64's range"):
        fit = fit_approach3(N, D, L)
    assert fit.A.value == np.inf and not fit.has_frontier


def test_a3_has_frontier_on_a_real_law():
    N, D, L = synthetic_grid(n_sizes=5, n_tokens=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_approach3(N, D, L)
    assert fit.has_frontier and fit.to_json()["has_frontier"] is True


def test_a3_bootstrap_interval_reaches_inf_when_a_refit_does(runaway_resample):
    """A resample whose A overflowed to inf used to be dropped from A's interval and SE, so the
    upper bound was the largest finite refit."""
    import json

    from jaxscale.fit.chinchilla import ConvergenceWarning
    from jaxscale.results import _jsonable

    N, D, L = synthetic_grid(n_sizes=5, n_tokens=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_approach3(N, D, L, bootstrap=8)
    assert fit.A.ci95[1] == np.inf and fit.A.se == np.inf
    assert np.isfinite(fit.A.ci95[0]) and np.isfinite(fit.alpha.se)
    assert "inf]" in str(fit.A)
    json.dumps(_jsonable(fit.to_json()), allow_nan=False)
