"""Forecasting where exact match will cross a threshold, from smaller models, and backtesting it.

Two stages with the answer loss as the intermediate variable (the "model ladder" recipe of
Bhagia et al. 2024 and Owen 2024; Schaeffer et al. 2025 find the gold-answer likelihood the most
stable thing to extrapolate):

1. **Loss law**: the teacher-forced answer NLL ℓ (nats per answer) against scale N, a power law
   ℓ = A·N^−α fitted by least squares in log–log over the fitted models' points.
2. **Link**: exact match against ℓ, a Gompertz (default) or logistic curve in −log10 ℓ fitted by
   binomial likelihood. Gompertz is exact when exact match = p^L with independent per-token
   errors: EM = exp(−ℓ), i.e. log(−log EM) linear in log ℓ (the PassUntil "task law"). Its floor
   is exact match's chance level (``floor``): a model with a high answer loss still guesses,
   and sparse parity's guesses score 1/2, not 0.
3. **Solve**: ℓ* where the link equals the threshold θ, then N* = (ℓ*/A)^(−1/α), in closed form.

The interval is the hierarchical bootstrap (seeds within a size, then examples; the loss of a
resampled seed travels with it, plus normal noise of its standard error when given), refitting
both stages per replicate. :func:`backtest` holds out the largest sizes, forecasts from the rest,
and reports the error (decades) next to the naive baseline: a logistic fit of exact match on log N.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxscale.fit.emergence.resample import hierarchical_resample
from jaxscale.fit.emergence.series import Crossing, check_series, threshold_crossing
from jaxscale.fit.emergence.sigmoid import (
    SigmoidFit, fit_binomial_batch, fit_sigmoid, unpack_params,
)

__all__ = ["Forecast", "forecast_crossing", "Backtest", "backtest"]


@dataclasses.dataclass(frozen=True, eq=False)
class Forecast:
    """Predicted scale at which exact match reaches ``threshold`` (NaN when the fitted loss law
    does not fall, the link never reaches θ, or exact match is 0 (or at or below its chance
    level) at every fitted point, or 1 at every one, so that nothing ties it to the loss:
    ``note`` says which), with a bootstrap
    interval. When exact match steps from 0 to 1 between two fitted losses (``link.step``), the
    crossing loss is only bracketed, and the interval covers the whole bracket.

    loss_exponent α and loss_log10_prefactor log10 A of ℓ = A·N^−α; ``link`` maps the loss
    (a decreasing axis) to exact match; ``extrapolation_decades`` = log10(N*/largest fitted N).
    """

    threshold: float
    scale: float
    ci: tuple[float, float]
    loss_exponent: float
    loss_log10_prefactor: float
    loss_at_threshold: float
    link: SigmoidFit
    fit_scales: tuple[float, ...]
    extrapolation_decades: float
    boot_log10_scale_B: np.ndarray
    note: str = ""

    def predict_loss(self, scale) -> np.ndarray:
        return 10.0 ** (self.loss_log10_prefactor
                        - self.loss_exponent * np.log10(np.asarray(scale, np.float64)))

    def predict_em(self, scale) -> np.ndarray:
        return self.link.predict(self.predict_loss(scale))


def _loglog_ols(u_KS: np.ndarray, v_KS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least squares v = a + b·u; returns (a_K, b_K)."""
    um = u_KS.mean(axis=1, keepdims=True)
    vm = v_KS.mean(axis=1, keepdims=True)
    b = np.sum((u_KS - um) * (v_KS - vm), axis=1) / np.sum((u_KS - um) ** 2, axis=1)
    return vm[:, 0] - b * um[:, 0], b


def _pow10(log10_value) -> float:
    """10^v as a float, inf past float range: a loss that barely falls puts the forecast
    crossing absurdly far out, which must read as "never in range", not crash the analysis."""
    with np.errstate(over="ignore"):
        return float(np.power(10.0, np.float64(log10_value)))


def _above_floor(s_S, n_S, floor: float, z: float = 1.959963984540054) -> np.ndarray:
    """Points whose exact match lies clearly above ``floor``: its Wilson 95% lower bound does.
    At floor 0 that is any success (the lower bound is > 0 exactly when s > 0); above 0 a point
    at chance plus test-set noise (0.51 of 1,600 parity answers) does not count, since a link
    fitted to such points ties nothing to the loss and extrapolates noise."""
    if floor <= 0:
        return s_S > 0
    p, zz = s_S / n_S, z * z / n_S
    lower = (p + zz / 2 - z * np.sqrt(p * (1 - p) / n_S + zz / (4 * n_S))) / (1 + zz)
    return lower > floor


