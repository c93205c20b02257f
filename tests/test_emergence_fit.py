"""Emergence analysis on simulated data from a known per-token-accuracy model (EM = p^L)."""

import math

import numpy as np
import pytest

from jaxscale.fit.emergence import (
    backtest, fit_sigmoid, forecast_crossing, isotonic_increasing, measure_emergent_ability, threshold_crossing,
)

N_BOOT = 200  # one lane bucket (256) for every fit in this file: one compile per point count
SIZES = np.logspace(3, 7, 9)          # log-uniform grid, 4 decades
SEEDS = 3
GOMPERTZ_WIDTH = math.log(math.log(10) / math.log(10 / 9))   # 10-90% width x k
LOGISTIC_WIDTH = 2 * math.log(9)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def schaeffer_p(size, alpha=0.5, c=1e4):
    """Per-token accuracy when the per-token loss is a power law: p = exp(-(N/c)^-alpha)."""
    return np.exp(-(size / c) ** -alpha)


def simulate(em_fn, n_items=300, seed=0, jitter=0.0):
    """(scale_S, successes_S, trials_S): SEEDS points per size, each binomial over n_items;
    a seed's effective size is jittered by `jitter` decades (seed-to-seed variation)."""
    rng = np.random.default_rng(seed)
    scale = np.repeat(SIZES, SEEDS)
    eff = scale * 10 ** (jitter * rng.standard_normal(scale.size))
    n = np.full(scale.size, n_items)
    return scale, rng.binomial(n, em_fn(eff)).astype(float), n.astype(float)


# ---- threshold crossing ------------------------------------------------------------------------

def test_crossing_on_monotone_series_equals_log_linear_interpolation():
    scale = np.array([1e6, 1e7, 1e8, 1e9])
    score = np.array([0.05, 0.2, 0.6, 0.9])
    c = threshold_crossing(scale, score, 0.5)
    x = 7 + (0.5 - 0.2) / (0.6 - 0.2) * (8 - 7)
    assert c.status == "crossed" and c.lower_index == 1
    assert c.x == pytest.approx(x, abs=1e-12)
    assert c.scale == pytest.approx(10 ** x, rel=1e-10)


def test_crossing_pools_seeds_and_smooths_violations():
    # sizes 1, 10, 100, 1000; the 10-size point dips below the first: PAVA pools them
    scale = np.array([1, 10, 100, 1000.0])
    score = np.array([0.3, 0.1, 0.4, 0.8])
    smoothed = isotonic_increasing(score)
    np.testing.assert_allclose(smoothed, [0.2, 0.2, 0.4, 0.8])
    c = threshold_crossing(scale, score, 0.5)
    assert c.x == pytest.approx(2 + (0.5 - 0.4) / (0.8 - 0.4))
    # two seeds at one size are averaged before smoothing
    c2 = threshold_crossing([1, 1, 10, 10], [0.0, 0.2, 0.8, 1.0], 0.5)
    assert c2.x == pytest.approx(0 + (0.5 - 0.1) / (0.9 - 0.1))


def test_crossing_not_identified_outside_range():
    assert threshold_crossing([1, 10, 100], [0.6, 0.7, 0.8]).status.startswith("at or above")
    c = threshold_crossing([1, 10, 100], [0.1, 0.2, 0.3])
    assert c.status == "threshold not reached" and math.isnan(c.scale) and not c.identified


def test_crossing_on_decreasing_axis():
    # validation loss: lower is better; crossing halfway (in log) between losses 4 and 2
    c = threshold_crossing([8.0, 4.0, 2.0, 1.0], [0.0, 0.2, 0.8, 1.0], 0.5, decreasing=True)
    assert c.scale == pytest.approx(math.sqrt(8.0))


# ---- logistic / Gompertz fits --------------------------------------------------------------------

