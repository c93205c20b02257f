"""Chinchilla scaling laws (Hoffmann et al. 2022, "Training Compute-Optimal Large Language
Models"): Approaches 1, 2 and 3, with bootstrap intervals.

Approach 3 fits L(N, D) = E + A/N^α + B/D^β exactly as the paper does: the sum over runs of
Huber(δ = 10⁻³) terms on the residual of ``log L̂ = LSE(a − α·log N, b − β·log D, e)``
(A = e^a, B = e^b, E = e^e), minimised by L-BFGS (optax) from the grid α, β ∈ {0, 0.5, …, 2},
e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25} (4,500 starts), the best final objective winning.

How the 4,500 starts stay fast: they all run in one vectorised program, in two phases. A short
float32 screening phase (a few L-BFGS iterations for every start, in one ``vmap``) sorts the
starts into basins; the best distinct survivors (64 by default) are then run to convergence in
float64. The result is the same optimum the full grid reaches (checked against Besiroglu et al.
2024's replication), at a fraction of the cost: a line search under ``vmap`` runs as long as its
slowest lane, so converging 4,500 lanes costs the slowest lane's iterations times 4,500.
Bootstrap resamples start from the full-data optimum and converge in tens of iterations.

Approaches 1 and 2 (per-budget optima fitted as power laws in C) are in ``chinchilla_optima.py``
and re-exported here, so that ``jaxscale.fit.chinchilla`` holds all three.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import jax.numpy as jnp
import numpy as np

from jaxscale.fit import _optim
from jaxscale.fit._optim import Estimate
from jaxscale.fit.allocation import ChinchillaLaw
# Approaches 1 and 2 live in chinchilla_optima.py; re-exported so ``fit.chinchilla`` keeps all three.
from jaxscale.fit.chinchilla_optima import (ISOFLOP_MAX_SPAN, AllocationFit, IntermediatePointsWarning,
                                            IsoFLOPGridWarning, _validate_nd, fit_approach1, fit_approach2,
                                            group_isoflops, surface_isoflop_optima)

__all__ = [
    "Approach3Fit", "AllocationFit", "fit_approach1", "fit_approach2", "fit_approach3",
    "hoffmann_grid", "surface_isoflop_optima", "IntermediatePointsWarning", "IsoFLOPGridWarning",
    "ConvergenceWarning", "NoFrontierWarning", "group_isoflops", "ISOFLOP_MAX_SPAN",
]

HUBER_DELTA = 1e-3
MIN_POINTS_A3 = 6
#: Distinct values N and D must each take: the N term's scale A and exponent α are separated from
#: E only by how the loss changes across three or more sizes (two give one difference); so for D.
MIN_DISTINCT_A3 = 3


class ConvergenceWarning(UserWarning):
    """The optimiser stopped at its iteration cap before meeting its convergence test."""


class NoFrontierWarning(UserWarning):
    """The fitted L(N, D) has no compute-optimal frontier: an exponent α or β is ≤ 0 (the loss
    does not fall with N, or with D) or a scale A or B is beyond float64's range, so
    N_opt(C), D_opt(C) do not exist (``Approach3Fit.has_frontier`` is False)."""


# ---------------------------------------------------------------------------------------------
# Approach 3
# ---------------------------------------------------------------------------------------------

def hoffmann_grid() -> np.ndarray:
    """The paper's 4,500 starting points as rows (a, b, e, α, β)."""
    ab = np.arange(0.0, 26.0, 5.0)
    e = np.arange(-1.0, 1.01, 0.5)
    ex = np.arange(0.0, 2.01, 0.5)
    return np.asarray(list(itertools.product(ab, ab, e, ex, ex)), dtype=np.float64)


def _a3_objective(x, shared, lane):
    lN, lD, log_y, mask, delta = shared
    w, ly = _optim.lane_weights_and_targets(lane, mask, log_y)
    a, b, e, alpha, beta = x[0], x[1], x[2], x[3], x[4]
    t1 = a - alpha * lN
    t2 = b - beta * lD
    t3 = jnp.broadcast_to(e, lN.shape)
    m = jnp.maximum(jnp.maximum(t1, t2), t3)
    pred = m + jnp.log(jnp.exp(t1 - m) + jnp.exp(t2 - m) + jnp.exp(t3 - m))
    return jnp.sum(w * _optim.huber(pred - ly, delta))


def _a3_log_pred(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray) -> np.ndarray:
    a, b, e, alpha, beta = theta
    return np.logaddexp(np.logaddexp(a - alpha * lN, b - beta * lD), e)


