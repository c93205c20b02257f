"""Logistic and Gompertz fits of a success rate against log scale, by binomial likelihood.

Model: y(x) = c + (d − c)·f(k·(x − x0)), x = log10(scale), with c the floor (the chance rate,
fixed; or, with ``fit_floor``, fitted in [chance, d) for tasks whose small models plateau above
chance by partial competence), d the ceiling (1, or fitted in (c, 1]), k > 0 the rate per decade
and x0 the **midpoint** (y halfway between c and d), for both shapes:

* logistic  f(z) = 1/(1 + e^−z); 10–90% width 2·ln 9 / k decades;
* Gompertz  f(z) = exp(−ln 2 · e^−z); 10–90% width ln(ln 10 / ln(10/9)) / k ≈ 3.08/k decades.
  The Gompertz curve is the exact shape of exact match = p^L when the per-token loss is a power
  law in scale (Schaeffer et al. 2023), and its width then does not depend on L.

Why binomial likelihood: each point is s successes out of n; least squares would underweight the
points near 0 and 1, where the binomial variance is smallest and the transition is decided.
The optimiser is optax's L-BFGS, driven by the shared vmapped multi-start helper; the point
estimate takes the best of a grid of starts, the hierarchical bootstrap (seeds, then examples;
see ``resample``) refits every replicate from the point estimate in one vmapped batch.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.fit._optim import float64, run_lbfgs
from jaxscale.fit.emergence.resample import hierarchical_resample
from jaxscale.fit.emergence.series import check_series, from_x, to_x

__all__ = ["SIGMOID_KINDS", "SigmoidFit", "fit_sigmoid", "fit_binomial_batch", "unpack_params", "shape_fn",
           "width_constant", "step_bracket", "STEP_NOTE"]

SIGMOID_KINDS = ("logistic", "gompertz")
STEP_NOTE = "a step between two sizes: the midpoint is only bracketed, the width at most their gap"
_LN2 = math.log(2.0)
_EPS = 1e-12


def width_constant(kind: str) -> float:
    """10–90% width × k for each shape."""
    return 2 * math.log(9.0) if kind == "logistic" else math.log(math.log(10) / math.log(10 / 9))


def shape_fn(kind: str, z):
    """f(z), with f(0) = 1/2 for both shapes (so x0 is the midpoint)."""
    if kind == "logistic":
        return jax.nn.sigmoid(z)
    return jnp.exp(-_LN2 * jnp.exp(-z))


def _inverse_shape(kind: str, q):
    """z with f(z) = q, for q in (0, 1)."""
    q = np.asarray(q, np.float64)
    if kind == "logistic":
        return np.log(q / (1 - q))
    return np.log(_LN2) - np.log(-np.log(q))


def _unpack(theta, floor, fit_ceiling, fit_floor):
    """(x0, k, ceiling d, floor c) from the optimiser's unconstrained (x0, ρ, η, τ)."""
    x0, rho, eta, tau = theta[0], theta[1], theta[2], theta[3]
    k = jax.nn.softplus(rho)
    d = jnp.where(fit_ceiling > 0, floor + (1 - floor) * jax.nn.sigmoid(eta), 1.0)
    c = jnp.where(fit_floor > 0, floor + (d - floor) * jax.nn.sigmoid(tau), floor)
    return x0, k, d, c


def _nll(theta, shared, lane):
    """Mean binomial NLL per trial; one function for both shapes (``is_gompertz`` is data), so
    both share one compiled program."""
    floor, fit_ceiling, fit_floor, is_gompertz = shared
    x_S, s_S, n_S = lane
    x0, k, d, c = _unpack(theta, floor, fit_ceiling, fit_floor)
    z_S = k * (x_S - x0)
    f_S = jnp.where(is_gompertz > 0, shape_fn("gompertz", z_S), shape_fn("logistic", z_S))
    y_S = jnp.clip(c + (d - c) * f_S, _EPS, 1 - _EPS)
    ll = s_S * jnp.log(y_S) + (n_S - s_S) * jnp.log1p(-y_S)
    return -jnp.sum(ll) / jnp.sum(n_S)


def _bucket(n: int, minimum: int) -> int:
    """Padded size: a power of two ≥ n (≥ minimum), so repeated fits reuse compiled programs."""
    return max(minimum, 1 << max(0, int(n - 1).bit_length()))


