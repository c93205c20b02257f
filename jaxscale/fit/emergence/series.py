"""A score series over a scale axis: validation, monotone smoothing, threshold crossing, and the
BIG-bench sharpness scores (the per-task verdict built on them is in ``verdict.py``).

The scale axis is anything positive where "more" should help: parameters, tokens, compute, steps;
or something where *less* should help (validation loss), with ``decreasing=True``. Internally every
function works on x = log10(scale) (or −log10(scale) for a decreasing axis, or the raw scale with
``log_scale=False``), and reports positions back in scale units.

A series may hold several points at one scale (seeds); they are pooled (mean, weighted by the
trial counts where given) before smoothing and crossing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxscale.fit.emergence.resample import hierarchical_resample

__all__ = [
    "to_x", "from_x", "check_series", "pool_by_scale", "isotonic_increasing", "Crossing",
    "threshold_crossing", "breakthroughness", "linearity", "sharpness_ratio",
]


def to_x(scale, log_scale: bool = True, decreasing: bool = False) -> np.ndarray:
    """Position on the fitting axis: log10(scale) (negated for a decreasing axis)."""
    scale = np.asarray(scale, np.float64)
    x = np.log10(scale) if log_scale else scale
    return -x if decreasing else x


def from_x(x, log_scale: bool = True, decreasing: bool = False):
    """Inverse of :func:`to_x`; a position past float range (an unidentified fit's interval can
    run hundreds of decades out) is inf or 0, without numpy's overflow warning."""
    x = -np.asarray(x, np.float64) if decreasing else np.asarray(x, np.float64)
    if not log_scale:
        return x
    with np.errstate(over="ignore"):
        return 10.0 ** x