def _derived(E, A, B, alpha, beta):
    """a, b, G from parameter arrays (numpy, elementwise). Python floats are made numpy floats,
    so a negative base (α or β < 0) gives NaN, not a complex number."""
    E, A, B, alpha, beta = (np.asarray(v, np.float64) for v in (E, A, B, alpha, beta))
    s = alpha + beta
    with np.errstate(all="ignore"):
        G = (alpha * A / (beta * B)) ** (1.0 / s)
    return beta / s, alpha / s, G


@dataclasses.dataclass(frozen=True, eq=False)
class Approach3Fit:
    """L(N, D) = E + A/N^α + B/D^β fitted by Hoffmann et al.'s Approach 3.

    Every parameter and derived quantity (``a = β/(α+β)``, ``b = α/(α+β)``,
    ``G = (αA/(βB))^(1/(α+β))``) is an :class:`Estimate` (value, 95% percentile interval and
    standard error from the bootstrap, when one was run). ``law`` is the point-value
    :class:`~jaxscale.fit.allocation.ChinchillaLaw`, which gives N_opt(C) = G·(C/6)^a and
    D_opt(C) = G⁻¹·(C/6)^b."""
    E: Estimate
    A: Estimate
    B: Estimate
    alpha: Estimate
    beta: Estimate
    a: Estimate
    b: Estimate
    G: Estimate
    objective: float
    n: int
    r2_log: float
    rmse_log: float
    residuals: np.ndarray
    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    n_starts: int
    n_refined: int
    converged: bool
    delta: float
    bootstrap_params: np.ndarray | None = None   # (n_bootstrap, 5): E, A, B, alpha, beta

    @property
    def law(self) -> ChinchillaLaw:
        return ChinchillaLaw(E=self.E.value, A=self.A.value, B=self.B.value,
                             alpha=self.alpha.value, beta=self.beta.value)

    @property
    def n_bootstrap(self) -> int:
        return 0 if self.bootstrap_params is None else int(self.bootstrap_params.shape[0])

    @property
    def floor_identified(self) -> bool:
        """Whether the data identify the irreducible loss E: ``_optim.floor_identified``."""
        return _optim.floor_identified(self.E.value, self.loss)

    @property
    def has_frontier(self) -> bool:
        """Whether the fitted law has a compute-optimal frontier: α, β > 0 and E, A, B finite
        (A, B > 0 by the log-sum-exp form). Without one, ``law``, ``n_opt`` and ``d_opt`` raise
        ``ValueError``: read the parameters, not an allocation."""
        v = [getattr(self, k).value for k in ("E", "A", "B", "alpha", "beta")]
        return all(math.isfinite(x) for x in v) and v[3] > 0 and v[4] > 0

    def predict(self, N, D):
        return self.law.loss(N, D)

    def n_opt(self, compute):
        return self.law.n_opt(compute)

    def d_opt(self, compute):
        return self.law.d_opt(compute)

    def n_opt_band(self, compute, level: float = 0.95):
        """Bootstrap percentile band of N_opt(C): (value, lo, hi) arrays."""
        return self._opt_band(compute, level, tokens=False)

    def d_opt_band(self, compute, level: float = 0.95):
        return self._opt_band(compute, level, tokens=True)

    def _opt_band(self, compute, level, tokens):
        level = _optim.check_level(level)
        C = np.atleast_1d(np.asarray(compute, np.float64))
        val = np.atleast_1d(self.law.d_opt(C) if tokens else self.law.n_opt(C))
        if self.bootstrap_params is None:
            return val, val, val
        E, A, B, al, be = self.bootstrap_params.T
        a, _, G = _derived(E, A, B, al, be)
        Nb = G[:, None] * (C[None, :] / 6.0) ** a[:, None]
        vals = C[None, :] / (6.0 * Nb) if tokens else Nb
        lo = np.nanpercentile(vals, 50 * (1 - level), axis=0)
        hi = np.nanpercentile(vals, 50 * (1 + level), axis=0)
        return val, lo, hi

    def to_json(self) -> dict:
        out = {k: getattr(self, k).to_json()
               for k in ("E", "A", "B", "alpha", "beta", "a", "b", "G")}
        out.update({"objective": self.objective, "n": self.n, "r2_log": self.r2_log,
                    "rmse_log": self.rmse_log, "n_starts": self.n_starts,
                    "n_bootstrap": self.n_bootstrap, "converged": self.converged,
                    "huber_delta": self.delta, "floor_identified": self.floor_identified,
                    "has_frontier": self.has_frontier})
        return out


