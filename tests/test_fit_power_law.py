"""Power-law fits L = A·N^-α + B: recovery, intervals, prediction, inverse, backtest, errors."""

import warnings

import numpy as np
import pytest

from jaxscale.fit import (ExtrapolationWarning, backtest_power_law, fit_compute_law,
                          fit_power_law)

TRUE = dict(A=400.0, alpha=0.34, B=1.7)
N = np.geomspace(1e5, 1e8, 12)


def law(n, A=TRUE["A"], alpha=TRUE["alpha"], B=TRUE["B"]):
    return A * n ** -alpha + B


def test_noiseless_recovery_to_1e_3():
    fit = fit_power_law(N, law(N), bootstrap=0)
    for k, v in TRUE.items():
        assert getattr(fit, k).value == pytest.approx(v, rel=1e-3), k
    assert fit.converged
    assert fit.r2_log == pytest.approx(1.0, abs=1e-9)
    assert fit.rmse_log < 1e-6
    assert fit.n == N.size and fit.residuals.shape == N.shape


def _coverage(replicates, bootstrap, noise=0.01):
    hits = {k: 0 for k in TRUE}
    for r in range(replicates):
        rng = np.random.default_rng(1000 + r)
        y = law(N) * np.exp(noise * rng.standard_normal(N.size))
        fit = fit_power_law(N, y, bootstrap=bootstrap, seed=r)
        for k, v in TRUE.items():
            lo, hi = getattr(fit, k).ci95
            hits[k] += lo <= v <= hi
    return {k: h / replicates for k, h in hits.items()}


def test_interval_coverage_small():
    cov = _coverage(replicates=6, bootstrap=100)
    assert all(c >= 0.75 for c in cov.values()), cov


@pytest.mark.slow
def test_interval_coverage_50_replicates():
    cov = _coverage(replicates=50, bootstrap=200)
    assert all(c >= 0.90 for c in cov.values()), cov


def test_noisy_fit_intervals_bracket_estimate_and_se():
    rng = np.random.default_rng(7)
    y = law(N) * np.exp(0.01 * rng.standard_normal(N.size))
    fit = fit_power_law(N, y, bootstrap=100, seed=3)
    for k in TRUE:
        e = getattr(fit, k)
        assert e.ci95[0] <= e.value <= e.ci95[1]
        assert e.se > 0
    assert fit.bootstrap_params.shape == (100, 3)
    val, lo, hi = fit.predict(N, band=True)
    assert np.all(lo <= val + 1e-12) and np.all(val <= hi + 1e-12)


def test_seed_losses_are_resampled():
    rng = np.random.default_rng(11)
    seeds = law(N)[:, None] * np.exp(0.02 * rng.standard_normal((N.size, 3)))
    seeds[0, 2] = np.nan  # a point with fewer seeds
    y = np.nanmean(seeds, axis=1)
    fit = fit_power_law(N, y, bootstrap=100, seed_losses=seeds)
    assert fit.n_bootstrap == 100 and np.all(np.isfinite(fit.bootstrap_params))


def test_predict_inverse_roundtrip_and_irreducible_error():
    fit = fit_power_law(N, law(N), bootstrap=0)
    assert fit.predict(1e6) == pytest.approx(law(1e6), rel=1e-6)
    target = law(3e6)
    assert fit.inverse(target) == pytest.approx(3e6, rel=1e-3)
    with pytest.raises(ValueError, match="irreducible"):
        fit.inverse(fit.B.value)
    with pytest.raises(ValueError, match="irreducible"):
        fit.inverse(1.0)


def test_improvement_figures():
    fit = fit_power_law(N, law(N), bootstrap=0)
    imp = fit.improvement()
    assert list(imp) == [2.0, 5.0, 10.0, 100.0, 1000.0]
    ref = N.max()
    for k, v in imp.items():
        assert v["reducible_pct"] == pytest.approx(100 * (1 - k ** -TRUE["alpha"]), rel=1e-3)
        assert v["total_pct"] == pytest.approx(100 * (1 - law(k * ref) / law(ref)), rel=1e-3)
    # more parameters always lower the loss, but never below B
    totals = [v["total_pct"] for v in imp.values()]
    assert totals == sorted(totals) and totals[-1] < 100 * (1 - TRUE["B"] / law(ref))


def test_extrapolation_warning():
    fit = fit_power_law(N, law(N), bootstrap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.predict(N.max() * 5)  # half a decade: no warning
    with pytest.warns(ExtrapolationWarning, match="decades"):
        fit.predict(N.max() * 100)


def test_backtest_reports_error_and_warns_far_out():
    x = np.concatenate([N, [1e10]])
    with pytest.warns(ExtrapolationWarning):
        bt = backtest_power_law(x, law(x), holdout=1, bootstrap=0)
    assert bt.decades[0] == pytest.approx(2.0)
    assert abs(bt.rel_error[0]) < 1e-3
    bt2 = backtest_power_law(N, law(N) * (1 + 0.05 * (N >= N[-2])), holdout=2, bootstrap=0)
    assert bt2.x_held.size == 2 and bt2.mean_abs_rel_error > 0.02


def test_compute_form_names():
    C = np.geomspace(1e15, 1e19, 10)
    fit = fit_compute_law(C, 2.0 + 3e3 * C ** -0.25, bootstrap=0)
    assert fit.form == "compute"
    assert fit.E.value == pytest.approx(2.0, rel=1e-3)
    assert fit.gamma.value == pytest.approx(0.25, rel=1e-3)
    assert fit.k.value == pytest.approx(3e3, rel=1e-2)
    assert set(fit.to_json()) >= {"k", "gamma", "E", "r2_log", "rmse_log", "n"}


@pytest.mark.parametrize("x, y, match", [
    ([1e5, 1e6, 1e7], [3.0, 2.5, 2.2], "x: need at least 4"),
    ([1e5, 1e6, 1e7, np.nan], [3.0, 2.5, 2.2, 2.0], "x: .*NaN"),
    ([1e5, 1e6, 1e7, 1e8], [3.0, 2.5, np.inf, 2.0], "y: .*NaN or infinite"),
    ([1e5, -1e6, 1e7, 1e8], [3.0, 2.5, 2.2, 2.0], "x: .*> 0"),
    ([1e5, 1e6, 1e7, 1e8], [3.0, 0.0, 2.2, 2.0], "y: .*> 0"),
    ([1e5, 1e6, 1e7, 1e8, 1e9], [3.0, 2.5, 2.2, 2.0], "mismatched lengths"),
])
def test_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y, bootstrap=0)
