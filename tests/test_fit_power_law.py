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


# A small CPU ladder (the default study of 2026-12-04: test loss per size and seed against total
# parameters). Its loss falls faster than a power law with a floor, so the fit puts B at ~0,
# where the objective is flat in B. Refits warm-started there alone once wandered off to
# alpha ~ 1e8 in 11 of 200 resamples, making the 95% interval [-5e5, 2.5e6].
LADDER_N = np.array([12784, 16064, 19344, 31456, 44160, 56864, 84544, 112816], dtype=float)
LADDER_SEED_LOSSES = np.array([
    [2.63162, 2.79065], [2.53943, 2.53493], [2.53487, 2.45047], [2.31176, 2.34608],
    [2.1305, 2.11964], [2.06898, 1.97341], [1.78014, 1.75935], [1.63283, 1.62542]])


def test_bootstrap_refits_never_end_above_their_start_and_explore_the_floor():
    import jax
    import jax.numpy as jnp

    from jaxscale.fit import _optim
    from jaxscale.fit.power_law import _objective

    y = LADDER_SEED_LOSSES.mean(axis=1)
    fit = fit_power_law(LADDER_N, y, bootstrap=200, seed_losses=LADDER_SEED_LOSSES)
    assert fit.B.value < 1e-6  # the point estimate sits on the boundary (the premise)
    P = fit.bootstrap_params
    assert np.all(np.isfinite(P))
    # every resample's refit is at least as good as the full-data optimum under its weights
    log_x, log_y = np.log(LADDER_N), np.log(y)
    x_ref = log_x.mean()
    n_pad = _optim.padded_size(y.size)
    with _optim.float64():
        shared = (jnp.asarray(_optim.pad(log_x - x_ref, n_pad)), jnp.asarray(_optim.pad(log_y, n_pad)),
                  jnp.asarray(_optim.pad(np.ones_like(y), n_pad)), jnp.asarray(1e-3))
        lane = _optim.bootstrap_lane(y.size, n_pad, 200, 0, LADDER_SEED_LOSSES)
        to_theta = lambda A, alpha, B: jnp.stack([jnp.log(A) - alpha * x_ref, alpha, jnp.log(B)])  # noqa: E731
        at = jax.vmap(lambda th, w, ly: _objective(th, shared, (w, ly)))
        theta_hat = to_theta(fit.A.value, fit.alpha.value, fit.B.value)
        v_start = np.asarray(at(jnp.tile(theta_hat, (200, 1)), *lane))
        v_refit = np.asarray(at(jax.vmap(to_theta)(*jnp.asarray(P).T), *lane))
    assert np.all(v_refit <= v_start * (1 + 1e-9) + 1e-15), np.max(v_refit / v_start)
    lo, hi = fit.alpha.ci95
    assert 0.1 < lo < fit.alpha.value < hi < 3.0, fit.alpha.ci95
    # some resamples prefer a real floor: the interval on B is not stuck at the point estimate
    assert fit.B.ci95[1] > 0.5, fit.B.ci95


def test_floor_identified_says_whether_the_data_place_the_floor():
    """A floor the data show (the recovery law's B = 1.7) is identified; the CPU ladder's loss,
    falling like a pure power law, puts B at ~0, which is flagged, and the flag reaches the JSON."""
    assert fit_power_law(N, law(N), bootstrap=0).floor_identified
    ladder = fit_power_law(LADDER_N, LADDER_SEED_LOSSES.mean(axis=1), bootstrap=0)
    assert not ladder.floor_identified and ladder.to_json()["floor_identified"] is False
    # the threshold: a floor of 1% of the smallest loss is identified, just below it is not
    from jaxscale.fit._optim import FLOOR_BOUNDARY_FRACTION, floor_identified
    assert floor_identified(FLOOR_BOUNDARY_FRACTION * 1.6, [1.6, 2.0])
    assert not floor_identified(0.99 * FLOOR_BOUNDARY_FRACTION * 1.6, [2.0, 1.6])


def test_refit_from_starts_keeps_each_resamples_best_start():
    import jax.numpy as jnp

    from jaxscale.fit import _optim

    # A double well per lane: (x² − 1)² + c·x, c > 0 tilts it so x ≈ −1 is the lower minimum.
    # From x = 0.9 alone, L-BFGS stays in the upper well; with a second start at −0.9 it finds
    # the lower one.
    c = jnp.asarray([0.1, 0.2, 0.3])
    with _optim.float64():
        one = _optim.refit_from_starts(_double_well, np.array([[0.9]]), None, c, 3, max_iter=100)
        two = _optim.refit_from_starts(_double_well, np.array([[0.9], [-0.9]]), None, c, 3,
                                       max_iter=100)
    assert np.all(one.params[:, 0] > 0.5) and np.all(two.params[:, 0] < -0.5)
    assert np.all(two.values < one.values) and two.params.shape == (3, 1)


