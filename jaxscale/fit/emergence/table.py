"""Emergence analysis of one score series, and of external tables of published scores.

:func:`analyze_series` bundles, for one metric over a scale axis: the interpolated threshold
crossing, logistic and Gompertz fits, and the BIG-bench breakthroughness and linearity.
:func:`measure_emergent_ability` applies it to every benchmark of a table of model sizes ×
scores (the name and arguments users of the course module know; this version interpolates the
crossing in log size instead of reporting the first model above the threshold, and adds the
fits). :func:`read_score_table` reads such a table from CSV: a ``params`` column and one column
per benchmark, scores in [0, 1], an empty cell meaning "not reported".

Published tables rarely say how many items a benchmark has. Without ``n_items`` the fits use one
pseudo-trial per point: the point estimate of a binomial fit does not depend on a common n, but
its uncertainty does, so no intervals are reported then.

Each benchmark with ``n_items`` and at least 3 sizes also gets the verdict of a trained study
(:func:`~jaxscale.fit.emergence.verdict.emergence_verdict`, the same function and rise test):
"no transition" unless some size rises ``RISE_Z`` binomial standard errors above the smallest
size's score, or above ``chance`` where that is higher (and where the smallest size lies below
chance the error is measured around chance), else "smooth" or "sharp" by the sharpness of the
scores raised to chance. A table has no continuous metric, so "sharp" is not split into
"metric-induced" and "sharp under both". Without ``n_items`` there is no verdict: one score per
size carries no noise to judge a rise by, and every wiggle at chance would count as one.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import numbers
import os
from typing import Mapping, Sequence

import numpy as np

from jaxscale.fit.emergence.series import (
    Crossing, breakthroughness, linearity, pool_by_scale, threshold_crossing, to_x,
)
from jaxscale.fit.emergence.sigmoid import SigmoidFit, fit_sigmoid
from jaxscale.fit.emergence.verdict import Verdict, emergence_verdict

__all__ = ["AIC_TIE", "CHANCE_STATUS", "SeriesAnalysis", "analyze_series", "EmergenceReport", "measure_emergent_ability",
           "ScoreTable", "read_score_table", "analyze_score_table"]

# Below this AIC gap neither sigmoid shape is preferred (the usual rule of thumb: models within
# 2 AIC units have substantial support, Burnham & Anderson 2002). The emergence smoke run's
# logistic and Gompertz fits differed by 3e-8, yet the smaller AIC put the Gompertz midpoint
# (2.6x the logistic one) in the headline.
AIC_TIE = 2.0
# the crossing status of a threshold that guessing alone reaches (``analyze_series``)
CHANCE_STATUS = "threshold at or below chance"


@dataclasses.dataclass(frozen=True, eq=False)
class SeriesAnalysis:
    """Crossing, fits and sharpness scores of one metric series (``name``: benchmark or metric).
    A fit is None when the series has fewer than 3 distinct scales."""

    name: str
    scales: tuple[float, ...]
    scores: tuple[float, ...]
    crossing: Crossing
    logistic: SigmoidFit | None
    gompertz: SigmoidFit | None
    breakthroughness: float
    linearity: float

    @property
    def delta_aic(self) -> float:
        """|AIC(logistic) − AIC(Gompertz)|; NaN unless both fits exist."""
        if self.logistic is None or self.gompertz is None:
            return math.nan
        return abs(self.logistic.aic - self.gompertz.aic)

    @property
    def best_fit(self) -> SigmoidFit | None:
        """The fit with the lower AIC when the data prefer one shape: None when the AICs are
        within ``AIC_TIE`` (no preference: report both midpoints, which can differ by several
        times) or when there is no fit."""
        fits = [f for f in (self.logistic, self.gompertz) if f is not None]
        if not fits or self.delta_aic < AIC_TIE:
            return None
        return min(fits, key=lambda f: f.aic)

    def as_dict(self) -> dict:
        """JSON-ready fields; ``best_fit`` is the preferred shape's kind, None when there is no
        fit or none is preferred (``delta_aic`` < ``AIC_TIE``)."""
        def fit_dict(f: SigmoidFit | None):
            if f is None:
                return None
            return dict(midpoint=f.midpoint, midpoint_ci=list(f.midpoint_ci),
                        width_decades=abs(f.width), width_ci=list(f.width_ci), floor=f.floor,
                        chance=f.chance, floor_fitted=f.floor_fitted,
                        identified=f.identified, reason=f.reason, step=f.step, aic=f.aic)
        c = self.crossing
        best = self.best_fit
        return dict(name=self.name, scales=list(self.scales), scores=list(self.scores),
                    threshold=c.threshold, crossing=c.scale, crossing_status=c.status,
                    crossing_ci=list(c.ci), logistic=fit_dict(self.logistic),
                    gompertz=fit_dict(self.gompertz), best_fit=None if best is None else best.kind,
                    delta_aic=self.delta_aic,
                    breakthroughness=self.breakthroughness, linearity=self.linearity)


def analyze_series(name: str, scale, successes, trials, threshold: float = 0.5, *,
                   floor: float = 0.0, fit_floor: bool = False, log_scale: bool = True,
                   decreasing: bool = False, n_boot: int = 1000, seed: int = 0,
                   ci: float = 0.95) -> SeriesAnalysis:
    """Everything about one success-rate series; one point per (scale, seed). ``floor`` is the
    chance rate; ``fit_floor`` lets the sigmoids fit their lower plateau above it. A
    ``threshold`` at or below ``floor`` has no crossing (status ``CHANCE_STATUS``, NaN): guessing
    alone reaches it, so where the series reaches it marks no ability."""
    scale = np.asarray(scale, np.float64).reshape(-1)
    s_S = np.asarray(successes, np.float64).reshape(-1)
    n_S = np.asarray(trials, np.float64).reshape(-1)
    boot = dict(successes=s_S, trials=n_S, n_boot=n_boot, seed=seed, ci=ci)
    crossing = threshold_crossing(scale, s_S / n_S, threshold, weights=n_S, log_scale=log_scale,
                                  decreasing=decreasing, **boot)
    if threshold <= floor:
        nan = float("nan")
        crossing = dataclasses.replace(crossing, scale=nan, x=nan, status=CHANCE_STATUS,
                                       lower_index=-1, ci=(nan, nan))
    x_M, y_M, _ = pool_by_scale(to_x(scale, log_scale, decreasing), s_S / n_S, n_S)
    fits = {}
    for kind in ("logistic", "gompertz"):
        fits[kind] = None if x_M.size < 3 else fit_sigmoid(
            scale, s_S, n_S, kind=kind, floor=floor, fit_floor=fit_floor, log_scale=log_scale,
            decreasing=decreasing,
            n_boot=n_boot, seed=seed, ci=ci)
    return SeriesAnalysis(
        name=name, scales=tuple(crossing.scales), scores=tuple(y_M.tolist()), crossing=crossing,
        logistic=fits["logistic"], gompertz=fits["gompertz"],
        breakthroughness=breakthroughness(y_M), linearity=linearity(y_M))


@dataclasses.dataclass(frozen=True, eq=False)
class EmergenceReport:
    """Per-benchmark analyses of a score table, in column order. ``chance``: each benchmark's
    chance score (the floor of its fits and the baseline of its verdict); ``verdicts``: each
    benchmark's :class:`Verdict`, None where there is none, with the reason in
    ``verdict_notes`` (see the module docstring)."""

    threshold: float
    benchmarks: tuple[SeriesAnalysis, ...]
    chance: Mapping[str, float] = dataclasses.field(default_factory=dict)
    verdicts: Mapping[str, Verdict | None] = dataclasses.field(default_factory=dict)
    verdict_notes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> SeriesAnalysis:
        for b in self.benchmarks:
            if b.name == name:
                return b
        raise KeyError(name)

    def as_dict(self) -> dict:
        """JSON-ready: the threshold, ``chance`` per benchmark, and per benchmark its analysis
        with its ``chance``, ``verdict`` (None: see ``verdict_note``) and ``verdict_note``."""
        benchmarks = []
        for b in self.benchmarks:
            v = self.verdicts.get(b.name)
            benchmarks.append({**b.as_dict(), "chance": float(self.chance.get(b.name, 0.0)),
                               "verdict": None if v is None else v.as_dict(),
                               "verdict_note": self.verdict_notes.get(b.name, "")})
        return dict(threshold=self.threshold, chance={k: float(c) for k, c in self.chance.items()},
                    benchmarks=benchmarks)


def _table_verdict(sizes, scores, items, chance: float, threshold: float, n_boot: int,
                   seed: int) -> tuple[Verdict | None, str]:
    """One benchmark's verdict and, where there is none, why (module docstring): the study's
    :func:`emergence_verdict` on ``items`` test items per size, at ``chance``."""
    if not items:
        return None, ("no verdict: it needs the number of test items (n_items; --n-items on the "
                      "command line) to judge a rise against the scores' noise")
    if sizes.size < 3:
        return None, f"no verdict: it needs at least 3 sizes, got {sizes.size}"
    trials = np.full(sizes.size, float(items))
    v = emergence_verdict(sizes, scores, None, successes=scores * trials, trials=trials,
                          n_boot=n_boot, seed=seed, split_threshold=threshold, chance=chance)
    return v, ""


def _check_sizes(sizes, label: str) -> np.ndarray:
    sizes = np.asarray(sizes, np.float64).reshape(-1)
    bad = ~np.isfinite(sizes) | (sizes <= 0)
    if np.any(bad):
        raise ValueError(f"{label}: model sizes must be finite and > 0, got "
                         f"{float(sizes[bad][0])!r} (model {int(np.flatnonzero(bad)[0]) + 1} of {sizes.size})")
    drops = np.flatnonzero(np.diff(sizes) <= 0)
    if drops.size:
        i = int(drops[0])
        raise ValueError(f"{label}: model sizes must be strictly increasing, got {sizes[i]:g} "
                         f"then {sizes[i + 1]:g} (models {i + 1} and {i + 2} of {sizes.size})")
    return sizes


def measure_emergent_ability(model_sizes: Sequence[float],
                             benchmark_scores: Mapping[str, Sequence[float]],
                             threshold: float = 0.5, *,
                             chance: float | Mapping[str, float] = 0.0,
                             n_items: int | Mapping[str, int] | None = None,
                             n_boot: int = 1000, seed: int = 0) -> EmergenceReport:
    """Where does each benchmark's score cross ``threshold`` as models grow?

    ``model_sizes`` (strictly increasing, e.g. parameters) and, per benchmark, one score in
    [0, 1] per size (NaN or None = not reported; that benchmark uses the other sizes).
    ``chance``: the chance score (e.g. 0.25 for 4-way multiple choice), one value or one per
    benchmark: the floor of the fits and the baseline of the verdict's rise test, as in a trained
    study. ``n_items``: test-set sizes, needed for intervals and the verdict (see the module
    docstring). Errors name the offending column (``params`` or the benchmark).
    """
    sizes = _check_sizes(model_sizes, "column 'params' (model_sizes)")
    if not benchmark_scores:
        raise ValueError("benchmark_scores is empty: give at least one benchmark column")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    checked = []  # validate every column before fitting any
    for name, raw in benchmark_scores.items():
        scores = np.array([np.nan if v is None else v for v in raw], np.float64)
        if scores.shape != sizes.shape:
            raise ValueError(f"column {name!r}: {scores.size} scores for {sizes.size} model sizes")
        given = ~np.isnan(scores)
        bad = given & ((scores < 0) | (scores > 1) | ~np.isfinite(scores))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            hint = " (percentages? divide by 100)" if 1 < scores[i] <= 100 else ""
            raise ValueError(f"column {name!r}: scores must lie in [0, 1], got {float(scores[i])!r} "
                             f"for the model of size {sizes[i]:g}{hint}")
        if given.sum() < 2:
            raise ValueError(f"column {name!r}: needs at least 2 reported scores, got "
                             f"{int(given.sum())}")
        floor = chance.get(name, 0.0) if isinstance(chance, Mapping) else chance
        if not (isinstance(floor, numbers.Real) and 0.0 <= floor < 1.0):  # NaN fails too
            raise ValueError(f"chance of column {name!r}: must lie in [0, 1) (the score of guessing), "
                             f"got {floor!r}")
        checked.append((name, scores, given))
    results, floors, verdicts, notes = [], {}, {}, {}
    for name, scores, given in checked:
        floor = float(chance.get(name, 0.0) if isinstance(chance, Mapping) else chance)
        items = n_items.get(name) if isinstance(n_items, Mapping) else n_items
        trials = np.full(int(given.sum()), float(items) if items else 1.0)
        boot = n_boot if items else 0
        results.append(analyze_series(
            name, sizes[given], scores[given] * trials, trials, threshold, floor=floor,
            n_boot=boot, seed=seed))
        floors[name] = floor
        verdicts[name], notes[name] = _table_verdict(sizes[given], scores[given], items, floor,
                                                     threshold, boot, seed)
    return EmergenceReport(threshold=float(threshold), benchmarks=tuple(results), chance=floors,
                           verdicts=verdicts, verdict_notes=notes)


@dataclasses.dataclass(frozen=True, eq=False)
class ScoreTable:
    """A table of published scores: model sizes and one score column per benchmark."""

    params: np.ndarray
    benchmarks: dict[str, np.ndarray]
    names: tuple[str, ...] = ()


def _cell(value: str | None, column: str, row: int) -> float:
    """A cell's number; NaN for an empty cell (not reported). A cell that reads ``nan`` is
    refused: it parsed as the same NaN, so a score lost in an export passed as "not reported"
    without a word, where the table's convention for that is an empty cell."""
    text = (value or "").strip()
    if not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"column {column!r}, row {row}: {text!r} is not a number") from None
    if math.isnan(number):
        raise ValueError(f"column {column!r}, row {row}: {text!r} is not a number (leave the cell "
                         "empty for a score not reported)")
    return number


