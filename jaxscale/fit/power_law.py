"""Power laws with an irreducible term: L(N) = A·N^-α + B in model size, and
L(C) = E + k·C^-γ in training compute (the same function under other names).

The fit minimises a sum of Huber terms on the log-loss residual of the log-sum-exp form
``log L̂ = LSE(a − α·log x, b)`` (A = e^a, B = e^b, so both stay positive), with optax's L-BFGS
from a grid of starting points advanced together under ``jax.vmap``. Intervals come from a case
bootstrap (optionally also resampling each point's seeds), refitted under ``jax.vmap`` with every
resample started from the full-data optimum and four spread points of the grid, keeping its best
(``_bootstrap_starts``).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from jaxscale.fit import _optim
from jaxscale.fit._optim import Estimate
from jaxscale.fit.sizes import SIZE_RTOL, n_distinct, size_clusters

__all__ = [
    "PowerLawFit", "BacktestResult", "ExtrapolationWarning", "NoDecreaseWarning", "fit_power_law",
    "fit_compute_law", "backtest_power_law", "IMPROVEMENT_FACTORS",
]

#: The notebook's "k× more parameters" factors.
IMPROVEMENT_FACTORS: tuple[float, ...] = (2, 5, 10, 100, 1000)
MIN_POINTS = 4
#: The smallest exponent α (γ) read as a decrease: below it the power-law term is a constant
#: over any data (x^-1e-6 changes by 0.001% per decade), so a fit to a flat loss, which lands at
#: α ~ 1e-16 rather than exactly 0, is not reported as a scaling law.
MIN_EXPONENT = 1e-6


class ExtrapolationWarning(UserWarning):
    """A prediction lies more than one decade outside the range of the fitted data."""


class NoDecreaseWarning(UserWarning):
    """The fitted power law does not fall with x: its exponent α (γ) is ≤ ``MIN_EXPONENT`` (≈ 0),
    or A or B is not finite (``PowerLawFit.decreasing`` is False). The loss does not decrease
    with size (compute) over the data, so A·x^-α + B is no scaling law: its exponent, floor and
    "k× more" table describe no improvement. The analogue of Approach 3's ``NoFrontierWarning``."""


def _objective(x, shared, lane):
    """Sum of Huber terms on log L̂ − log L; x = (a', α, b) with u = log x − log x_ref."""
    u, log_y, mask, delta = shared
    w, ly = _optim.lane_weights_and_targets(lane, mask, log_y)
    a, alpha, b = x[0], x[1], x[2]
    t1 = a - alpha * u
    t2 = jnp.broadcast_to(b, u.shape)
    m = jnp.maximum(t1, t2)
    pred = m + jnp.log(jnp.exp(t1 - m) + jnp.exp(t2 - m))
    return jnp.sum(w * _optim.huber(pred - ly, delta))


def _grid(log_y: np.ndarray, alphas=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5),
          fracs=(0.01, 0.3, 0.6, 0.8, 0.9, 0.97), shifts=(-1.0, 0.0, 1.0)) -> np.ndarray:
    """Starting points (a', α, b): every α × floor B at ``frac`` of the smallest loss × the
    power-law term's level at x_ref shifted by ``shift`` (in log)."""
    y_min = float(np.exp(log_y.min()))
    y_ref = float(np.exp(log_y.mean()))
    starts = []
    for alpha, frac, shift in itertools.product(alphas, fracs, shifts):
        B = frac * y_min
        a = np.log(max(y_ref - B, 0.01 * y_ref)) + shift
        starts.append((a, alpha, np.log(B)))
    return np.asarray(starts, dtype=np.float64)


