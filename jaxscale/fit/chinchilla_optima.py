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
from jaxscale.fit.sizes import SIZE_RTOL, n_distinct, size_clusters, sorted_runs

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
    vertex is a biased estimate of N_opt (Approach 2). Approach 1 warns with it too when it
    skips a budget whose best size is the smallest or largest size covering that budget."""


def _validate_nd(N, D, loss, min_len: int, min_distinct: int = 0, who: str = ""):
    """N, D, loss as checked float64 arrays. ``min_distinct``: the fewest distinct values N and
    D must each take (``ValueError`` naming the array otherwise): a fit that needs the loss to
    vary along N (or D) cannot tell anything about that term from many points at one N. Values
    within ``sizes.SIZE_RTOL`` of each other count as one (float jitter is no new size)."""
    Ns = _optim.as_positive_array("N", N, min_len=min_len)
    Ds = _optim.as_positive_array("D", D, min_len=min_len)
    Ls = _optim.as_positive_array("loss", loss, min_len=min_len)
    _optim.check_same_length(N=Ns, D=Ds, loss=Ls)
    for name, arr in (("N", Ns), ("D", Ds)):
        k = n_distinct(arr)
        if k < min_distinct:
            raise ValueError(f"{name}: {who or 'this fit'} needs at least {min_distinct} distinct "
                             f"values of {name} (within a relative {SIZE_RTOL:g}), got {k}")
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
        level = _optim.check_level(level)
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


def _allocation_fit(approach, C, n_opt, loss_opt, level, *, d_opt=None, why: str = "",
                    **extra) -> AllocationFit:
    """``d_opt``: D_opt at each budget (default C/(6·N_opt)); ``why``: appended to the error when
    fewer than 2 budgets remain (which budgets were skipped, and why)."""
    # Distinct budgets, not points: optima all at one C (one IsoFLOP, or a budget list of one
    # value repeated) leave the exponent undetermined; polyfit would still invent one.
    n_budgets = int(np.unique(C).size)
    if n_budgets < 2:
        raise ValueError(f"Approach {approach}: found optima at {n_budgets} budget(s); need at "
                         f"least 2 distinct compute budgets (3 for intervals)" + (f". {why}" if why else ""))
    d_opt = C / (6.0 * n_opt) if d_opt is None else np.asarray(d_opt, np.float64)
    a, kN, r2 = _loglog_fit(C, n_opt, level)
    b, kD, _ = _loglog_fit(C, d_opt, level)
    return AllocationFit(approach=approach, a=a, b=b, k_N=kN, k_D=kD, budgets=C,
                         n_opt_points=n_opt, d_opt_points=d_opt, loss_opt_points=loss_opt,
                         r2_log=r2, **extra)


def fit_approach1(N, D, loss, *, run_id: Sequence | None = None, intermediate=None,
                  budgets=None, n_budgets: int = 12, rtol: float = 0.1,
                  level: float = 0.95) -> AllocationFit:
    """Approach 1: at each compute budget C (= 6·N·D), the minimum loss over model sizes (the
    envelope of the per-size loss-vs-compute curves) gives N_opt(C); N_opt and
    D_opt = C/(6·N_opt) are then fitted as power laws in C.

    Give **end-of-schedule** points of several runs per size. ``run_id`` (one id per point) and
    ``intermediate`` (bool per point) flag points taken inside a schedule; either triggers
    :class:`IntermediatePointsWarning` (several points sharing one run id are intermediate
    checkpoints of that run).

    How the envelope is read off the points:

    * Sizes within ``sizes.SIZE_RTOL`` (relative) of each other are one size (float jitter of a
      size read back from a figure is no new model), at the geometric mean of their values.
    * Rows with the same (N, D) (seeds given as separate rows, duplicates) are averaged into one
      point first: they are one measurement of one run length, not two runs.
    * A size with points at two or more computes has a loss curve, linear in log C between its
      points and never extrapolated. A size with one point is known at that compute only.
    * ``budgets=None``: the budgets are ``n_budgets`` log-spaced values over the data's range,
      where sizes count only where their points bracket the budget (interpolation), plus one
      budget per IsoFLOP group of one-point sizes (their computes agreeing within ``rtol``, as
      :func:`group_isoflops` groups them); grid values within ``rtol`` of a one-point size are
      dropped, that group's budget stands for them. ``budgets`` given: those budgets.
    * At a group's budget or a given budget, a point within ``rtol`` of it (a one-point size's
      point, or the first or last point of a curve that does not reach the budget) counts as a
      run at that budget, at its nearest such budget only: no run is used at two budgets.
    * The optimum is recorded where its loss was measured: at the budget when interpolated, at
      the run's own compute (so D_opt is that run's D) when it is a single point.

    A budget needs at least 3 sizes. A budget whose best size is the smallest or the largest
    size counted there is **skipped**, with one :class:`IsoFLOPGridWarning` (and a note) listing
    such budgets: the true optimum may lie outside the sizes run at that budget, so the pick is
    a bound on N_opt, not an estimate of it, and fitting such bounds biases the exponent
    (Approach 2 can keep such a budget with a warning because its parabola's vertex is still an
    estimate; Approach 1's pick is the edge size itself). Raises ``ValueError`` when fewer than
    2 distinct budgets remain.
    """
    level = _optim.check_level(level)
    Ns, Ds, Ls = _validate_nd(N, D, loss, 4)
    if isinstance(n_budgets, bool) or int(n_budgets) != n_budgets or n_budgets < 2:
        raise ValueError(f"n_budgets: must be an integer >= 2, got {n_budgets!r}")
    if not (math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol: must be a finite number >= 0, got {rtol!r}")
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
    # One size per cluster of N within SIZE_RTOL; then one point per (N, D): repeated rows averaged.
    labels, size_values = size_clusters(Ns)
    keys, inv = np.unique(np.stack([size_values[labels], Ds], axis=1), axis=0, return_inverse=True)
    inv = np.asarray(inv).ravel()
    Lp = np.bincount(inv, weights=Ls) / np.bincount(inv)
    Np = keys[:, 0]
    lC = np.log(6.0 * Np * keys[:, 1])
    sizes = np.unique(Np)
    if sizes.size < 2:
        raise ValueError("N: Approach 1 needs at least 2 distinct model sizes")
    tol = math.log1p(rtol)
    if lC.max() - lC.min() <= tol:
        raise ValueError(f"compute: every run has C = 6*N*D within {rtol:.0%} of "
                         f"{math.exp(lC.mean()):.3g}: Approach 1 needs runs at 2 or more "
                         f"distinct compute budgets")
    curves, singles, ends = [], [], []   # curves: (size, log C, loss, point index of each end)
    for s in sizes:
        m = np.nonzero(Np == s)[0]
        m = m[np.argsort(lC[m])]
        curves.append((s, lC[m], Lp[m], (int(m[0]), int(m[-1]))))
        if m.size == 1:
            singles.append(int(m[0]))
        else:
            ends += [int(m[0]), int(m[-1])]
    singles = np.asarray(singles, int)

    # The budgets: (log C, matched?); "matched" budgets take points within rtol (owner below).
    owner = {}   # point index -> the one matched budget it may be used at
    if budgets is None:
        plan = []
        if singles.size:
            for g in group_isoflops(np.exp(lC[singles]), rtol):
                plan.append((float(np.mean(lC[singles[g]])), True))
                owner.update({int(i): len(plan) - 1 for i in singles[g]})
        grid = np.linspace(lC.min(), lC.max(), int(n_budgets) + 2)[1:-1]
        plan += [(float(g), False) for g in grid
                 if not (singles.size and np.min(np.abs(lC[singles] - g)) <= tol)]
        loose = ends
    else:
        plan = [(float(g), True) for g in np.unique(np.log(
            _optim.as_positive_array("budgets", budgets)))]
        loose = ends + singles.tolist()
    matched = np.array([g if m else np.nan for g, m in plan])
    for i in loose:
        if np.isnan(matched).all():
            break
        dist = np.abs(matched - lC[i])
        k = int(np.nanargmin(dist))
        if dist[k] <= tol:
            owner[i] = k

    C_out, N_out, L_out, edge = [], [], [], []
    for k, (g, _) in enumerate(plan):
        cand = []   # (loss, size, log C where that loss was measured)
        for s, xs, ys, (i_lo, i_hi) in curves:
            if xs.size >= 2 and xs[0] <= g <= xs[-1]:
                cand.append((float(np.interp(g, xs, ys)), float(s), g))
                continue
            i = i_lo if abs(lC[i_lo] - g) <= abs(lC[i_hi] - g) else i_hi
            if owner.get(i) == k:
                cand.append((float(Lp[i]), float(s), float(lC[i])))
        if len(cand) < 3:
            continue
        best = min(cand)
        counted = [c[1] for c in cand]
        if best[1] in (min(counted), max(counted)):
            edge.append(math.exp(g))
            continue
        C_out.append(math.exp(best[2]))
        N_out.append(best[1])
        L_out.append(best[0])
    notes = ()
    if edge:
        notes = (f"skipped {len(edge)} budget(s) (C = {', '.join(f'{c:.3g}' for c in edge)}) "
                 f"whose best size is the smallest or largest size run there: the optimum may "
                 f"lie outside those sizes",)
        warnings.warn(f"Approach 1: {notes[0]}", IsoFLOPGridWarning, stacklevel=2)
    if edge and np.unique(C_out).size < 2:
        raise ValueError(f"Approach 1: found optima at {np.unique(C_out).size} budget(s); need at "
                         f"least 2 distinct compute budgets. {len(edge)} budget(s) were skipped "
                         f"because the best size there is the smallest or largest size run there "
                         f"(the optimum lies outside the sizes): run sizes that bracket it")
    order = np.argsort(C_out, kind="stable")
    return _allocation_fit(1, np.asarray(C_out)[order], np.asarray(N_out, np.float64)[order],
                           np.asarray(L_out)[order], level, notes=notes)


def group_isoflops(compute, rtol: float = 0.1) -> list[np.ndarray]:
    """Group points whose compute agrees within ``rtol`` (relative, chained) into IsoFLOP
    budgets; returns index arrays sorted by budget."""
    C = _optim.as_positive_array("compute", compute)
    order, breaks = sorted_runs(C, rtol)  # the rule sizes are told apart by, at this tolerance
    return [order[g] for g in np.split(np.arange(C.size), breaks)]


def fit_approach2(N, D, loss, *, compute=None, groups: Sequence[np.ndarray] | None = None,
                  rtol: float = 0.1, max_span: float = ISOFLOP_MAX_SPAN, min_sizes: int = 3,
                  level: float = 0.95) -> AllocationFit:
    """Approach 2: for each IsoFLOP budget, a parabola of loss in log N; its vertex is N_opt(C);
    N_opt and D_opt are then fitted as power laws in C.

    ``compute``: each point's compute budget, where the source records one
    (``FitData.budget``: for the study's IsoFLOP rows C = 6·N_total·D, whatever N is). Points are
    grouped into budgets by it (within ``rtol``), and a budget's C is its points' (geometric
    mean); D_opt = C/(6·N_opt·k), with k = C/(6·N·D) of the budget's runs interpolated linearly
    in log N at the vertex (k = N_total/N for rows fitted on non-embedding N, where C/(6·N_opt)
    would count the wrong parameters; k = 1 where C = 6·N·D). Without ``compute``, by
    C = 6·N·D, and D_opt = C/(6·N_opt). ``groups`` (index arrays) overrides the
    grouping. Budgets with fewer than ``min_sizes`` distinct sizes (within ``sizes.SIZE_RTOL``)
    are skipped with an :class:`IsoFLOPGridWarning` and a note saying so.

    Warns (:class:`IsoFLOPGridWarning`) when a grid spans more than ``max_span`` in N, when its
    minimum lies at an edge, or when the vertex is off-centre (outside the middle half of the
    grid in log N), since the parabola's vertex is then biased. The unbiased alternative is to fit
    Approach 3 and minimise its surface along each contour: :func:`surface_isoflop_optima`.
    """
    level = _optim.check_level(level)
    Ns, Ds, Ls = _validate_nd(N, D, loss, 3)
    if compute is None:
        C = 6.0 * Ns * Ds
    else:
        C = _optim.as_positive_array("compute", compute)
        _optim.check_same_length(N=Ns, compute=C)
    by = "C = 6*N*D" if compute is None else "the compute budget given per point"
    if groups is None:
        groups = group_isoflops(C, rtol)
        by += f" (within {rtol:.0%})"
    else:
        by = "the groups given"
    C_out, N_out, D_out, L_out, coefs, used, notes, few = [], [], [], [], [], [], [], []
    for idx in groups:
        idx = np.asarray(idx, int)
        lN = np.log(Ns[idx])
        c_mid = float(np.exp(np.mean(np.log(C[idx]))))
        labels, size_values = size_clusters(Ns[idx])
        k = size_values.size
        if k < min_sizes:
            few.append(f"{c_mid:.3g} ({k} size{'s' if k != 1 else ''})")
            continue
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
        if compute is None:
            D_out.append(c_mid / (6.0 * math.exp(vertex)))
        else:
            # D_opt = C/(6·N_opt·k), k = C/(6·N·D) of the budget's runs (N_total/N for the study's
            # rows fitted on non-embedding N, 1 where C = 6·N·D), interpolated piecewise-linearly
            # in log N between the grid's sizes, so exact at a size: k need not move steadily with
            # N (the ladder's N_total/N goes 2.44, 1.96, 2.46, 1.73, 1.49), and one line through
            # it put D_opt 12-19% off at a grid size
            lk = np.log(C[idx] / (6.0 * Ns[idx] * Ds[idx]))
            x_S = np.array([lN[labels == j].mean() for j in range(labels.max() + 1)])
            k_S = np.array([lk[labels == j].mean() for j in range(labels.max() + 1)])
            D_out.append(c_mid / (6.0 * math.exp(vertex) * math.exp(float(np.interp(vertex, x_S, k_S)))))
        L_out.append(float(p0 + p1 * vertex + p2 * vertex ** 2))
        coefs.append((p2, p1, p0))
        used.append(idx)
    why = ""
    if few:
        shown = ", ".join(few[:6]) + (f" and {len(few) - 6} more" if len(few) > 6 else "")
        why = (f"skipped {len(few)} budget(s) with fewer than {min_sizes} distinct sizes (C = {shown}), "
               f"points grouped by {by}")
        if compute is None and groups is None:
            why += ("; if the runs were planned at C = 6*N*D with another N (total parameters, say), "
                    "give that budget (a C column) or fit on that N")
        notes.append(why)
        warnings.warn(f"Approach 2: {why}", IsoFLOPGridWarning, stacklevel=2)
    notes.insert(0, f"IsoFLOP budgets grouped by {by}")
    return _allocation_fit(2, np.asarray(C_out), np.asarray(N_out), np.asarray(L_out), level,
                           d_opt=np.asarray(D_out), why=why, parabolas=np.asarray(coefs),
                           isoflop_groups=tuple(used), notes=tuple(notes))


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