def _double_well(x, shared, c):
    return (x[0] ** 2 - 1.0) ** 2 + c * x[0]


def test_estimate_of_an_unbounded_bootstrap_has_an_infinite_se_not_an_overflow_warning():
    # an unidentified scale parameter (A of Approach 3 at small scale) can bootstrap to ~1e300
    from jaxscale.fit._optim import make_estimate

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        est = make_estimate(1.0, np.array([1.0, 2.0, 3.0, 1e300]))
    assert est.se == float("inf") and est.ci95[1] > 1e299 and est.ci95[0] >= 1.0


def test_a_bootstrap_past_float_range_bands_without_warnings():
    """A refit at an unidentified exponent (the smoke study's, α ≈ 70) puts A past float range:
    the fit keeps inf for it and the prediction band skips its curve, without RuntimeWarnings
    (they reached the user's terminal raw from `jaxscale run`'s figures)."""
    fit = fit_power_law(N, law(N), bootstrap=20, seed=0)
    P = fit.bootstrap_params.copy()
    P[0] = (np.inf, 70.0, 1.7)
    P[1] = (1e300, 81.0, 1.7)
    wild = type(fit)(**{**fit.__dict__, "bootstrap_params": P})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        val, lo, hi = wild.predict(N, band=True)
    assert np.all(np.isfinite(lo)) and np.all(lo <= val + 1e-12) and np.all(val <= hi + 1e-9)


def test_bootstrap_interval_keeps_infinite_resamples():
    """Resamples whose parameter overflowed to inf used to be dropped: 80 finite + 20 inf gave
    1.5 [1.025, 1.975]; the upper bound is inf, and so is the SE. NaN (a failed refit) is still
    dropped, and finite samples give numpy's percentiles exactly."""
    from jaxscale.fit._optim import make_estimate, percentile_interval

    est = make_estimate(1.5, np.r_[np.linspace(1, 2, 80), np.full(20, np.inf)])
    assert est.ci95[1] == np.inf and est.se == np.inf
    assert est.ci95[0] == pytest.approx(1 + 0.025 * 99 / 79)  # the 2.5% point of all 100 samples
    assert str(est) == "1.5 [1.03133, inf]"
    one = make_estimate(1.0, np.r_[np.linspace(1, 2, 99), np.inf])   # 1% inf: inside the 2.5% tail
    assert np.isfinite(one.ci95[1]) and one.se == np.inf
    assert make_estimate(1.0, np.r_[np.linspace(1, 2, 50), np.nan]).ci95 == pytest.approx((1.025, 1.975))
    s = np.random.default_rng(0).normal(size=1001)
    assert percentile_interval(s, 0.9) == pytest.approx(tuple(np.percentile(s, [5, 95])), rel=1e-12)


def test_power_law_interval_reaches_inf_when_a_refit_does(runaway_resample):
    fit = fit_power_law(N, law(N), bootstrap=20, seed=0)
    assert np.isinf(fit.bootstrap_params[0, 0])
    assert fit.A.ci95[1] == np.inf and fit.A.se == np.inf and np.isfinite(fit.A.ci95[0])
    assert np.isfinite(fit.alpha.se) and str(fit.A).endswith("inf]")


@pytest.mark.parametrize("call", [
    lambda: fit_power_law(N, law(N), bootstrap=20, level=95),
    lambda: fit_compute_law(N, law(N), bootstrap=0, level=95),
    lambda: backtest_power_law(N, law(N), holdout=2, bootstrap=0, level=95),
    lambda: fit_power_law(N, law(N), bootstrap=0).predict(N, band=True, level=95),
])
def test_level_must_be_a_fraction(call):
    """level=95 used to reach numpy's "Percentiles must be in the range [0, 100]" (or nothing,
    without a bootstrap)."""
    with pytest.raises(ValueError, match=r"^level: must lie in \(0, 1\), got 95$"):
        call()


@pytest.mark.parametrize("level", [0, 1, -0.5, float("nan"), "0.95", None])
def test_check_level_rejects_non_fractions(level):
    from jaxscale.fit._optim import check_level

    with pytest.raises(ValueError, match="^level: must lie in"):
        check_level(level)
    assert check_level(0.9) == 0.9