def _coverage(kind, em_fn, true_x0, replicates, **kw):
    hits, widths = 0, []
    for r in range(replicates):
        scale, s, n = simulate(em_fn, seed=r, **kw)
        fit = fit_sigmoid(scale, s, n, kind=kind, n_boot=N_BOOT, seed=r)
        hits += fit.x0_ci[0] <= true_x0 <= fit.x0_ci[1]
        widths.append(fit.width)
    return hits / replicates, np.array(widths)


def test_logistic_fit_covers_true_midpoint_when_em_is_logistic():
    # L = 1 and p logistic in log10 size: EM is exactly logistic with midpoint 5, k = 2
    rate, widths = _coverage("logistic", lambda N: sigmoid(2 * (np.log10(N) - 5)), 5.0, 20)
    assert rate >= 0.9
    assert np.median(widths) == pytest.approx(LOGISTIC_WIDTH / 2, rel=0.1)


@pytest.mark.parametrize("L", [1, 3, 10])
def test_gompertz_fit_covers_true_midpoint_under_power_law_loss(L):
    # p = exp(-(N/c)^-a): EM = p^L is exactly Gompertz in log10 N for every L
    alpha, c = 0.5, 1e4
    true_x0 = math.log10(c) + math.log10(L / math.log(2)) / alpha
    rate, _ = _coverage("gompertz", lambda N: schaeffer_p(N, alpha, c) ** L, true_x0, 12)
    assert rate >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("kind,L", [("logistic", 1), ("gompertz", 1), ("gompertz", 6)])
def test_fit_coverage_many_replicates_with_seed_jitter(kind, L):
    """200 replicates, seeds of one size differ by 0.03 decades of effective size."""
    if kind == "logistic":
        em_fn, true_x0 = (lambda N: sigmoid(2 * (np.log10(N) - 5))), 5.0
    else:
        em_fn = lambda N: schaeffer_p(N) ** L  # noqa: E731
        true_x0 = 4 + math.log10(L / math.log(2)) / 0.5
    rate, _ = _coverage(kind, em_fn, true_x0, 200, jitter=0.03)
    assert rate >= 0.9


def test_width_does_not_depend_on_L_while_midpoint_shifts():
    """Asserted precisely: with per-token loss (N/c)^-alpha, Gompertz fits of EM = p^L (expected
    counts, no noise) for L = 1, 3, 10 have the same 10-90% width, ln(ln10/ln(10/9))/(alpha ln10)
    = 1.339/alpha decades, within 1%, while the midpoint moves by log10(L)/alpha decades (within
    0.01). With a *logistic* per-token accuracy p = sigmoid(a(x - x0)) the width of p^L is not
    exactly constant: it narrows from 2 ln9/a (L = 1) towards the Gompertz width 3.08/a; from
    L = 3 on it stays within 13% of that limit."""
    alpha = 0.5
    n = np.full(SIZES.size, 1e6)
    fits = {}
    for L in (1, 3, 10):
        em = schaeffer_p(SIZES, alpha) ** L
        fits[L] = fit_sigmoid(SIZES, em * n, n, kind="gompertz", n_boot=0)
    for L, f in fits.items():
        assert f.width == pytest.approx(GOMPERTZ_WIDTH / (alpha * math.log(10)), rel=0.01)
        assert f.x0 - fits[1].x0 == pytest.approx(math.log10(L) / alpha, abs=0.01)
    a = 2.0
    x = np.linspace(0, 10, 4001)
    for L in (3, 6, 10):
        em = sigmoid(a * (x - 5)) ** L
        width = x[np.searchsorted(em, 0.9)] - x[np.searchsorted(em, 0.1)]
        assert GOMPERTZ_WIDTH / a * 0.99 <= width <= GOMPERTZ_WIDTH / a * 1.13


def test_midpoint_outside_range_is_not_identified():
    # all measured sizes sit below the transition
    scale, s, n = simulate(lambda N: sigmoid(3 * (np.log10(N) - 8.5)))
    fit = fit_sigmoid(scale, s, n, kind="logistic", n_boot=N_BOOT)
    assert not fit.identified and "outside" in fit.reason