def _bootstrap_starts(theta: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Where each bootstrap refit starts: the full-data optimum, and, when that optimum puts the
    irreducible loss E on its boundary (not ``_optim.floor_identified``: below 1% of the smallest
    loss), also the optimum with E moved to half the smallest loss and the two reducible terms
    halved; each resample keeps its better refit (``_optim.refit_from_starts``).

    Why: at E → 0 the objective is flat in E, so refits started only there never find a
    resample's floor and E's interval collapses onto the point estimate. An interior optimum
    (Hoffmann et al.'s data) keeps the single, warm start and its cost."""
    a, b, e, alpha, beta = (float(v) for v in theta)
    y_min = float(np.min(loss))
    if _optim.floor_identified(math.exp(e), loss):
        return np.asarray(theta, np.float64)[None]
    half = math.log(0.5)
    inner = np.array([a + half, b + half, math.log(0.5 * y_min), alpha, beta])
    return np.stack([np.asarray(theta, np.float64), inner])


def fit_approach3(N, D, loss, *, bootstrap: int = 0, seed: int = 0, delta: float = HUBER_DELTA,
                  starts: np.ndarray | None = None, refine: int = 64, screen_iters: int = 3,
                  seed_losses=None, level: float = 0.95) -> Approach3Fit:
    """Fit L(N, D) = E + A/N^α + B/D^β by Hoffmann et al.'s Approach 3.

    N, D, loss: positive finite arrays of equal length (parameters, tokens, final loss).
    bootstrap: number of case-bootstrap refits for the 95% intervals (0: none).
    starts: (K, 5) starting points (a, b, e, α, β); default :func:`hoffmann_grid` (4,500).
    refine: how many of the best distinct screened starts are run to convergence.
    screen_iters: L-BFGS iterations of the float32 screening phase (0: rank starts by their
        initial objective).
    seed_losses: optional (n, S) per-seed losses; resamples also resample seeds.
    level: coverage of the bootstrap intervals, a fraction in (0, 1).

    N and D must each take at least 3 distinct values: with fewer, the loss's variation along
    that axis cannot separate the term's scale and exponent from E, and the optimiser returns
    its starting values as if converged. Warns (:class:`NoFrontierWarning`) when the fitted law
    has no compute-optimal frontier (``has_frontier``: an exponent ≤ 0, or A or B beyond
    float64's range).
    """
    level = _optim.check_level(level)
    Ns, Ds, Ls = _validate_nd(N, D, loss, MIN_POINTS_A3, min_distinct=MIN_DISTINCT_A3,
                              who="Approach 3")
    if bootstrap < 0:
        raise ValueError(f"bootstrap: must be >= 0, got {bootstrap}")
    if not delta > 0:
        raise ValueError(f"delta: must be > 0, got {delta}")
    if refine < 1:
        raise ValueError(f"refine: must be >= 1, got {refine}")
    seeds = _optim.check_seed_losses(seed_losses, Ns.size)
    grid = hoffmann_grid() if starts is None else np.asarray(starts, np.float64)
    if grid.ndim != 2 or grid.shape[1] != 5 or not np.all(np.isfinite(grid)):
        raise ValueError(f"starts: expected a finite (K, 5) array of (a, b, e, alpha, beta), "
                         f"got shape {grid.shape}")
    lN, lD, ly = np.log(Ns), np.log(Ds), np.log(Ls)
    # Zero-weight padding to a power of two: similar-sized data sets share compiled programs.
    n_pad = _optim.padded_size(Ns.size)
    padded = [_optim.pad(v, n_pad) for v in (lN, lD, ly, np.ones_like(lN))]

    # Phase 1: screen every start in float32, all lanes in one program.
    shared32 = tuple(jnp.asarray(v, jnp.float32) for v in padded) + (
        jnp.asarray(delta, jnp.float32),)
    if screen_iters > 0 and grid.shape[0] > refine:
        r1 = _optim.run_lbfgs(_a3_objective, jnp.asarray(grid, jnp.float32), shared32, None,
                              max_iter=screen_iters, max_linesearch_steps=4)
        screened, values = r1.params.astype(np.float64), r1.values.astype(np.float64)
        # A screened lane that blew up falls back to its start.
        bad = ~(np.all(np.isfinite(screened), axis=1) & np.isfinite(values))
        screened[bad] = grid[bad]
    else:
        screened = grid
        values = np.asarray(jax_eval(shared32, grid))
    keep = _optim.distinct_best(screened, values, refine)
    if keep.size == 0:
        raise ValueError("starts: the objective is not finite at any starting point")

    # Phase 2: the survivors to convergence in float64; then the bootstrap, warm-started.
    with _optim.float64():
        shared = tuple(jnp.asarray(v) for v in padded) + (jnp.asarray(float(delta)),)
        r2 = _optim.run_lbfgs(_a3_objective, jnp.asarray(screened[keep]), shared, None,
                              max_iter=1000, max_linesearch_steps=20, ftol=1e-12,
                              fatol=1e-20 * n_pad, prune_after=50)
        finite = np.isfinite(r2.values) & np.all(np.isfinite(r2.params), axis=1)
        if not finite.any():
            raise ValueError("the Approach-3 objective diverged from every start; check the data")
        best = int(np.argmin(np.where(finite, r2.values, np.inf)))
        theta = r2.params[best]
        converged = bool(r2.converged[best])
        boot = None
        if bootstrap > 0:
            lane = _optim.bootstrap_lane(Ns.size, n_pad, bootstrap, seed, seeds)
            rb = _optim.refit_from_starts(_a3_objective, _bootstrap_starts(theta, Ls), shared, lane,
                                          bootstrap, max_iter=300, max_linesearch_steps=6,
                                          ftol=1e-10)
            p = rb.params
            # A refit may send log A or log B past float64's range (log > 709): A/N^α is then
            # identified only through α, not as a scale. Such a sample is kept as inf (the
            # percentile interval then reaches inf, which is what the data say) and counted.
            with np.errstate(over="ignore"):
                boot = np.stack([np.exp(p[:, 2]), np.exp(p[:, 0]), np.exp(p[:, 1]), p[:, 3], p[:, 4]],
                                axis=1)
            n_inf = int((~np.isfinite(boot[:, :3])).any(axis=1).sum())
            if n_inf:
                warnings.warn(f"{n_inf} of {bootstrap} bootstrap refits put E, A or B beyond float64's range "
                              f"(log > 709): at this scale the data fix those terms' exponents, not their "
                              f"scales", ConvergenceWarning, stacklevel=2)
            if not rb.converged.all():
                warnings.warn(f"{int((~rb.converged).sum())} of {bootstrap} bootstrap refits hit "
                              f"the iteration cap", ConvergenceWarning, stacklevel=2)
    if not converged:
        warnings.warn("the best Approach-3 start hit the iteration cap before converging",
                      ConvergenceWarning, stacklevel=2)
    a_, b_, e_, alpha, beta = (float(v) for v in theta)
    with np.errstate(over="ignore"):  # log A > 709: A is inf (no frontier, warned below), not an OverflowError
        E, A, B = (float(np.exp(v)) for v in (e_, a_, b_))
    why = [f"{k} = {v:.4g} <= 0 (the fitted loss does not fall with {x})"
           for k, v, x in (("alpha", alpha, "N"), ("beta", beta, "D")) if not v > 0]
    why += [f"{k} = {v:.4g} is beyond float64's range" for k, v in (("E", E), ("A", A), ("B", B))
            if not math.isfinite(v)]
    if why:
        warnings.warn(f"the fitted law has no compute-optimal frontier: {'; '.join(why)}; "
                      f"N_opt(C) and D_opt(C) do not exist for it (has_frontier is False)",
                      NoFrontierWarning, stacklevel=2)
    da, db, G = _derived(E, A, B, alpha, beta)
    r2_log, rmse, resid = _optim.log_space_fit_stats(_a3_log_pred(theta, lN, lD), ly)
    values = dict(E=E, A=A, B=B, alpha=alpha, beta=beta)
    samples = {}
    if boot is not None:
        samples = dict(zip(("E", "A", "B", "alpha", "beta"), boot.T))
        samples["a"], samples["b"], samples["G"] = _derived(*boot.T)
    values.update(a=float(da), b=float(db), G=float(G))
    est = {k: _optim.make_estimate(v, samples.get(k), level) for k, v in values.items()}
    return Approach3Fit(**est, objective=float(r2.values[best]), n=int(Ns.size), r2_log=r2_log,
                        rmse_log=rmse, residuals=resid, N=Ns, D=Ds, loss=Ls,
                        n_starts=int(grid.shape[0]), n_refined=int(keep.size),
                        converged=converged, delta=float(delta), bootstrap_params=boot)


def jax_eval(shared, grid):
    """Objective at every start (no optimisation), float32."""
    import jax
    return np.asarray(jax.vmap(lambda x: _a3_objective(x, shared, None))(
        jnp.asarray(grid, jnp.float32)), np.float64)
