"""Chinchilla Approaches 1 and 2 (Hoffmann et al. 2022): N_opt(C), D_opt(C) as power laws in C
fitted to per-budget optima.

Approach 1 takes, at each compute budget, the lowest loss any model size reaches (the envelope
across runs) and fits N_opt(C), D_opt(C) as power laws. Approach 2 fits a parabola in log N to
each IsoFLOP profile and fits the same power laws to the parabolas' minima. Both need
end-of-schedule losses and both are biased in known ways (see the warnings they emit);
``surface_isoflop_optima`` is the unbiased alternative, from an Approach 3 fit
(``chinchilla.py``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import numpy as np
from scipy import stats as _stats

from jaxscale.fit import _optim
from jaxscale.fit._optim import Estimate
from jaxscale.fit.allocation import ChinchillaLaw

__all__ = [
    "AllocationFit", "fit_approach1", "fit_approach2", "group_isoflops", "surface_isoflop_optima",
    "IntermediatePointsWarning", "IsoFLOPGridWarning", "ISOFLOP_MAX_SPAN",
]

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


def _validate_nd(N, D, loss, min_len: int):
    Ns = _optim.as_positive_array("N", N, min_len=min_len)
    Ds = _optim.as_positive_array("D", D, min_len=min_len)
    Ls = _optim.as_positive_array("loss", loss, min_len=min_len)
    _optim.check_same_length(N=Ns, D=Ds, loss=Ls)
    return Ns, Ds, Ls


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