@pytest.mark.parametrize("kind", ["logistic", "gompertz"])
def test_a_clean_step_brackets_the_midpoint_instead_of_a_zero_width_interval(kind):
    # exact match 0 up to 1e6, 1 from 10^6.5: any midpoint between the two fits as the curve
    # steepens, so the optimiser's stopping point and a bootstrap restarted from it are no interval
    scale = np.repeat(10.0 ** np.linspace(5, 8, 7), 3)
    n = np.full(scale.size, 1000.0)
    s = np.repeat([0, 0, 0, 1, 1, 1, 1.0], 3) * n
    fit = fit_sigmoid(scale, s, n, kind=kind, n_boot=N_BOOT)
    assert fit.step and fit.identified
    assert fit.x0_ci == (6.0, 6.5) and fit.width_ci == (0.0, 0.5)
    assert 6.0 <= fit.x0 <= 6.5
    np.testing.assert_allclose(fit.scale_at_ci(0.5), (1e6, 10 ** 6.5))
    # seeds that disagree at one size are not a step: that size is inside the transition
    s_split = s.copy()
    s_split[9] = 0.0
    assert not fit_sigmoid(scale, s_split, n, kind=kind, n_boot=0).step


@pytest.mark.parametrize("em", [0.0, 1.0])
def test_forecast_refuses_a_link_that_exact_match_never_informs(em):
    scale = np.repeat(10.0 ** np.linspace(5, 7, 5), 3)
    n = np.full(scale.size, 1000.0)
    nll = 8 * (scale / 1e5) ** -0.2
    fc = forecast_crossing(scale, nll, em * n, n, 0.5, n_boot=N_BOOT)
    assert math.isnan(fc.scale) and all(math.isnan(v) for v in fc.ci)
    assert f"exact match is {em:g} at every fitted point" in fc.note


def test_forecast_through_a_stepped_link_spans_the_bracket():
    scale = np.repeat(10.0 ** np.linspace(5, 7, 5), 3)
    n = np.full(scale.size, 1000.0)
    nll = 8 * (scale / 1e5) ** -0.2
    s = np.repeat([0, 0, 1, 1, 1.0], 3) * n   # 0 up to 10^5.5, 1 from 10^6
    fc = forecast_crossing(scale, nll, s, n, 0.5, n_boot=N_BOOT)
    assert fc.link.step
    np.testing.assert_allclose(fc.ci, (10 ** 5.5, 1e6), rtol=1e-6)
    assert fc.ci[0] <= fc.scale <= fc.ci[1]


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        fit_sigmoid([1, 10, 100], [1, 2, 3], [10, 10, 10], kind="probit")
    with pytest.raises(ValueError, match="successes"):
        fit_sigmoid([1, 10, 100], [1, 20, 3], [10, 10, 10])
    with pytest.raises(ValueError, match="scale"):
        fit_sigmoid([1, -10, 100], [1, 2, 3], [10, 10, 10])


# ---- forecast and backtest ---------------------------------------------------------------------

