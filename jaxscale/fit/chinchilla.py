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

Approach 1 takes, at each compute budget, the lowest loss any model size reaches (the envelope
across runs) and fits N_opt(C), D_opt(C) as power laws. Approach 2 fits a parabola in log N to
each IsoFLOP profile and fits the same power laws to the parabolas' minima. Both need
end-of-schedule losses and both are biased in known ways (see the warnings they emit).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import Sequence

import jax.numpy as jnp
import numpy as np
from scipy import stats as _stats

from jaxscale.fit import _optim
from jaxscale.fit._optim import Estimate
from jaxscale.fit.allocation import ChinchillaLaw

__all__ = [
    "Approach3Fit", "AllocationFit", "fit_approach1", "fit_approach2", "fit_approach3",
    "hoffmann_grid", "surface_isoflop_optima", "IntermediatePointsWarning", "IsoFLOPGridWarning",
    "ConvergenceWarning", "group_isoflops", "ISOFLOP_MAX_SPAN",
]

HUBER_DELTA = 1e-3
MIN_POINTS_A3 = 6
#: An IsoFLOP grid spanning more than this factor in N (largest / smallest size) is "too wide"
#: for a parabola in log N to be trusted: the loss is not quadratic in log N that far from the
#: optimum, and the fitted vertex moves (T5 of the reference targets: ±16×, i.e. a 256× span,
#: biases D_opt(1e24) by about −5% when α ≠ β).
ISOFLOP_MAX_SPAN = 100.0


class IntermediatePointsWarning(UserWarning):
    """Losses from inside one training schedule were given where end-of-schedule points are
    needed (points of a cosine schedule before its end are not compute-optimal endpoints)."""


class IsoFLOPGridWarning(UserWarning):
    """An IsoFLOP grid is too wide, off-centre, or has its minimum at an edge: the parabola's
    vertex is a biased estimate of N_opt."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped at its iteration cap before meeting its convergence test."""


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
                    "huber_delta": self.delta})
        return out