def _bootstrap_starts(theta: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Where each bootstrap resample's refit starts: the full-data optimum ``theta`` and four
    points of the starting grid (α 0.3 and 1.0, floor B at 50% and 90% of the smallest loss);
    each resample keeps its best (``_optim.refit_from_starts``).

    Why: on small ladders the full-data optimum often has B → 0, where the objective is flat in
    B, so refits started only there never find a resample's floor. Measured on the default CPU
    study's test losses against total parameters (2026-12-04, 200 resamples): α's 95% interval
    was [0.162, 0.279] from the optimum alone, [0.162, 1.00] from these five starts and
    [0.162, 1.03] from all 144 grid starts (~8× the time); B's upper end 0, 1.87 and 1.88."""
    spread = _grid(log_y, alphas=(0.3, 1.0), fracs=(0.5, 0.9), shifts=(0.0,))
    return np.concatenate([np.asarray(theta, dtype=np.float64)[None], spread])


@dataclasses.dataclass(frozen=True, eq=False)
class PowerLawFit:
    """A fitted ``L = A·x^-α + B`` (size form) or ``L = E + k·C^-γ`` (compute form).

    ``A``, ``alpha``, ``B`` are :class:`Estimate` objects (value, 95% interval, bootstrap SE);
    the compute form also answers to ``k``, ``gamma`` and ``E``. Goodness of fit is in log space:
    ``r2_log`` (R² of log-loss), ``rmse_log`` and ``residuals`` (log L̂ − log L)."""
    form: str
    A: Estimate
    alpha: Estimate
    B: Estimate
    x: np.ndarray
    y: np.ndarray
    residuals: np.ndarray
    r2_log: float
    rmse_log: float
    n: int
    objective: float
    delta: float
    converged: bool
    bootstrap_params: np.ndarray | None = None   # (n_bootstrap, 3): A, alpha, B
    labels: tuple[str, ...] | None = None
    # resamples whose best refit stopped short (the iteration cap, or a non-finite next step);
    # their parameters are still the lowest objective found, never worse than where it started
    bootstrap_unconverged: int = 0

    # -- compute-form names ----------------------------------------------------------------
    @property
    def E(self) -> Estimate:
        return self.B

    @property
    def k(self) -> Estimate:
        return self.A

    @property
    def gamma(self) -> Estimate:
        return self.alpha

    @property
    def n_bootstrap(self) -> int:
        return 0 if self.bootstrap_params is None else int(self.bootstrap_params.shape[0])

    @property
    def floor_identified(self) -> bool:
        """Whether the data identify the irreducible term B (E): ``_optim.floor_identified``."""
        return _optim.floor_identified(self.B.value, self.y)

    @property
    def x_name(self) -> str:
        return "C" if self.form == "compute" else "N"

    @property
    def decreasing(self) -> bool:
        """Whether the fit is a scaling law, the loss falling with x: α > ``MIN_EXPONENT`` (1e-6)
        and A, B finite (A, B
        > 0 by the log-sum-exp form). False where the loss is flat or rises with x over the data
        (:class:`NoDecreaseWarning` was raised): read the fit as "no decrease", not as a law."""
        return self.alpha.value > MIN_EXPONENT and all(np.isfinite(v) for v in (self.A.value, self.B.value))

    def _check_extrapolation(self, x: np.ndarray) -> None:
        lo, hi = float(self.x.min()), float(self.x.max())
        far = (x > 10 * hi) | (x < lo / 10)
        if np.any(far):
            worst = float(np.max(np.abs(np.log10(np.where(x > hi, x / hi, lo / x)))))
            warnings.warn(
                f"prediction at {self.x_name} up to {worst:.2f} decades outside the fitted range "
                f"[{lo:.3g}, {hi:.3g}]: a power-law extrapolation this far is unreliable",
                ExtrapolationWarning, stacklevel=3)

    def predict(self, x, *, band: bool = False, level: float = 0.95):
        """Predicted loss at ``x``; with ``band=True`` return ``(loss, lo, hi)``, the bootstrap
        percentile band (``lo = hi = loss`` without a bootstrap). Warns
        (:class:`ExtrapolationWarning`) more than a decade outside the data."""
        xs = _optim.as_positive_array("x", x)
        if band:
            level = _optim.check_level(level)
        self._check_extrapolation(xs)
        pred = self.A.value * xs ** -self.alpha.value + self.B.value
        scalar = np.ndim(x) == 0
        if not band:
            return float(pred[0]) if scalar else pred
        if self.bootstrap_params is None:
            lo = hi = pred
        else:
            P = self.bootstrap_params
            with np.errstate(over="ignore", invalid="ignore"):  # such a refit's curve is inf or NaN: skipped below
                curves = P[:, 0:1] * xs[None, :] ** -P[:, 1:2] + P[:, 2:3]
            lo = np.nanpercentile(curves, 50 * (1 - level), axis=0)
            hi = np.nanpercentile(curves, 50 * (1 + level), axis=0)
        if scalar:
            return float(pred[0]), float(lo[0]), float(hi[0])
        return pred, lo, hi

    def inverse(self, target_loss):
        """The size (or compute) at which the law reaches ``target_loss``:
        x = (A / (L − B))^(1/α). ``ValueError`` when the target is at or below the irreducible
        term B, which no size reaches."""
        t = np.asarray(target_loss, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"target_loss: must be finite, got {target_loss!r}")
        B = self.B.value
        if np.any(t <= B):
            raise ValueError(
                f"target_loss: {float(np.min(t)):.6g} is at or below the irreducible loss "
                f"{'E' if self.form == 'compute' else 'B'} = {B:.6g}; no {self.x_name} reaches it")
        out = (self.A.value / (t - B)) ** (1.0 / self.alpha.value)
        return float(out) if np.ndim(target_loss) == 0 else out

    def improvement(self, factors: Sequence[float] = IMPROVEMENT_FACTORS,
                    reference: float | None = None) -> dict[float, dict[str, float]]:
        """The notebook's "k× more parameters → x% lower loss": for each factor k, the percent
        drop of the predicted total loss from ``reference`` (default: the largest fitted x) to
        k·reference, and of the reducible part alone (1 − k^-α, independent of the reference)."""
        ref = float(self.x.max()) if reference is None else float(reference)
        if not np.isfinite(ref) or ref <= 0:
            raise ValueError(f"reference: must be > 0, got {reference!r}")
        base = self.A.value * ref ** -self.alpha.value + self.B.value
        out = {}
        for k in factors:
            if k <= 0:
                raise ValueError(f"factors: must be > 0, got {k!r}")
            new = self.A.value * (k * ref) ** -self.alpha.value + self.B.value
            out[float(k)] = {
                "loss": float(new),
                "total_pct": float(100 * (1 - new / base)),
                "reducible_pct": float(100 * (1 - k ** -self.alpha.value)),
            }
        return out

    def to_json(self) -> dict:
        names = ("k", "gamma", "E") if self.form == "compute" else ("A", "alpha", "B")
        out = {"form": self.form,
               "law": "L = E + k*C^-gamma" if self.form == "compute" else "L = A*N^-alpha + B"}
        for nm, est in zip(names, (self.A, self.alpha, self.B)):
            out[nm] = est.to_json()
        out.update({"r2_log": self.r2_log, "rmse_log": self.rmse_log, "n": self.n,
                    "objective": self.objective, "n_bootstrap": self.n_bootstrap,
                    "bootstrap_unconverged": self.bootstrap_unconverged, "converged": self.converged,
                    "floor_identified": self.floor_identified, "decreasing": self.decreasing})
        return out


def _validate(x, y, name_x: str):
    xs = _optim.as_positive_array(name_x, x, min_len=MIN_POINTS)
    ys = _optim.as_positive_array("y", y, min_len=MIN_POINTS)
    _optim.check_same_length(**{name_x: xs, "y": ys})
    k = n_distinct(xs)
    if k < 3:
        raise ValueError(f"{name_x}: need at least 3 distinct values (within a relative {SIZE_RTOL:g}) to fit "
                         f"a power law with an irreducible term, got {k}")
    return xs, ys


def fit_power_law(x, y, *, delta: float = 1e-3, bootstrap: int = 200, seed: int = 0,
                  seed_losses=None, labels: Sequence[str] | None = None, level: float = 0.95,
                  form: str = "size") -> PowerLawFit:
    """Fit ``y = A·x^-α + B`` (A, B > 0 by construction; α > 0 where the loss falls with x).

    When the best fit has α ≤ ``MIN_EXPONENT`` (the loss flat or rising with x over the data) it is returned
    with ``decreasing`` False and a :class:`NoDecreaseWarning`: no scaling law describes such
    data, and its α, B and improvement table must not be read as one.

    x, y: positive finite arrays of equal length (≥ 4 points, ≥ 3 distinct x).
    delta: Huber threshold on the log-loss residual.
    bootstrap: number of case-bootstrap resamples for the intervals (0: point fit only).
    seed_losses: optional (n, S) per-seed losses (NaN for missing seeds); each resample then also
        resamples every point's seeds and refits to their mean.
    level: coverage of the bootstrap intervals, a fraction in (0, 1) (0.95, not 95).
    """
    if form not in ("size", "compute"):
        raise ValueError(f"form: must be 'size' or 'compute', got {form!r}")
    level = _optim.check_level(level)
    xs, ys = _validate(x, y, "compute" if form == "compute" else "x")
    if bootstrap < 0:
        raise ValueError(f"bootstrap: must be >= 0, got {bootstrap}")
    if not delta > 0:
        raise ValueError(f"delta: must be > 0, got {delta}")
    seeds = _optim.check_seed_losses(seed_losses, xs.size)
    if labels is not None:
        labels = tuple(str(s) for s in labels)
        if len(labels) != xs.size:
            raise ValueError(f"labels: expected {xs.size}, got {len(labels)}")

    log_x, log_y = np.log(xs), np.log(ys)
    x_ref = float(log_x.mean())
    u = log_x - x_ref
    n_pad = _optim.padded_size(xs.size)
    with _optim.float64():
        shared = (jnp.asarray(_optim.pad(u, n_pad)), jnp.asarray(_optim.pad(log_y, n_pad)),
                  jnp.asarray(_optim.pad(np.ones_like(u), n_pad)), jnp.asarray(float(delta)))
        res = _optim.run_lbfgs(_objective, jnp.asarray(_grid(log_y)), shared, None,
                               max_iter=300, max_linesearch_steps=20,
                               fatol=1e-20 * n_pad)
        best = int(np.nanargmin(np.where(np.isfinite(res.values), res.values, np.inf)))
        theta = res.params[best]
        boot, boot_unconverged = None, 0
        if bootstrap > 0:
            lane = _optim.bootstrap_lane(xs.size, n_pad, bootstrap, seed, seeds)
            rb = _optim.refit_from_starts(_objective, _bootstrap_starts(theta, log_y), shared, lane,
                                          bootstrap, max_iter=200, max_linesearch_steps=10,
                                          ftol=1e-10)
            p = rb.params
            boot_unconverged = int((~rb.converged).sum())
            with np.errstate(over="ignore"):  # a refit at an unidentified exponent may put A past float range: inf
                boot = np.stack([np.exp(p[:, 0] + p[:, 1] * x_ref), p[:, 1], np.exp(p[:, 2])], axis=1)
    a, alpha, b = (float(v) for v in theta)
    with np.errstate(over="ignore"):  # a scale past float range is inf (warned below), not an error
        A, B = float(np.exp(a + alpha * x_ref)), float(np.exp(b))
    if not (alpha > MIN_EXPONENT and np.isfinite(A) and np.isfinite(B)):
        exp_name, var = ("gamma", "C") if form == "compute" else ("alpha", "x")
        why = (f"{exp_name} = {alpha:.4g} <= {MIN_EXPONENT:g}: the fitted loss does not fall with {var} over "
               f"these points" if not alpha > MIN_EXPONENT else f"A = {A:.4g}, B = {B:.4g}: a scale beyond "
               f"float64's range")
        warnings.warn(f"the fitted power law is no scaling law: {why}; its exponent, floor and improvement "
                      f"table describe no decrease (decreasing is False)", NoDecreaseWarning, stacklevel=2)
    log_pred = np.logaddexp(a - alpha * u, b)
    r2, rmse, resid = _optim.log_space_fit_stats(log_pred, log_y)
    est = [_optim.make_estimate(v, None if boot is None else boot[:, i], level)
           for i, v in enumerate((A, alpha, B))]
    return PowerLawFit(form=form, A=est[0], alpha=est[1], B=est[2], x=xs, y=ys, residuals=resid,
                       r2_log=r2, rmse_log=rmse, n=int(xs.size), objective=float(res.values[best]),
                       delta=float(delta), converged=bool(res.converged[best]),
                       bootstrap_params=boot, labels=labels, bootstrap_unconverged=boot_unconverged)


def fit_compute_law(compute, loss, **kwargs) -> PowerLawFit:
    """Fit ``L(C) = E + k·C^-γ``; the same estimator as :func:`fit_power_law` (k ↔ A, γ ↔ α,
    E ↔ B)."""
    return fit_power_law(compute, loss, form="compute", **kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class BacktestResult:
    """A fit on all but the largest ``holdout`` sizes, and its predictions for them."""
    fit: PowerLawFit
    x_held: np.ndarray
    y_held: np.ndarray
    predicted: np.ndarray
    rel_error: np.ndarray          # (predicted − observed) / observed
    decades: np.ndarray            # log10(x_held / largest fitted x)

    @property
    def mean_abs_rel_error(self) -> float:
        return float(np.mean(np.abs(self.rel_error)))

    def to_json(self) -> dict:
        return {"holdout": int(self.x_held.size), "x": self.x_held.tolist(),
                "observed": self.y_held.tolist(), "predicted": self.predicted.tolist(),
                "rel_error": self.rel_error.tolist(), "decades_beyond": self.decades.tolist(),
                "mean_abs_rel_error": self.mean_abs_rel_error}


def backtest_power_law(x, y, *, holdout: int = 1, **fit_kwargs) -> BacktestResult:
    """Fit without the ``holdout`` largest distinct x values, predict those points, and report
    the relative error. Warns (:class:`ExtrapolationWarning`) when a held-out point lies more than
    one decade beyond the fitted data."""
    xs, ys = _validate(x, y, "x")
    labels, distinct = size_clusters(xs)   # sizes within SIZE_RTOL are one size
    if holdout < 1 or distinct.size - holdout < 3:
        raise ValueError(f"holdout: must leave at least 3 distinct sizes to fit; {distinct.size} "
                         f"distinct sizes, holdout={holdout}")
    train = labels < distinct.size - holdout
    if train.sum() < MIN_POINTS:
        raise ValueError(f"holdout: leaves {int(train.sum())} points to fit, need {MIN_POINTS}")
    fit_kwargs = dict(fit_kwargs)
    for key in ("seed_losses", "labels"):
        if fit_kwargs.get(key) is not None:
            fit_kwargs[key] = [v for v, t in zip(fit_kwargs[key], train) if t]
    fit = fit_power_law(xs[train], ys[train], **fit_kwargs)
    held_x, held_y = xs[~train], ys[~train]
    pred = fit.predict(held_x)
    decades = np.log10(held_x / xs[train].max())
    return BacktestResult(fit=fit, x_held=held_x, y_held=held_y, predicted=np.asarray(pred),
                          rel_error=(pred - held_y) / held_y, decades=decades)