def read_score_table(path: str | os.PathLike) -> ScoreTable:
    """Read a CSV with a ``params`` column and one numeric column per benchmark. An optional
    ``name`` (or ``model``) column labels the rows and is not a benchmark."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [r for r in reader if any(cell.strip() for cell in r)]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); save the table as UTF-8 CSV") from None
    if not header:
        raise ValueError(f"{path}: empty table")
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:  # it was analysed as a benchmark named ""
        raise ValueError(f"{path}: column {blank[0]} of {len(header)} has no name in the header row; "
                         "name it, or remove the column")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise ValueError(f"{path}: column {dup!r} appears twice")
    lower = [h.lower() for h in header]
    if "params" not in lower:
        raise ValueError(f"{path}: missing column 'params' (columns: {', '.join(header)})")
    label_cols = {i for i, h in enumerate(lower) if h in ("name", "model")}
    p_idx = lower.index("params")
    bench_idx = [i for i in range(len(header)) if i != p_idx and i not in label_cols]
    if not bench_idx:
        raise ValueError(f"{path}: no benchmark columns besides 'params'")
    if not rows:
        raise ValueError(f"{path}: the table has a header but no rows")
    for r, row in enumerate(rows, start=2):
        if len(row) > len(header):
            raise ValueError(f"{path}: row {r} has {len(row)} cells for {len(header)} columns")
    cells = [row + [""] * (len(header) - len(row)) for row in rows]
    params = np.array([_cell(row[p_idx], "params", r) for r, row in enumerate(cells, 2)])
    if np.any(np.isnan(params)):
        raise ValueError(f"column 'params': row {int(np.flatnonzero(np.isnan(params))[0]) + 2} "
                         "is empty")
    bench = {header[i]: np.array([_cell(row[i], header[i], r) for r, row in enumerate(cells, 2)])
             for i in bench_idx}
    names = tuple(cells[r][min(label_cols)] for r in range(len(cells))) if label_cols else ()
    return ScoreTable(params=params, benchmarks=bench, names=names)


def analyze_score_table(table: str | os.PathLike | ScoreTable, threshold: float = 0.5, *,
                        chance: float | Mapping[str, float] = 0.0,
                        n_items: int | Mapping[str, int] | None = None, n_boot: int = 1000,
                        seed: int = 0) -> EmergenceReport:
    """:func:`measure_emergent_ability` on a CSV path or a :class:`ScoreTable`."""
    if not isinstance(table, ScoreTable):
        table = read_score_table(table)
    return measure_emergent_ability(table.params, table.benchmarks, threshold, chance=chance,
                                    n_items=n_items, n_boot=n_boot, seed=seed)