def _validate_nd(N, D, loss, min_len: int):
    Ns = _optim.as_positive_array("N", N, min_len=min_len)
    Ds = _optim.as_positive_array("D", D, min_len=min_len)
    Ls = _optim.as_positive_array("loss", loss, min_len=min_len)
    _optim.check_same_length(N=Ns, D=Ds, loss=Ls)
    return Ns, Ds, Ls


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
    """
    Ns, Ds, Ls = _validate_nd(N, D, loss, MIN_POINTS_A3)
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
            rb = _optim.run_lbfgs(_a3_objective, jnp.asarray(np.tile(theta, (bootstrap, 1))),
                                  shared, lane, max_iter=300,
                                  max_linesearch_steps=6, ftol=1e-10)
            p = rb.params
            boot = np.stack([np.exp(p[:, 2]), np.exp(p[:, 0]), np.exp(p[:, 1]), p[:, 3], p[:, 4]],
                            axis=1)
            if not rb.converged.all():
                warnings.warn(f"{int((~rb.converged).sum())} of {bootstrap} bootstrap refits hit "
                              f"the iteration cap", ConvergenceWarning, stacklevel=2)
    if not converged:
        warnings.warn("the best Approach-3 start hit the iteration cap before converging",
                      ConvergenceWarning, stacklevel=2)
    a_, b_, e_, alpha, beta = (float(v) for v in theta)
    E, A, B = math.exp(e_), math.exp(a_), math.exp(b_)
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


# ---------------------------------------------------------------------------------------------
# Approaches 1 and 2: N_opt(C), D_opt(C) as power laws in C
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class AllocationFit:
    """N_opt(C) = k_N·C^a and D_opt(C) = k_D·C^b fitted (least squares in log-log) to the
    per-budget optima of Approach 1 or 2. Intervals are 95% t-intervals of the log-log
    regression over the budgets."""
    approach: int
    a: Estimate
    b: Estimate
    k_N: Estimate
    k_D: Estimate
    budgets: np.ndarray        # C of each budget used
    n_opt_points: np.ndarray   # N_opt at each budget
    d_opt_points: np.ndarray   # D_opt at each budget
    loss_opt_points: np.ndarray
    r2_log: float
    parabolas: np.ndarray | None = None   # Approach 2: (n_budgets, 3) polyfit coefficients in log N
    isoflop_groups: tuple = ()            # Approach 2: index arrays of each budget's points
    notes: tuple[str, ...] = ()

    def n_opt(self, compute):
        C = np.asarray(compute, np.float64)
        return self.k_N.value * C ** self.a.value

    def d_opt(self, compute):
        C = np.asarray(compute, np.float64)
        return self.k_D.value * C ** self.b.value

    def _band(self, compute, y_pts, level):
        C = np.atleast_1d(np.asarray(compute, np.float64))
        x, y = np.log(self.budgets), np.log(y_pts)
        n = x.size
        slope, icpt = np.polyfit(x, y, 1)
        pred = icpt + slope * np.log(C)
        if n < 3:
            return np.exp(pred), np.exp(pred), np.exp(pred)
        s2 = np.sum((y - (icpt + slope * x)) ** 2) / (n - 2)
        sxx = np.sum((x - x.mean()) ** 2)
        se = np.sqrt(s2 * (1.0 / n + (np.log(C) - x.mean()) ** 2 / sxx))
        t = _stats.t.ppf(0.5 + level / 2, n - 2)
        return np.exp(pred), np.exp(pred - t * se), np.exp(pred + t * se)

    def n_opt_band(self, compute, level: float = 0.95):
        return self._band(compute, self.n_opt_points, level)

    def d_opt_band(self, compute, level: float = 0.95):
        return self._band(compute, self.d_opt_points, level)

    def to_json(self) -> dict:
        return {"a": self.a.to_json(), "b": self.b.to_json(), "k_N": self.k_N.to_json(),
                "k_D": self.k_D.to_json(), "law": "N_opt = k_N*C^a, D_opt = k_D*C^b",
                "n_budgets": int(self.budgets.size), "budgets": self.budgets.tolist(),
                "n_opt": self.n_opt_points.tolist(), "d_opt": self.d_opt_points.tolist(),
                "r2_log": self.r2_log, "notes": list(self.notes)}


def _loglog_fit(C: np.ndarray, y: np.ndarray, level: float) -> tuple[Estimate, Estimate, float]:
    """Least squares of log y on log C: (exponent, coefficient, R²) with t-intervals."""
    x, ly = np.log(C), np.log(y)
    n = x.size
    slope, icpt = np.polyfit(x, ly, 1)
    resid = ly - (icpt + slope * x)
    ss_tot = np.sum((ly - ly.mean()) ** 2)
    r2 = float(1 - np.sum(resid ** 2) / ss_tot) if ss_tot > 0 else float("nan")
    if n < 3:
        return Estimate(float(slope)), Estimate(float(math.exp(icpt))), r2
    s2 = np.sum(resid ** 2) / (n - 2)
    sxx = np.sum((x - x.mean()) ** 2)
    se_slope = math.sqrt(s2 / sxx)
    se_icpt = math.sqrt(s2 * (1.0 / n + x.mean() ** 2 / sxx))
    t = _stats.t.ppf(0.5 + level / 2, n - 2)
    return (Estimate(float(slope), (float(slope - t * se_slope), float(slope + t * se_slope)),
                     se_slope),
            Estimate(float(math.exp(icpt)),
                     (float(math.exp(icpt - t * se_icpt)), float(math.exp(icpt + t * se_icpt))),
                     float(math.exp(icpt) * se_icpt)),
            r2)


def _allocation_fit(approach, C, n_opt, loss_opt, level, **extra) -> AllocationFit:
    if C.size < 2:
        raise ValueError(f"Approach {approach}: found optima at {C.size} budget(s); need at "
                         f"least 2 (3 for intervals)")
    d_opt = C / (6.0 * n_opt)
    a, kN, r2 = _loglog_fit(C, n_opt, level)
    b, kD, _ = _loglog_fit(C, d_opt, level)
    return AllocationFit(approach=approach, a=a, b=b, k_N=kN, k_D=kD, budgets=C,
                         n_opt_points=n_opt, d_opt_points=d_opt, loss_opt_points=loss_opt,
                         r2_log=r2, **extra)


def fit_approach1(N, D, loss, *, run_id: Sequence | None = None, intermediate=None,
                  budgets=None, n_budgets: int = 12, level: float = 0.95) -> AllocationFit:
    """Approach 1: at each compute budget C (= 6·N·D), the minimum loss over model sizes (the
    envelope) gives N_opt(C); N_opt and D_opt = C/(6·N_opt) are then fitted as power laws in C.

    Each size's loss is interpolated linearly in log C between its runs of different lengths
    (never extrapolated), so give **end-of-schedule** points of several runs per size.
    ``run_id`` (one id per point) and ``intermediate`` (bool per point) flag points taken inside a
    schedule; either triggers :class:`IntermediatePointsWarning` (several points sharing one run
    id are intermediate checkpoints of that run).
    budgets: the budgets to evaluate (default: ``n_budgets`` log-spaced over the data's range).
    """
    Ns, Ds, Ls = _validate_nd(N, D, loss, 4)
    if run_id is not None:
        ids = list(run_id)
        _optim.check_same_length(N=Ns, run_id=ids)
        if len(set(map(str, ids))) < len(ids):
            warnings.warn("several points share one run_id: those are intermediate checkpoints "
                          "of one schedule, not end-of-schedule losses, and bias the envelope",
                          IntermediatePointsWarning, stacklevel=2)
    if intermediate is not None:
        flags = np.asarray(intermediate, bool)
        _optim.check_same_length(N=Ns, intermediate=flags)
        if flags.any():
            warnings.warn(f"{int(flags.sum())} point(s) are flagged intermediate (inside a "
                          f"schedule): Approach 1 needs end-of-schedule losses",
                          IntermediatePointsWarning, stacklevel=2)
    C = 6.0 * Ns * Ds
    lC = np.log(C)
    sizes = np.unique(Ns)
    if sizes.size < 2:
        raise ValueError("N: Approach 1 needs at least 2 distinct model sizes")
    if budgets is None:
        # Budgets inside the range where at least two sizes overlap.
        grid = np.linspace(lC.min(), lC.max(), int(n_budgets) + 2)[1:-1]
    else:
        grid = np.log(_optim.as_positive_array("budgets", budgets))
    half_bin = (lC.max() - lC.min()) / max(2 * int(n_budgets), 2)
    per_size = []
    for s in sizes:
        m = Ns == s
        order = np.argsort(lC[m])
        per_size.append((s, lC[m][order], Ls[m][order]))
    C_out, N_out, L_out = [], [], []
    for g in grid:
        best_l, best_n, count = np.inf, None, 0
        for s, xs, ys in per_size:
            if xs.size >= 2 and xs[0] <= g <= xs[-1]:
                val = float(np.interp(g, xs, ys))
            elif xs.size == 1 and abs(xs[0] - g) <= half_bin:
                val = float(ys[0])
            else:
                continue
            count += 1
            if val < best_l:
                best_l, best_n = val, s
        if count >= 2:
            C_out.append(math.exp(g))
            N_out.append(best_n)
            L_out.append(best_l)
    return _allocation_fit(1, np.asarray(C_out), np.asarray(N_out, np.float64),
                           np.asarray(L_out), level)


def group_isoflops(compute, rtol: float = 0.1) -> list[np.ndarray]:
    """Group points whose compute agrees within ``rtol`` (relative, chained) into IsoFLOP
    budgets; returns index arrays sorted by budget."""
    C = _optim.as_positive_array("compute", compute)
    order = np.argsort(C)
    lc = np.log(C[order])
    breaks = np.nonzero(np.diff(lc) > math.log1p(rtol))[0] + 1
    return [order[g] for g in np.split(np.arange(C.size), breaks)]


def fit_approach2(N, D, loss, *, groups: Sequence[np.ndarray] | None = None, rtol: float = 0.1,
                  max_span: float = ISOFLOP_MAX_SPAN, min_sizes: int = 3,
                  level: float = 0.95) -> AllocationFit:
    """Approach 2: for each IsoFLOP budget, a parabola of loss in log N; its vertex is N_opt(C);
    N_opt and D_opt = C/(6·N_opt) are then fitted as power laws in C.

    Points are grouped into budgets by C = 6·N·D (within ``rtol``) unless ``groups`` (index
    arrays) are given. Budgets with fewer than ``min_sizes`` distinct sizes are skipped.

    Warns (:class:`IsoFLOPGridWarning`) when a grid spans more than ``max_span`` in N, when its
    minimum lies at an edge, or when the vertex is off-centre (outside the middle half of the
    grid in log N), since the parabola's vertex is then biased. The unbiased alternative is to fit
    Approach 3 and minimise its surface along each contour: :func:`surface_isoflop_optima`.
    """
    Ns, Ds, Ls = _validate_nd(N, D, loss, 3)
    C = 6.0 * Ns * Ds
    if groups is None:
        groups = group_isoflops(C, rtol)
    C_out, N_out, L_out, coefs, used, notes = [], [], [], [], [], []
    for idx in groups:
        idx = np.asarray(idx, int)
        lN = np.log(Ns[idx])
        if np.unique(lN).size < min_sizes:
            continue
        c_mid = float(np.exp(np.mean(np.log(C[idx]))))
        p2, p1, p0 = np.polyfit(lN, Ls[idx], 2)
        if not p2 > 0:
            notes.append(f"C={c_mid:.3g}: the profile is not convex (no minimum); skipped")
            warnings.warn(notes[-1], IsoFLOPGridWarning, stacklevel=2)
            continue
        vertex = -p1 / (2 * p2)
        lo, hi = lN.min(), lN.max()
        span = math.exp(hi - lo)
        problems = []
        if span > max_span:
            problems.append(f"it spans {span:.0f}x in N (> {max_span:.0f}x)")
        i_min = int(np.argmin(Ls[idx]))
        if lN[i_min] in (lo, hi) or not lo <= vertex <= hi:
            problems.append("its minimum lies at an edge of the grid")
        elif abs(vertex - (lo + hi) / 2) > (hi - lo) / 4:
            problems.append("its vertex is off-centre")
        if problems:
            notes.append(f"C={c_mid:.3g}: IsoFLOP grid problem: " + "; ".join(problems))
            warnings.warn(notes[-1] + "; the parabola's vertex is biased. Unbiased alternative: "
                          "fit_approach3(...) then surface_isoflop_optima(fit.law, budgets)",
                          IsoFLOPGridWarning, stacklevel=2)
        C_out.append(c_mid)
        N_out.append(math.exp(vertex))
        L_out.append(float(p0 + p1 * vertex + p2 * vertex ** 2))
        coefs.append((p2, p1, p0))
        used.append(idx)
    return _allocation_fit(2, np.asarray(C_out), np.asarray(N_out), np.asarray(L_out), level,
                           parabolas=np.asarray(coefs), isoflop_groups=tuple(used),
                           notes=tuple(notes))


def surface_isoflop_optima(law: ChinchillaLaw, budgets) -> tuple[np.ndarray, np.ndarray]:
    """The unbiased alternative to IsoFLOP parabolas: minimise a fitted L(N, D) along each
    contour C = 6·N·D numerically (bounded scalar minimisation in log N). Returns
    (N_opt, D_opt) arrays; they agree with the closed form ``law.n_opt``."""
    from scipy.optimize import minimize_scalar
    C = np.atleast_1d(_optim.as_positive_array("budgets", budgets))
    n_out = []
    for c in C:
        guess = math.log(law.n_opt(c))

        def f(lnN, c=c):
            n = math.exp(lnN)
            return law.E + law.A / n ** law.alpha + law.B / (c / (6 * n)) ** law.beta

        r = minimize_scalar(f, bounds=(guess - 10, guess + 10), method="bounded",
                            options={"xatol": 1e-10})
        n_out.append(math.exp(r.x))
    N_opt = np.asarray(n_out)
    return N_opt, C / (6.0 * N_opt)