def check_series(scale, values, name: str = "scores", *, log_scale: bool = True,
                 unit_interval: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (scale, value) series; errors name the argument and the bad value."""
    scale = np.asarray(scale, np.float64).reshape(-1)
    values = np.asarray(values, np.float64).reshape(-1)
    if scale.shape != values.shape:
        raise ValueError(f"scale and {name} must have the same length, got {scale.size} and "
                         f"{values.size}")
    if scale.size < 2:
        raise ValueError(f"a series needs at least 2 points, got {scale.size}")
    bad = ~np.isfinite(scale) | ((scale <= 0) if log_scale else False)
    if np.any(bad):
        raise ValueError(f"scale must be finite{' and > 0' if log_scale else ''}, got "
                         f"{float(scale[bad][0])!r}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {float(values[~np.isfinite(values)][0])!r}")
    if unit_interval and (values.min() < 0 or values.max() > 1):
        bad_v = values[(values < 0) | (values > 1)][0]
        raise ValueError(f"{name} must lie in [0, 1], got {float(bad_v)!r}")
    return scale, values


def pool_by_scale(x_S: np.ndarray, y_S: np.ndarray, w_S: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points sharing an x (seeds of one size) pooled: (sorted unique x, weighted mean y, weight)."""
    w_S = np.ones_like(y_S) if w_S is None else np.asarray(w_S, np.float64)
    x_M, inverse = np.unique(x_S, return_inverse=True)
    w_M = np.bincount(inverse, weights=w_S)
    y_M = np.bincount(inverse, weights=w_S * y_S) / w_M
    return x_M, y_M, w_M


def isotonic_increasing(y_M: np.ndarray, w_M: np.ndarray | None = None) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators).

    Why isotonic rather than a cumulative maximum: a single lucky small model would lift every
    later point under cummax and move the crossing earlier; pooling averages the violators
    instead, which is the least-squares monotone estimate.
    """
    y_M = np.asarray(y_M, np.float64)
    w_M = np.ones_like(y_M) if w_M is None else np.asarray(w_M, np.float64)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for y, w in zip(y_M, w_M):
        blocks.append([y, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


@dataclasses.dataclass(frozen=True)
class Crossing:
    """Where a monotone-smoothed series first reaches ``threshold``.

    status: "crossed" (interpolated between two measured scales), "at or above threshold at the
    smallest scale" or "threshold not reached" (both: ``scale`` is NaN, not identified; so is
    ``table.CHANCE_STATUS``, a threshold at or below the series' chance level).
    x:  the crossing on the fitting axis (log10 scale); ``ci``: bootstrap interval in scale units
    (NaN when no counts were given).
    """

    threshold: float
    scale: float
    x: float
    status: str
    lower_index: int
    scales: tuple[float, ...]
    smoothed: tuple[float, ...]
    ci: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def identified(self) -> bool:
        return self.status == "crossed"


def _crossing_x(x_M: np.ndarray, y_M: np.ndarray, threshold: float) -> tuple[float, int, str]:
    """First j with y_j < θ ≤ y_{j+1}; x_θ = x_j + (θ − y_j)(x_{j+1} − x_j)/(y_{j+1} − y_j)."""
    if y_M[0] >= threshold:
        return float("nan"), -1, "at or above threshold at the smallest scale"
    above = np.flatnonzero(y_M >= threshold)
    if above.size == 0:
        return float("nan"), -1, "threshold not reached"
    j = int(above[0]) - 1
    frac = (threshold - y_M[j]) / (y_M[j + 1] - y_M[j])
    return float(x_M[j] + frac * (x_M[j + 1] - x_M[j])), j, "crossed"


def threshold_crossing(scale, score, threshold: float = 0.5, *, weights=None,
                       log_scale: bool = True, decreasing: bool = False,
                       successes=None, trials=None, n_boot: int = 0, seed: int = 0,
                       ci: float = 0.95) -> Crossing:
    """Interpolated crossing of ``threshold`` in log scale, after isotonic smoothing.

    Points at one scale are pooled (weighted by ``weights``, or ``trials``), the pooled series is
    made non-decreasing along the axis (:func:`isotonic_increasing`), and the first bracketing pair
    is interpolated linearly in x = log10(scale). With ``successes``/``trials`` and ``n_boot`` > 0
    an interval comes from the hierarchical bootstrap (seeds within a scale, then examples).
    """
    scale, score = check_series(scale, score, "score", log_scale=log_scale)
    x_S = to_x(scale, log_scale, decreasing)
    w_S = trials if weights is None else weights
    x_M, y_M, w_M = pool_by_scale(x_S, score, None if w_S is None else np.asarray(w_S, float))
    smooth_M = isotonic_increasing(y_M, w_M)
    x, j, status = _crossing_x(x_M, smooth_M, threshold)
    interval = (float("nan"), float("nan"))
    if successes is not None and trials is not None and n_boot > 0:
        s_BS, n_BS = hierarchical_resample(x_S, np.asarray(successes, float),
                                           np.asarray(trials, float), n_boot, seed)
        xs = []
        for s_S, n_S in zip(s_BS, n_BS):
            bx_M, by_M, bw_M = pool_by_scale(x_S, s_S / n_S, n_S)
            xs.append(_crossing_x(bx_M, isotonic_increasing(by_M, bw_M), threshold)[0])
        xs = np.asarray(xs)
        if np.mean(np.isfinite(xs)) >= ci:  # an interval only when most replicates cross
            lo, hi = np.nanpercentile(xs, [50 * (1 - ci), 50 * (1 + ci)])
            a, b = from_x(np.array([lo, hi]), log_scale, decreasing)
            interval = (float(min(a, b)), float(max(a, b)))
    return Crossing(
        threshold=float(threshold), scale=float(from_x(x, log_scale, decreasing)), x=x,
        status=status, lower_index=j, scales=tuple(_scales_in_x_order(scale, x_M, log_scale,
                                                                     decreasing)),
        smoothed=tuple(smooth_M.tolist()), ci=interval)


def _scales_in_x_order(scale, x_M, log_scale, decreasing) -> list[float]:
    """The distinct scales, exactly as given, ordered along the axis like ``x_M``."""
    uniq = np.unique(scale)
    if uniq.size != x_M.size:  # pragma: no cover - distinct x and distinct scale coincide
        return from_x(x_M, log_scale, decreasing).tolist()
    return (uniq[::-1] if decreasing else uniq).tolist()


def _improvement_and_steps(y_M: np.ndarray) -> tuple[float, np.ndarray]:
    y_M = np.asarray(y_M, np.float64)
    if y_M.size < 2:
        raise ValueError(f"sharpness scores need at least 2 sizes, got {y_M.size}")
    sign = np.sign(np.argmax(y_M) - np.argmin(y_M))
    return float(sign * (y_M.max() - y_M.min())), np.diff(y_M)


def breakthroughness(y_M) -> float:
    """BIG-bench breakthroughness (Srivastava et al. 2022, arXiv 2206.04615, Appendix B).

    With y_1..y_m the scores sorted by scale and Δ_i = y_{i+1} − y_i:
    I(y) = sign(argmax y − argmin y)·(max y − min y) and B = I(y) / sqrt(median_i Δ_i²).
    Large when the gain comes in a few big steps (the median ignores them); for a ramp of m−1
    equal steps B = m−1. When the median squared step is 0 (a pure step) B is ±inf, and 0 for a
    flat series. Like the original, it ignores the x-spacing: use log-uniform scale grids.
    """
    improvement, d = _improvement_and_steps(y_M)
    denom = np.sqrt(np.median(d * d))
    if improvement == 0:
        return 0.0
    return float(improvement / denom) if denom > 0 else float(np.sign(improvement) * np.inf)


def linearity(y_M) -> float:
    """Linearity score, by the construction parallel to :func:`breakthroughness`:
    L = I(y) / sqrt(mean_i Δ_i²) (root-*mean*-square step). A ramp of m−1 equal steps gives m−1, a
    single jump √(m−1). Caveat: taken from a secondary description of BIG-bench's Appendix B and
    not checked against the paper's text; treat it as a descriptive heuristic."""
    improvement, d = _improvement_and_steps(y_M)
    denom = np.sqrt(np.mean(d * d))
    return float(improvement / denom) if denom > 0 else 0.0


def sharpness_ratio(y_M) -> float:
    """Breakthroughness divided by m − 1, its value for a perfect ramp: 1 for a straight line in
    the (log-uniform) index, larger when the gain concentrates in few steps, ≤ 0 when the series
    gets worse."""
    return breakthroughness(y_M) / (len(y_M) - 1)