def _schaeffer_points(L=6, alpha=0.5, c=1e4, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.repeat(SIZES, SEEDS)
    eff = scale * 10 ** (0.03 * rng.standard_normal(scale.size))
    loss_tok = (eff / c) ** -alpha
    n = np.full(scale.size, 1000.0)
    s = rng.binomial(n.astype(int), np.exp(-L * loss_tok)).astype(float)
    true = c * (L / math.log(2)) ** (1 / alpha)     # EM = exp(-L loss) = 0.5
    return scale, L * loss_tok, s, n, true


def test_forecast_with_top_sizes_held_out_contains_true_crossing():
    scale, nll, s, n, true = _schaeffer_points()
    keep = scale < 2e5   # the crossing (7.5e5) lies beyond every fitted size
    fc = forecast_crossing(scale[keep], nll[keep], s[keep], n[keep], 0.5, n_boot=N_BOOT)
    assert fc.ci[0] <= true <= fc.ci[1]
    assert fc.loss_exponent == pytest.approx(0.5, abs=0.05)
    assert fc.extrapolation_decades > 0


def test_backtest_reports_forecast_and_naive_errors():
    scale, nll, s, n, true = _schaeffer_points(seed=1)
    bt = backtest(scale, nll, s, n, 0.5, n_holdout=3, n_boot=N_BOOT)
    assert bt.holdout_scales == tuple(SIZES[-3:])
    assert bt.observed.identified
    assert abs(math.log10(bt.observed.scale / true)) < 0.1
    assert abs(bt.forecast_error_decades) < 0.15 and bt.forecast_covers
    assert math.isfinite(bt.naive_error_decades)
    with pytest.raises(ValueError, match="n_holdout"):
        backtest(scale, nll, s, n, n_holdout=8)


# ---- external tables ---------------------------------------------------------------------------

def test_best_fit_prefers_a_shape_only_when_the_aics_differ_by_two():
    """AICs within 2 (the usual rule of thumb) mean no preference: the emergence smoke run's
    logistic and Gompertz AICs differed by 3e-8, and the headline took the Gompertz midpoint,
    2.6x the logistic one. ``best_fit`` is then None and ``delta_aic`` says why."""
    import dataclasses

    b = measure_emergent_ability(COURSE_SIZES, COURSE)["GSM8K"]

    def with_aics(logistic, gompertz):
        return dataclasses.replace(b, logistic=dataclasses.replace(b.logistic, aic=logistic),
                                   gompertz=dataclasses.replace(b.gompertz, aic=gompertz))

    tied = with_aics(319.22834827, 319.22834824)
    assert tied.best_fit is None and tied.delta_aic == pytest.approx(3e-8, rel=0.01)
    d = tied.as_dict()
    assert d["best_fit"] is None and d["delta_aic"] == tied.delta_aic
    assert d["logistic"]["midpoint"] != d["gompertz"]["midpoint"]  # both still reported
    assert with_aics(319.2, 317.1).best_fit.kind == "gompertz"
    assert with_aics(317.1, 319.2).as_dict()["best_fit"] == "logistic"
    assert with_aics(317.1, 319.2).delta_aic == pytest.approx(2.1)
    assert dataclasses.replace(b, gompertz=None).best_fit is b.logistic  # one fit: no comparison


COURSE_SIZES = [135e6, 360e6, 1.7e9, 3.8e9, 7e9]
COURSE = {"MMLU": [0.25, 0.32, 0.42, 0.55, 0.68], "GSM8K": [0.10, 0.18, 0.35, 0.52, 0.75]}


def test_score_table_errors_name_the_value_and_the_model_plainly():
    """Bad tables are refused with the value as a plain number (not numpy's repr) and the model
    it belongs to, in the table's order."""
    pct = {"MMLU": [25, 32, 42, 55, 68]}
    with pytest.raises(ValueError, match=r"^column 'MMLU': scores must lie in \[0, 1\], got 25\.0 for the model "
                                         r"of size 1\.35e\+08 \(percentages\? divide by 100\)$"):
        measure_emergent_ability(COURSE_SIZES, pct)
    with pytest.raises(ValueError, match=r"sizes must be finite and > 0, got nan \(model 2 of 5\)$"):
        measure_emergent_ability([1e6, float("nan"), 1e8, 1e9, 1e10], COURSE)
    with pytest.raises(ValueError, match=r"strictly increasing, got 1\.7e\+09 then 3\.6e\+08 \(models 3 and 4 of 5\)$"):
        measure_emergent_ability([135e6, 360e6, 1.7e9, 360e6, 7e9], COURSE)


def test_measure_emergent_ability_interpolates_in_log_size():
    rep = measure_emergent_ability(COURSE_SIZES, COURSE, threshold=0.5)
    x = math.log10(1.7e9) + (0.5 - 0.42) / (0.55 - 0.42) * math.log10(3.8e9 / 1.7e9)
    assert rep["MMLU"].crossing.scale == pytest.approx(10 ** x, rel=1e-9)
    assert rep["MMLU"].logistic is not None and rep["GSM8K"].gompertz is not None
    assert math.isnan(rep["MMLU"].logistic.x0_ci[0])   # no n_items: no intervals
    with_n = measure_emergent_ability(COURSE_SIZES, COURSE, 0.5, n_items=1000, n_boot=N_BOOT)
    lo, hi = with_n["GSM8K"].logistic.midpoint_ci
    assert lo < with_n["GSM8K"].logistic.midpoint < hi


@pytest.mark.parametrize("sizes,scores,match", [
    ([1e8, 5e7, 1e9], {"MMLU": [0.1, 0.2, 0.3]}, "params"),
    ([1e8, 1e8, 1e9], {"MMLU": [0.1, 0.2, 0.3]}, "params"),
    ([1e8, 1e9, 1e10], {"GSM8K": [0.1, 1.2, 0.3]}, "GSM8K"),
    ([1e8, 1e9, 1e10], {"HumanEval": [0.1, 0.2]}, "HumanEval"),
    ([1e8, 1e9, 1e10], {}, "benchmark"),
])
def test_measure_emergent_ability_rejects_bad_tables(sizes, scores, match):
    with pytest.raises(ValueError, match=match):
        measure_emergent_ability(sizes, scores)


def test_fitted_floor_recovers_a_plateau_above_chance():
    """Small models that score 0.1 by partial competence, then a sharp logistic rise (midpoint at
    10^5, 10-90% width 0.5 decades): with ``fit_floor`` the fit finds the plateau, the midpoint
    and the width inside their intervals; holding the floor at chance (0) instead widens the
    fitted jump and fits worse (higher AIC despite one parameter fewer)."""
    c, x0, k = 0.1, 5.0, LOGISTIC_WIDTH / 0.5
    truth = lambda N: c + (1 - c) * sigmoid(k * (np.log10(N) - x0))  # noqa: E731
    scale, s, n = simulate(truth, n_items=1000, seed=3)
    free = fit_sigmoid(scale, s, n, kind="logistic", fit_floor=True, n_boot=N_BOOT)
    fixed = fit_sigmoid(scale, s, n, kind="logistic", n_boot=N_BOOT)
    assert free.floor_fitted and not fixed.floor_fitted and free.chance == 0.0
    assert free.floor == pytest.approx(c, abs=0.02)
    assert free.x0_ci[0] <= x0 <= free.x0_ci[1]
    assert free.width_ci[0] <= 0.5 <= free.width_ci[1]
    assert free.boot_params_B4.shape[1] == 4 and np.all(free.boot_params_B4[:, 3] >= 0)
    assert fixed.floor == 0.0 and abs(fixed.width) > 1.5 * abs(free.width)
    assert free.aic < fixed.aic
    # the curve and the level solver use the fitted floor
    assert free.predict(np.array([1e3]))[0] == pytest.approx(c, abs=0.02)
    assert free.scale_at((free.floor + free.ceiling) / 2) == pytest.approx(free.midpoint, rel=1e-6)


def test_forecast_powers_of_ten_saturate_instead_of_raising():
    """A loss exponent near zero puts the solved crossing thousands of decades out (the
    emergence --smoke run hit 10**x OverflowError): such a forecast must read as infinitely far,
    and ordinary values stay exact."""
    from jaxscale.fit.emergence.forecast import _pow10

    assert _pow10(5000.0) == math.inf and _pow10(-5000.0) == 0.0
    assert _pow10(5.0) == 1e5 and math.isnan(_pow10(float("nan")))


def test_an_interval_past_float_range_reads_as_infinite_without_a_warning():
    # an unidentified fit's midpoint interval can run hundreds of decades out (the emergence
    # study's smoke run printed numpy's "overflow encountered in power" from here)
    import warnings

    from jaxscale.fit.emergence.series import from_x

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(from_x([400.0, 2.0]), [math.inf, 100.0])
        np.testing.assert_array_equal(from_x([400.0], decreasing=True), [0.0])