def _solve_log10_scale(a, b, x_star):
    """log10 N* from ℓ* = 10^(−x*) and log10 ℓ = a + b·log10 N (NaN unless the loss falls)."""
    a, b, x_star = (np.asarray(v, np.float64) for v in (a, b, x_star))
    return np.where(b < 0, (-x_star - a) / np.where(b < 0, b, -1.0), np.nan)


def forecast_crossing(scale, answer_nll, successes, trials, threshold: float = 0.5, *,
                      link: str = "gompertz", nll_se=None, n_boot: int = 1000, seed: int = 0,
                      ci: float = 0.95, floor: float = 0.0) -> Forecast:
    """Forecast the scale where exact match crosses ``threshold``; see the module docstring.

    One point per (scale, seed): ``answer_nll`` is that model's mean teacher-forced answer NLL
    (nats), ``successes``/``trials`` its exact-match count; ``nll_se`` optional standard errors
    of the mean NLL (for the examples level of the bootstrap). ``floor``: exact match's chance
    level, the link's lower asymptote; ``threshold`` must lie above it.
    """
    scale, nll_S = check_series(scale, answer_nll, "answer_nll")
    _, s_S = check_series(scale, successes, "successes")
    _, n_S = check_series(scale, trials, "trials")
    if np.any(nll_S <= 0):
        raise ValueError(f"answer_nll must be > 0, got {nll_S[nll_S <= 0][0]!r}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    if not 0.0 <= floor < threshold:  # the link never reaches a level at or below its floor
        raise ValueError(f"threshold {threshold:g} must lie above the chance level (floor) {floor:g}")
    if np.unique(scale).size < 2:
        raise ValueError("a forecast needs at least 2 distinct scales")
    u_S = np.log10(scale)
    a, b = (float(v[0]) for v in _loglog_ols(u_S[None], np.log10(nll_S)[None]))
    link_fit = fit_sigmoid(nll_S, s_S, n_S, kind=link, decreasing=True, floor=floor, n_boot=0)
    flat = ("exact match is 0 at every fitted point" if not np.any(s_S > 0) else
            f"exact match is nowhere clearly above chance ({floor:.3g}) at the fitted points"
            if not np.any(_above_floor(s_S, n_S, floor)) else
            "exact match is 1 at every fitted point" if np.all(s_S >= n_S) else "")
    if flat:  # the link's likelihood is flat: any curve above (below) the points fits them
        nan = float("nan")
        return Forecast(
            threshold=float(threshold), scale=nan, ci=(nan, nan), loss_exponent=-b,
            loss_log10_prefactor=a, loss_at_threshold=nan, link=link_fit,
            fit_scales=tuple(np.unique(scale).tolist()), extrapolation_decades=nan,
            boot_log10_scale_B=np.zeros(0), note=f"{flat}: nothing ties it to the answer loss")
    x_star = float(link_fit.x_at(threshold))
    log10_n = float(_solve_log10_scale(a, b, x_star))

    boot = np.zeros(0)
    interval = (float("nan"), float("nan"))
    if n_boot > 0:
        s_BS, n_BS, pick_BS = hierarchical_resample(u_S, s_S, n_S, n_boot, seed, True)
        nll_BS = nll_S[pick_BS]
        if nll_se is not None:
            se_S = np.asarray(nll_se, np.float64).reshape(-1)
            if se_S.shape != nll_S.shape or np.any(se_S < 0):
                raise ValueError("nll_se must be >= 0 with one value per point")
            noise = np.random.default_rng(seed + 1).standard_normal(nll_BS.shape)
            nll_BS = np.maximum(nll_BS + noise * se_S[pick_BS], 1e-12)
        a_B, b_B = _loglog_ols(np.broadcast_to(u_S, nll_BS.shape), np.log10(nll_BS))
        theta0 = np.array([[link_fit.x0, link_fit.k + np.log(-np.expm1(-link_fit.k)), 0.0]])
        th_B4, v_B = fit_binomial_batch(link, -np.log10(nll_BS), s_BS, n_BS, floor, False,
                                        np.repeat(theta0, n_boot, 0))
        p_B4 = unpack_params(th_B4, floor, False)
        xs_B = link_fit.x_at(threshold, p_B4[:, 0], p_B4[:, 1], p_B4[:, 2], p_B4[:, 3])
        boot = np.where(np.isfinite(v_B), _solve_log10_scale(a_B, b_B, xs_B), np.nan)
        if link_fit.step:
            # every replicate is the same step, so the refits all stop where the point estimate
            # did: take the loss law's replicates at both ends of the bracket instead
            ends = [_solve_log10_scale(a_B, b_B, x) for x in link_fit.x0_ci]
            low, high = np.fmin(*ends), np.fmax(*ends)
            if np.mean(np.isfinite(low) & np.isfinite(high)) >= ci:
                interval = (_pow10(np.nanpercentile(low, 50 * (1 - ci))),
                            _pow10(np.nanpercentile(high, 50 * (1 + ci))))
        elif np.mean(np.isfinite(boot)) >= ci:
            lo, hi = np.nanpercentile(boot, [50 * (1 - ci), 50 * (1 + ci)])
            interval = (_pow10(lo), _pow10(hi))
    return Forecast(
        threshold=float(threshold), scale=_pow10(log10_n), ci=interval,
        loss_exponent=-b, loss_log10_prefactor=a, loss_at_threshold=_pow10(-x_star),
        link=link_fit, fit_scales=tuple(np.unique(scale).tolist()),
        extrapolation_decades=float(log10_n - u_S.max()), boot_log10_scale_B=boot)


@dataclasses.dataclass(frozen=True, eq=False)
class Backtest:
    """A forecast from all but the ``n_holdout`` largest sizes, scored against the crossing
    observed on all sizes. Errors are log10(predicted / observed) in decades (NaN when either is
    missing); ``*_covers`` says whether the interval contains the observed crossing."""

    threshold: float
    n_holdout: int
    holdout_scales: tuple[float, ...]
    observed: Crossing
    forecast: Forecast
    naive: SigmoidFit
    naive_scale: float
    naive_ci: tuple[float, float]
    forecast_error_decades: float
    naive_error_decades: float
    forecast_covers: bool
    naive_covers: bool


def _error(pred: float, observed: float) -> float:
    if not (np.isfinite(pred) and np.isfinite(observed) and pred > 0):
        return float("nan")
    return float(np.log10(pred / observed))


def _covers(ci: tuple[float, float], observed: float) -> bool:
    return bool(np.isfinite(observed) and ci[0] <= observed <= ci[1])


def backtest(scale, answer_nll, successes, trials, threshold: float = 0.5, *,
             n_holdout: int = 2, link: str = "gompertz", nll_se=None, n_boot: int = 1000,
             seed: int = 0, ci: float = 0.95, floor: float = 0.0) -> Backtest:
    """Hold out the ``n_holdout`` largest distinct sizes, forecast from the rest, compare.

    The observed crossing is the interpolated, isotonic-smoothed crossing of exact match over
    *all* sizes; the naive baseline is a logistic in log10 N fitted to exact match of the kept
    sizes and solved for θ. ``floor``: exact match's chance level, the floor of the forecast's
    link and of the naive logistic alike.
    """
    scale, s_S = check_series(scale, successes, "successes")
    _, n_S = check_series(scale, trials, "trials")
    sizes = np.unique(scale)
    if not 1 <= n_holdout <= sizes.size - 3:
        raise ValueError(f"n_holdout must be in [1, {sizes.size - 3}] for {sizes.size} sizes "
                         f"(the forecast keeps at least 3), got {n_holdout!r}")
    keep = scale < sizes[-n_holdout]
    observed = threshold_crossing(scale, s_S / n_S, threshold, weights=n_S)
    nll = np.asarray(answer_nll, np.float64).reshape(-1)
    se = None if nll_se is None else np.asarray(nll_se, np.float64).reshape(-1)[keep]
    fc = forecast_crossing(scale[keep], nll[keep], s_S[keep], n_S[keep], threshold, link=link,
                           nll_se=se, n_boot=n_boot, seed=seed, ci=ci, floor=floor)
    naive = fit_sigmoid(scale[keep], s_S[keep], n_S[keep], kind="logistic", floor=floor,
                        n_boot=n_boot, seed=seed, ci=ci)
    if fc.note:  # exact match is flat over the kept sizes: the naive fit has nothing to locate
        naive_scale, naive_ci = float("nan"), (float("nan"), float("nan"))
    else:
        naive_scale = naive.scale_at(threshold)
        naive_ci = naive.scale_at_ci(threshold, ci)
    return Backtest(
        threshold=float(threshold), n_holdout=int(n_holdout),
        holdout_scales=tuple(sizes[-n_holdout:].tolist()), observed=observed, forecast=fc,
        naive=naive, naive_scale=naive_scale, naive_ci=naive_ci,
        forecast_error_decades=_error(fc.scale, observed.scale),
        naive_error_decades=_error(naive_scale, observed.scale),
        forecast_covers=_covers(fc.ci, observed.scale), naive_covers=_covers(naive_ci,
                                                                             observed.scale))
