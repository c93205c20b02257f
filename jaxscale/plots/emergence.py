"""Emergence figures: metrics against scale with intervals and fitted curves, exact match
against answer loss, and the forecast with its backtest. Drawing only: every number comes from
``jaxscale.fit.emergence`` results or from the caller's arrays. Matplotlib's Agg backend; every
figure has a title, labelled axes and a log x axis.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxscale.fit.emergence import (  # noqa: E402
    Backtest, EmergenceReport, SeriesAnalysis, SigmoidFit,
)

__all__ = ["MetricSeries", "plot_series", "plot_score_table", "plot_metrics_vs_scale",
           "plot_em_vs_loss", "plot_forecast"]

_FIT_STYLE = {"logistic": dict(color="C1", ls="-"), "gompertz": dict(color="C2", ls="--")}

# (values_S, lo_S, hi_S): one point per (scale, seed) and its interval (lo/hi may be None)
MetricSeries = tuple[Sequence[float], Sequence[float] | None, Sequence[float] | None]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(scale) -> np.ndarray:
    scale = np.asarray(scale, np.float64)
    return np.logspace(np.log10(scale.min()) - 0.15, np.log10(scale.max()) + 0.15, 200)


def _draw_fit(ax, fit: SigmoidFit, grid, label_prefix: str = "") -> None:
    style = _FIT_STYLE.get(fit.kind, {})
    mid = "" if fit.identified else " (not identified)"
    ax.plot(grid, fit.predict(grid), label=f"{label_prefix}{fit.kind} fit, midpoint "
            f"{fit.midpoint:.3g}{mid}", **style)
    if fit.boot_params_B4.size:  # pointwise 95% band from the bootstrap refits
        b = fit.boot_params_B4
        curves = np.stack([_replica_curve(fit, p, grid) for p in b[:: max(1, len(b) // 200)]])
        lo, hi = np.percentile(curves, [2.5, 97.5], axis=0)
        ax.fill_between(grid, lo, hi, alpha=0.15, color=style.get("color"))


def _replica_curve(fit: SigmoidFit, params, grid) -> np.ndarray:
    """The fit's curve with (x0, k, ceiling, floor) replaced by one bootstrap replicate."""
    return dataclasses.replace(fit, x0=float(params[0]), k=float(params[1]),
                               ceiling=float(params[2]), floor=float(params[3])).predict(grid)


def plot_series(ax, analysis: SeriesAnalysis, threshold: float, xlabel: str = "parameters",
                ylabel: str = "score") -> None:
    """One series on ``ax``: points, fits with bands, threshold and interpolated crossing."""
    scales = np.asarray(analysis.scales)
    ax.plot(scales, analysis.scores, "o", color="C0", label="measured")
    grid = _grid(scales)
    for fit in (analysis.logistic, analysis.gompertz):
        if fit is not None:
            _draw_fit(ax, fit, grid)
    ax.axhline(threshold, color="grey", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    c = analysis.crossing
    if c.identified:
        ax.axvline(c.scale, color="C3", lw=1, label=f"crossing {c.scale:.3g}")
        if np.all(np.isfinite(c.ci)):
            ax.axvspan(*c.ci, color="C3", alpha=0.1)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{analysis.name}: B={analysis.breakthroughness:.2f}, "
                 f"L={analysis.linearity:.2f}")
    ax.legend(fontsize=7)


def plot_score_table(report: EmergenceReport, out_dir: str | os.PathLike) -> list[Path]:
    """One figure per benchmark of an external score table; returns the paths written."""
    paths = []
    for analysis in report.benchmarks:
        fig, ax = plt.subplots(figsize=(6, 4.2))
        plot_series(ax, analysis, report.threshold, ylabel=f"{analysis.name} score")
        fig.suptitle("Emergence in a published score table")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", analysis.name) or "benchmark"
        paths.append(_save(fig, Path(out_dir) / f"emergence_{slug}.png"))
    return paths