def fit_binomial_batch(kind: str, x_KS, s_KS, n_KS, floor: float, fit_ceiling: bool,
                       theta0_K4, fit_floor: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fit K data sets (rows of ``x_KS``/``s_KS``/``n_KS``; ``x_KS`` may be one shared row
    [S]) from starts ``theta0_K4``, all in one vmapped L-BFGS run.

    Returns (theta_K4, mean binomial NLL per trial _K); parameters are (x0, softplus⁻¹ k, logit
    of the ceiling share, logit of the floor's share of [chance, ceiling)); starts with three
    columns get τ = 0 appended (unused unless ``fit_floor``). Points and lanes are padded to
    power-of-two sizes (padded points carry zero trials, padded lanes repeat the first) so fits
    of similar size share a compile.
    """
    if kind not in SIGMOID_KINDS:
        raise ValueError(f"kind must be one of {SIGMOID_KINDS}, got {kind!r}")
    s_KS, n_KS = np.asarray(s_KS, np.float64), np.asarray(n_KS, np.float64)
    x_KS = np.broadcast_to(np.asarray(x_KS, np.float64), s_KS.shape)
    theta0_K4 = np.asarray(theta0_K4, np.float64)
    if theta0_K4.shape[-1] == 3:
        theta0_K4 = np.concatenate([theta0_K4, np.zeros_like(theta0_K4[:, :1])], axis=1)
    K, S = s_KS.shape
    pk, ps = _bucket(K, 256) - K, _bucket(S, 16) - S
    x_KP = np.pad(np.concatenate([x_KS, np.repeat(x_KS[:1], pk, 0)]), ((0, 0), (0, ps)),
                  mode="edge")
    s_KP = np.pad(np.concatenate([s_KS, np.repeat(s_KS[:1], pk, 0)]), ((0, 0), (0, ps)))
    n_KP = np.pad(np.concatenate([n_KS, np.repeat(n_KS[:1], pk, 0)]), ((0, 0), (0, ps)))
    theta0 = np.concatenate([theta0_K4, np.repeat(theta0_K4[:1], pk, 0)])
    with float64():
        shared = (jnp.asarray(floor, jnp.float64),
                  jnp.asarray(1.0 if fit_ceiling else 0.0, jnp.float64),
                  jnp.asarray(1.0 if fit_floor else 0.0, jnp.float64),
                  jnp.asarray(1.0 if kind == "gompertz" else 0.0, jnp.float64))
        lane = (jnp.asarray(x_KP), jnp.asarray(s_KP), jnp.asarray(n_KP))
        res = run_lbfgs(_nll, jnp.asarray(theta0), shared, lane, max_iter=300)
    values = np.where(np.isfinite(res.values), res.values, np.inf)[:K]
    return np.asarray(res.params, np.float64)[:K], values


def unpack_params(theta_K4, floor: float, fit_ceiling: bool, fit_floor: bool = False) -> np.ndarray:
    """(x0, k, ceiling, floor) per row from optimiser parameters, in numpy float64."""
    theta_K4 = np.atleast_2d(np.asarray(theta_K4, np.float64))
    k = np.logaddexp(0.0, theta_K4[:, 1])
    d = (floor + (1 - floor) / (1 + np.exp(-theta_K4[:, 2])) if fit_ceiling
         else np.ones_like(k))
    c = (floor + (d - floor) / (1 + np.exp(-theta_K4[:, 3])) if fit_floor and theta_K4.shape[1] > 3
         else np.full_like(k, floor))
    return np.stack([theta_K4[:, 0], k, d, c], axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class SigmoidFit:
    """A fitted sigmoid in log scale. ``x0`` and ``width`` are on the fitting axis (decades of
    scale; negated decades for a decreasing axis); ``midpoint`` is x0 in scale units.
    Intervals are bootstrap percentiles (NaN without bootstrap). ``identified`` is False, with a
    ``reason``, when the midpoint lies outside the measured range or its interval is wider than
    that range: the data then do not locate the transition. ``step`` is True when no point lies
    inside the transition (every point at or below the floor below some size, every point at 1
    from the next size up: complete separation). The likelihood is then flat for any midpoint
    between those two sizes as the curve steepens, so the midpoint interval is that bracket, the
    width interval is (0, the bracket's width), and the point estimates are only where the
    optimiser stopped inside it; no bootstrap is run (every replicate is the same step)."""

    kind: str
    x0: float
    k: float
    floor: float
    ceiling: float
    width: float
    nll: float
    aic: float
    n_points: int
    x_range: tuple[float, float]
    log_scale: bool
    decreasing: bool
    x0_ci: tuple[float, float]
    width_ci: tuple[float, float]
    identified: bool
    reason: str
    boot_params_B4: np.ndarray  # (x0, k, ceiling, floor) per bootstrap replicate, empty without one
    chance: float = 0.0         # the floor given (the fitted ``floor`` is ≥ it when ``floor_fitted``)
    floor_fitted: bool = False
    step: bool = False

    @property
    def midpoint(self) -> float:
        return float(from_x(self.x0, self.log_scale, self.decreasing))

    @property
    def midpoint_ci(self) -> tuple[float, float]:
        a, b = from_x(np.array(self.x0_ci), self.log_scale, self.decreasing)
        return (float(min(a, b)), float(max(a, b)))

    def predict(self, scale) -> np.ndarray:
        """The fitted curve at ``scale``."""
        x = to_x(scale, self.log_scale, self.decreasing)
        f = np.asarray(shape_fn(self.kind, jnp.asarray(self.k * (x - self.x0))), np.float64)
        return self.floor + (self.ceiling - self.floor) * f

    def x_at(self, level: float, x0=None, k=None, ceiling=None, floor=None):
        """Axis position where the curve equals ``level`` (NaN when it never does)."""
        x0 = self.x0 if x0 is None else x0
        k = self.k if k is None else k
        d = self.ceiling if ceiling is None else ceiling
        c = np.asarray(self.floor if floor is None else floor, np.float64)
        q = (level - c) / (np.asarray(d, np.float64) - c)
        ok = (q > 0) & (q < 1)
        return np.where(ok, x0 + _inverse_shape(self.kind, np.where(ok, q, 0.5)) / k, np.nan)

    def scale_at(self, level: float) -> float:
        """Scale where the curve equals ``level`` (NaN when it never does)."""
        return float(from_x(self.x_at(level), self.log_scale, self.decreasing))

    def scale_at_ci(self, level: float, ci: float = 0.95) -> tuple[float, float]:
        """Bootstrap interval of :meth:`scale_at` (NaN when most replicates never reach it)."""
        if self.step:  # any level between floor and ceiling is crossed inside the bracket
            inside = self.floor < level < self.ceiling
            return self.midpoint_ci if inside else (float("nan"), float("nan"))
        b = self.boot_params_B4
        if b.size == 0:
            return (float("nan"), float("nan"))
        xs = self.x_at(level, b[:, 0], b[:, 1], b[:, 2], b[:, 3])
        if np.mean(np.isfinite(xs)) < ci:
            return (float("nan"), float("nan"))
        lo, hi = from_x(np.nanpercentile(xs, [50 * (1 - ci), 50 * (1 + ci)]), self.log_scale,
                        self.decreasing)
        return (float(min(lo, hi)), float(max(lo, hi)))


def _start_grid(x_S: np.ndarray, kind: str, fit_ceiling: bool, fit_floor: bool) -> np.ndarray:
    lo, hi = float(x_S.min()), float(x_S.max())
    span = max(hi - lo, 1e-6)
    starts = []
    for x0 in np.linspace(lo, hi, 5):
        for width in (span / 6, span / 2, span * 1.5):
            k = width_constant(kind) / width
            for tau in ((-3.0, -1.0) if fit_floor else (0.0,)):
                starts.append([x0, k + np.log(-np.expm1(-k)), 3.0 if fit_ceiling else 0.0, tau])
    return np.asarray(starts)


def step_bracket(x_S: np.ndarray, s_S: np.ndarray, n_S: np.ndarray, floor: float) -> tuple[float, float] | None:
    """(last x below, first x above) when the points are completely separated: each one at or
    below the floor (s/n ≤ floor) or at 1 (s = n), all of the former at smaller x than all of the
    latter, and both kinds present; else None. Seeds of one size that disagree are not a step."""
    low_S = s_S <= floor * n_S + 1e-9
    high_S = s_S >= n_S
    if not np.all(low_S | high_S) or not low_S.any() or not high_S.any():
        return None
    below, above = float(x_S[low_S].max()), float(x_S[high_S].min())
    return (below, above) if below < above else None


def fit_sigmoid(scale, successes, trials, *, kind: str = "logistic", floor: float = 0.0,
                fit_ceiling: bool = False, fit_floor: bool = False, log_scale: bool = True,
                decreasing: bool = False, n_boot: int = 1000, seed: int = 0,
                ci: float = 0.95) -> SigmoidFit:
    """Fit ``successes``/``trials`` (one point per scale and seed) against log10(scale).

    ``floor`` is the chance rate (the best constant answer's score, ``Task.chance_levels``: 1/2 for
    a one-bit answer, 1/K for K-way choice, ~0 for a long answer); with
    ``fit_floor`` the bottom asymptote is fitted in [floor, ceiling) instead (a plateau of
    partial competence, e.g. sums without a carry); with ``fit_ceiling`` the top asymptote is
    fitted in (floor, 1], else fixed at 1. Fractional
    ``successes`` are allowed (a rate times its count: quasi-binomial). ``n_boot`` > 0 adds
    hierarchical-bootstrap intervals (needs integer-like ``trials``).
    """
    if kind not in SIGMOID_KINDS:
        raise ValueError(f"kind must be one of {SIGMOID_KINDS}, got {kind!r}")
    scale, s_S = check_series(scale, successes, "successes", log_scale=log_scale)
    _, n_S = check_series(scale, trials, "trials", log_scale=log_scale)
    if np.any(n_S <= 0) or np.any(s_S < 0) or np.any(s_S > n_S):
        raise ValueError("fit_sigmoid needs trials > 0 and 0 <= successes <= trials")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must lie in [0, 1), got {floor!r}")
    x_S = to_x(scale, log_scale, decreasing)
    if np.unique(x_S).size < 2:
        raise ValueError("fit_sigmoid needs at least 2 distinct scales")
    starts = _start_grid(x_S, kind, fit_ceiling, fit_floor)
    K = starts.shape[0]
    theta_K4, nll_K = fit_binomial_batch(kind, x_S, np.tile(s_S, (K, 1)), np.tile(n_S, (K, 1)),
                                         floor, fit_ceiling, starts, fit_floor)
    best = int(np.argmin(nll_K))
    theta = theta_K4[best]
    x0, k, d, c = (float(v) for v in unpack_params(theta, floor, fit_ceiling, fit_floor)[0])
    nll_total = float(nll_K[best] * n_S.sum())
    n_params = 2 + int(fit_ceiling) + int(fit_floor)
    lo, hi = float(x_S.min()), float(x_S.max())

    boot = np.zeros((0, 4))
    x0_ci = width_ci = (float("nan"), float("nan"))
    bracket = step_bracket(x_S, s_S, n_S, floor)
    if bracket is not None:
        x0 = float(np.clip(x0, *bracket))
        x0_ci, width_ci = bracket, (0.0, bracket[1] - bracket[0])
    elif n_boot > 0:
        s_BS, n_BS = hierarchical_resample(x_S, s_S, n_S, n_boot, seed)
        tb_B4, vb_B = fit_binomial_batch(kind, x_S, s_BS, n_BS, floor, fit_ceiling,
                                         np.tile(theta, (n_boot, 1)), fit_floor)
        boot = unpack_params(tb_B4[np.isfinite(vb_B)], floor, fit_ceiling, fit_floor)
        q = [50 * (1 - ci), 50 * (1 + ci)]
        x0_ci = tuple(float(v) for v in np.percentile(boot[:, 0], q))
        width_ci = tuple(float(v) for v in np.percentile(width_constant(kind) / boot[:, 1], q))

    reason = ""
    if not lo <= x0 <= hi:
        reason = "midpoint outside the measured range"
    elif np.isfinite(x0_ci[0]) and x0_ci[1] - x0_ci[0] > hi - lo:
        reason = "midpoint interval wider than the measured range"
    return SigmoidFit(
        kind=kind, x0=x0, k=k, floor=c, ceiling=d, width=width_constant(kind) / k,
        nll=nll_total, aic=2 * nll_total + 2 * n_params, n_points=int(x_S.size),
        x_range=(lo, hi), log_scale=log_scale, decreasing=decreasing, x0_ci=x0_ci,
        width_ci=width_ci, identified=not reason, reason=reason, boot_params_B4=boot,
        chance=float(floor), floor_fitted=bool(fit_floor), step=bracket is not None)
