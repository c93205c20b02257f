"""A fitted quantity with its bootstrap interval and standard error, and how the interval is
taken: percentiles over every resample that did not fail, infinite ones included (a resample
whose parameter overflowed is an outcome of the bootstrap, not a failure)."""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = ["Estimate", "check_level", "percentile_interval", "make_estimate"]


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A fitted quantity: point value, 95% interval (or None without a bootstrap) and the
    bootstrap standard error."""
    value: float
    ci95: tuple[float, float] | None = None
    se: float | None = None

    def to_json(self):
        if self.ci95 is None:
            return float(self.value)
        return {"value": float(self.value), "ci95": [float(self.ci95[0]), float(self.ci95[1])],
                "se": None if self.se is None else float(self.se)}

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        if self.ci95 is None:
            return f"{self.value:.6g}"
        return f"{self.value:.6g} [{self.ci95[0]:.6g}, {self.ci95[1]:.6g}]"


def check_level(level) -> float:
    """``level`` (the coverage of an interval, a fraction) as a float in (0, 1), else
    ``ValueError`` naming it: a percentage such as 95 would otherwise give NaN intervals from a
    t quantile, or numpy's bare "Percentiles must be in the range [0, 100]"."""
    value = float(level) if isinstance(level, numbers.Real) and not isinstance(level, bool) else math.nan
    if not 0.0 < value < 1.0:
        raise ValueError(f"level: must lie in (0, 1), got {level!r}")
    return value


def _quantile_sorted(s: np.ndarray, q: float) -> float:
    """The ``q`` quantile of sorted samples ``s`` (no NaN, ±inf allowed) by numpy's default
    ("linear") rule, with linear interpolation towards an infinite neighbour giving that
    infinity. numpy's own rule computes ``a + (b − a)·t`` and gives NaN there (inf − inf)."""
    h = (s.size - 1) * q
    j = int(np.floor(h))
    t = h - j
    lo, hi = float(s[j]), float(s[min(j + 1, s.size - 1)])
    if t == 0.0 or lo == hi:
        return lo
    if np.isinf(lo) and np.isinf(hi):          # -inf .. +inf: the nearer one
        return lo if t < 0.5 else hi
    if np.isinf(lo) or np.isinf(hi):
        return lo if np.isinf(lo) else hi
    return lo + (hi - lo) * t


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples. NaNs (failed refits) are ignored; infinite
    samples are kept: a resample whose parameter overflowed to inf is an outcome of the
    bootstrap (the data allow that scale), so when more than the interval's tail share of
    resamples is infinite the bound is inf, not the largest finite sample."""
    level = check_level(level)
    s = np.asarray(samples, dtype=np.float64)
    s = np.sort(s[~np.isnan(s)])
    if s.size == 0:
        return (float("nan"), float("nan"))
    return (_quantile_sorted(s, 0.5 * (1 - level)), _quantile_sorted(s, 0.5 * (1 + level)))


def make_estimate(value: float, samples: np.ndarray | None, level: float = 0.95) -> Estimate:
    """An :class:`Estimate` from a point value and bootstrap samples. Only NaN samples are
    dropped; an infinite one stays (see :func:`percentile_interval`) and makes the standard
    error inf: dropping it would shrink both the interval and the SE towards the finite
    resamples, hiding exactly the uncertainty the bootstrap found."""
    if samples is None or len(samples) < 2:
        return Estimate(float(value))
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size < 2:
        return Estimate(float(value))
    if np.isinf(s).any():
        se = float("inf")
    else:
        with np.errstate(over="ignore"):  # samples near 1e200 (an unidentified scale): the SD is inf, honestly
            se = float(np.std(s, ddof=1))
    return Estimate(float(value), percentile_interval(s, level), se)


#: A fitted irreducible loss (a power law's B or E, Approach 3's E) below this share of the smallest
#: observed loss is on its boundary: the fit's log-sum-exp form keeps it positive, so "no floor"
#: shows up as a value driven towards zero (1e-12 and less), not as a bound that is hit.