def plot_metrics_vs_scale(scale, metrics: Mapping[str, MetricSeries], path, *,
                          fits: Mapping[str, Sequence[SigmoidFit]] | None = None,
                          title: str = "Metrics against model size",
                          xlabel: str = "parameters", log_y: Sequence[str] = ()) -> Path:
    """One panel per metric (exact match, tolerance, per-token accuracy, log-likelihood, …):
    every (size, seed) point with its interval, and the fitted curves where given. Metrics named
    in ``log_y`` (losses) get a log y axis, where a power law is a straight line."""
    scale = np.asarray(scale, np.float64)
    names = list(metrics)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values, lo, hi = metrics[name]
        values = np.asarray(values, np.float64)
        if lo is not None and hi is not None:
            err = np.stack([values - np.asarray(lo), np.asarray(hi) - values])
            ax.errorbar(scale, values, yerr=np.maximum(err, 0), fmt="o", ms=4, capsize=2,
                        label="model (95% interval)")
        else:
            ax.plot(scale, values, "o", ms=4, label="model")
        for fit in (fits or {}).get(name, ()):
            _draw_fit(ax, fit, _grid(scale))
        ax.set_xscale("log")
        if name in log_y:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_em_vs_loss(answer_nll, em, path, *, link: SigmoidFit | None = None,
                    scale=None, title: str = "Exact match against answer loss") -> Path:
    """Exact match against the teacher-forced answer NLL (log x axis, loss decreasing to the
    right), coloured by model size when given, with the fitted link curve."""
    nll = np.asarray(answer_nll, np.float64)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    colour = None if scale is None else np.log10(np.asarray(scale, np.float64))
    sc = ax.scatter(nll, em, c=colour, cmap="viridis", s=18, label="model")
    if scale is not None:
        fig.colorbar(sc, ax=ax, label="log10 size")
    if link is not None:
        grid = np.logspace(np.log10(nll.min()) - 0.2, np.log10(nll.max()) + 0.2, 200)
        ax.plot(grid, link.predict(grid), color="C1", label=f"{link.kind} link")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("answer NLL (nats, teacher-forced)")
    ax.set_ylabel("exact match")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_forecast(scale, em, backtest: Backtest, path, *,
                  title: str = "Forecast of the exact-match crossing, with backtest",
                  xlabel: str = "parameters") -> Path:
    """Exact match against size: fitted and held-out points, the two-stage forecast curve and
    the naive logistic, the observed crossing and both predicted crossings with intervals.
    ``xlabel`` names the scale axis (a study on ``--scale-axis flops`` is not in parameters)."""
    scale = np.asarray(scale, np.float64)
    em = np.asarray(em, np.float64)
    held = np.isin(scale, backtest.holdout_scales)
    fc = backtest.forecast
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(scale[~held], em[~held], "o", color="C0", label="fitted sizes")
    ax.plot(scale[held], em[held], "s", mfc="none", color="C0", label="held out")
    grid = np.logspace(np.log10(scale.min()) - 0.2,
                       max(np.log10(scale.max()), np.log10(fc.scale) if np.isfinite(
                           fc.scale) else 0) + 0.3, 200)
    ax.plot(grid, fc.predict_em(grid), color="C2", label="forecast (loss law + link)")
    ax.plot(grid, backtest.naive.predict(grid), color="C1", ls="--", label="naive logistic on EM")
    ax.axhline(backtest.threshold, color="grey", lw=0.8, ls=":")
    if backtest.observed.identified:
        ax.axvline(backtest.observed.scale, color="k", lw=1,
                   label=f"observed crossing {backtest.observed.scale:.3g}")
    for value, ci, colour, name in ((fc.scale, fc.ci, "C2", "forecast"),
                                    (backtest.naive_scale, backtest.naive_ci, "C1", "naive")):
        if np.isfinite(value):
            ax.axvline(value, color=colour, lw=0.8, ls="-.")
        if np.all(np.isfinite(ci)):
            ax.axvspan(*ci, color=colour, alpha=0.12, label=f"{name} 95% interval")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("exact match")
    err = backtest.forecast_error_decades
    ax.set_title(f"{title}\nerror {err:+.2f} dec (naive {backtest.naive_error_decades:+.2f})")
    ax.legend(fontsize=7)
    return _save(fig, path)
