"""The analysis half of an emergence study: from result rows (one per trained model, each with
its ``metrics``) to per-size metric tables with intervals, sigmoid fits, the verdict, the
forecast with its backtest, ``analysis.json``, ``summary.md`` and the figures.

Pure with respect to training: it reads rows and writes files, so ``--eval-only`` and a fresh
run share it. Intervals, and why each kind:

* proportions (exact match, tolerance match, per-token accuracy): the hierarchical bootstrap of
  ``jaxscale.fit.emergence`` (seeds within a size, then test items), pooled per size; it carries
  both seed-to-seed spread and test-set noise, where a pooled Wilson interval would ignore the
  seeds.
* continuous metrics (answer NLL, edit distance, answer probability, Brier): mean over seeds
  ± Student-t 95% half-width over seeds. With 3 seeds a bootstrap over seeds has only 10
  distinct resamples and understates the spread; the t interval is honest about it. It is
  clipped to the metric's range (``METRIC_RANGE``: an NLL is never below 0, a probability never
  above 1), which a symmetric interval over two or three seeds otherwise crosses.

Chance levels. Every proportion is fitted, and exact match is judged, against the task's chance
level (``Task.chance_levels``: the score of the best constant answer), not against 0: sparse
parity answers one bit, so guessing scores exact match 1/2, and a sigmoid held at 0 read that
flat curve as a rise from 0 (a midpoint, a verdict and a forecast of nothing). The same level is
the floor of the sigmoid fits and of the forecast's link, the baseline of the verdict's rise
test, and the level the threshold must exceed (``chance_floors``, ``analyse``); ``analysis.json``
(``chance``) and ``summary.md`` state it per metric.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["PROPORTIONS", "CONTINUOUS", "FITTED", "size_points", "size_table", "chance_floors", "analyse",
           "verdict_word", "verdict_text", "write_summary", "write_figures", "analyse_and_write"]

# metric key -> label; proportions carry successes and n in the row's metrics
PROPORTIONS = {"exact_match": "exact match", "tolerance_match": "tolerance match",
               "token_accuracy": "per-token accuracy",
               "teacher_forced_token_accuracy": "teacher-forced token accuracy"}
CONTINUOUS = {"answer_nll_per_token": "answer NLL / token", "answer_log_likelihood":
              "answer log-likelihood", "answer_probability": "answer probability",
              "edit_distance": "token edit distance", "predicted_exact_match":
              "predicted EM (Π p_t)", "brier": "Brier score"}
# the proportions that get sigmoid fits, each at its chance floor (teacher-forced accuracy is
# reported, not fitted)
FITTED = ("exact_match", "tolerance_match", "token_accuracy")
# the range each continuous metric can take: a t interval over a few seeds is clipped to it
# (with two or three seeds it easily reached below 0 for an NLL: 0.578 [-0.507, 1.66])
METRIC_RANGE = {"answer_probability": (0.0, 1.0), "edit_distance": (0.0, 1.0),
                "predicted_exact_match": (0.0, 1.0), "answer_nll_per_token": (0.0, math.inf),
                "answer_log_likelihood": (-math.inf, 0.0), "brier": (0.0, 2.0)}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def _t975(dof: int) -> float:
    return _T975.get(dof, 1.96 + 2.4 / max(dof, 1))  # ≈ the t quantile beyond 10 dof


def size_points(rows: Sequence[dict], scale_axis: str = "params") -> dict:
    """Arrays over models (one point per size and seed), sorted by scale: ``scale``, ``name``,
    ``seed`` and each metric; diverged models (no metrics) are dropped."""
    rows = sorted((r for r in rows if r.get("metrics") and not r.get("diverged")),
                  key=lambda r: (r[scale_axis], r["seed"]))
    if not rows:
        raise ValueError("rows: no trained model with metrics to analyse")
    pts = {"scale": np.array([float(r[scale_axis]) for r in rows]),
           "name": [r["name"] for r in rows], "seed": np.array([r["seed"] for r in rows]),
           "run_id": [r["run_id"] for r in rows]}
    for key in PROPORTIONS:
        if rows[0]["metrics"].get(key) is None:
            continue
        for suffix in ("", "_successes", "_n", "_lo", "_hi"):
            pts[key + suffix] = np.array([float(r["metrics"][key + suffix]) for r in rows])
    for key in CONTINUOUS:
        if rows[0]["metrics"].get(key) is not None:
            pts[key] = np.array([float(r["metrics"][key]) for r in rows])
    return pts


def size_table(pts: dict, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One entry per size: scale, name, seeds, and per metric (mean, lo, hi); see the module
    docstring for how each interval is formed."""
    from jaxscale.fit.emergence import hierarchical_resample

    scales, group = np.unique(pts["scale"], return_inverse=True)
    table = [{"scale": float(s), "name": pts["name"][int(np.flatnonzero(group == g)[0])],
              "seeds": int(np.sum(group == g))} for g, s in enumerate(scales)]
    for key in PROPORTIONS:
        if key not in pts:
            continue
        s_S, n_S = pts[key + "_successes"], pts[key + "_n"]
        rate_G = np.bincount(group, s_S) / np.bincount(group, n_S)
        lo_G = hi_G = np.full(scales.size, np.nan)
        if n_boot > 0:
            s_BS, n_BS = hierarchical_resample(pts["scale"], s_S, n_S, n_boot, seed)
            rate_BG = np.stack([np.bincount(group, s, minlength=scales.size)
                                / np.bincount(group, n, minlength=scales.size)
                                for s, n in zip(s_BS, n_BS)])
            lo_G, hi_G = np.percentile(rate_BG, [2.5, 97.5], axis=0)
        for g, entry in enumerate(table):
            entry[key] = {"mean": float(rate_G[g]), "lo": float(lo_G[g]), "hi": float(hi_G[g]),
                          "interval": "hierarchical bootstrap 95%"}
    for key in CONTINUOUS:
        if key not in pts:
            continue
        for g, entry in enumerate(table):
            v = pts[key][group == g]
            half = _t975(v.size - 1) * v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else np.nan
            lo_bound, hi_bound = METRIC_RANGE[key]
            lo, hi = max(v.mean() - half, lo_bound), min(v.mean() + half, hi_bound)
            entry[key] = {"mean": float(v.mean()), "lo": float(lo), "hi": float(hi),
                          "interval": "t 95% over seeds"}
    return table


def chance_floors(keys, chance=None, vocab_size: int | None = None) -> dict[str, float]:
    """The floor of each metric in ``keys``: its chance level from ``chance`` (a task's
    ``chance_levels``; a metric it does not give is 0), and for per-token accuracy at least
    1/``vocab_size``, a uniform guess over the vocabulary. That bound is the floor of a task
    that cannot say (the best constant token at a position is right at least that often), and
    never exceeds what a task that can say states."""
    chance = chance or {}
    floors = {}
    for key in keys:
        level = float(chance.get(key, 0.0))
        if not 0.0 <= level <= 1.0:
            raise ValueError(f"chance: the level of {key} must lie in [0, 1], got {level!r}")
        if key == "token_accuracy" and vocab_size:
            level = max(level, 1.0 / vocab_size)
        floors[key] = level
    return floors


def _series(pts, key, threshold, floor, n_boot, seed, fit_floor=False):
    from jaxscale.fit.emergence import analyze_series

    return analyze_series(PROPORTIONS[key], pts["scale"], pts[key + "_successes"],
                          pts[key + "_n"], threshold, floor=floor, fit_floor=fit_floor,
                          n_boot=n_boot, seed=seed)


def analyse(rows: Sequence[dict], *, threshold: float = 0.5, scale_axis: str = "params",
            vocab_size: int | None = None, chance=None, n_boot: int = 1000, seed: int = 0,
            fit_floor: bool = False) -> dict:
    """The whole analysis of a study's rows. Returns a dict with JSON-ready ``as_json`` and the
    fit objects (``series``, ``backtest``, ``forecast``) for the figures. ``fit_floor``: the
    sigmoids fit their lower plateau (above chance) instead of holding it at chance.

    ``chance``: the task's chance level per metric (``Task.chance_levels``), read through
    :func:`chance_floors` with ``vocab_size``; exact match's level is the floor of its fits and
    of the forecast's link and the verdict's baseline, and a ``threshold`` at or below it is
    refused (ValueError): guessing alone would cross it. Another metric whose level reaches the
    threshold keeps its fits but has no crossing (a note says so), and one that guessing
    scores perfectly (a ±2 match over 5 residues) is not fitted."""
    from jaxscale.fit.emergence import backtest, emergence_verdict, forecast_crossing

    pts = size_points(rows, scale_axis)
    floors = chance_floors([k for k in FITTED if k in pts], chance, vocab_size)
    em_chance = floors["exact_match"]
    if threshold <= em_chance:
        raise ValueError(f"threshold {threshold:g} lies at or below the chance level of exact match, "
                         f"{em_chance:.4g} (the score of the best constant answer): a crossing there "
                         "marks no ability; choose a threshold above it")
    n_sizes = np.unique(pts["scale"]).size
    out = {"threshold": threshold, "scale_axis": scale_axis, "n_sizes": int(n_sizes),
           "n_models": int(pts["scale"].size), "test_items": int(pts["exact_match_n"][0]),
           "chance": floors, "sizes": size_table(pts, n_boot, seed), "notes": []}
    series = {}
    for key, floor in floors.items():
        if floor >= 1.0:
            out["notes"].append(f"{PROPORTIONS[key]}: not fitted, a constant answer already scores "
                                f"{floor:.4g}")
            continue
        if threshold <= floor:
            out["notes"].append(f"{PROPORTIONS[key]}: the threshold {threshold:g} lies at or below its "
                                f"chance level {floor:.4g}, so it has no crossing")
        series[key] = _series(pts, key, threshold, floor, n_boot, seed, fit_floor)
    out["series"] = {k: s.as_dict() for k, s in series.items()}

    if n_sizes >= 3:
        v = emergence_verdict(pts["scale"], pts["exact_match"],
                              np.maximum(pts["answer_nll_per_token"], 1e-12),
                              successes=pts["exact_match_successes"], trials=pts["exact_match_n"],
                              n_boot=n_boot, seed=seed, split_threshold=threshold, chance=em_chance)
        names = {e["scale"]: e["name"] for e in out["sizes"]}
        out["verdict"] = {**v.as_dict(), "continuous_metric": "answer NLL per token",
                          "seed_splits": [{"scale": sp.scale, "name": names.get(sp.scale), "above": sp.above,
                                           "seeds": sp.seeds} for sp in v.seed_splits]}
    else:
        out["verdict"] = None
        out["notes"].append("verdict needs at least 3 sizes")

    nll = np.maximum(-pts["answer_log_likelihood"], 1e-12)  # nats per answer
    s_S, n_S = pts["exact_match_successes"], pts["exact_match_n"]
    fc = bt = None
    try:
        fc = forecast_crossing(pts["scale"], nll, s_S, n_S, threshold, n_boot=n_boot, seed=seed,
                               floor=em_chance)
        out["forecast"] = {"scale": fc.scale, "ci": list(fc.ci), "loss_exponent":
                           fc.loss_exponent, "loss_at_threshold": fc.loss_at_threshold,
                           "extrapolation_decades": fc.extrapolation_decades, "note": fc.note}
        if fc.note:
            out["notes"].append(f"forecast: none, {fc.note}")
    except ValueError as err:
        out["forecast"] = None
        out["notes"].append(f"forecast not computed: {err}")
    if n_sizes >= 4:
        n_holdout = 1 if n_sizes < 6 else 2
        try:
            bt = backtest(pts["scale"], nll, s_S, n_S, threshold, n_holdout=n_holdout,
                          n_boot=n_boot, seed=seed, floor=em_chance)
            out["backtest"] = {
                "n_holdout": bt.n_holdout, "holdout_scales": list(bt.holdout_scales),
                "observed": bt.observed.scale, "forecast": bt.forecast.scale,
                "forecast_ci": list(bt.forecast.ci), "naive": bt.naive_scale,
                "naive_ci": list(bt.naive_ci),
                "forecast_error_decades": bt.forecast_error_decades,
                "naive_error_decades": bt.naive_error_decades,
                "forecast_covers": bt.forecast_covers, "naive_covers": bt.naive_covers}
        except ValueError as err:
            out["backtest"] = None
            out["notes"].append(f"backtest not computed: {err}")
    else:
        out["backtest"] = None
        out["notes"].append("backtest needs at least 4 sizes (3 fitted + 1 held out)")
    if out["test_items"] < 1000:
        out["notes"].append(f"only {out['test_items']} test items (< 1,000): intervals are wide")
    out["subtasks"] = _subtasks(rows, scale_axis, threshold)
    return {"as_json": out, "series": series, "forecast": fc, "backtest": bt, "points": pts}


def _subtasks(rows, scale_axis, threshold) -> dict | None:
    """Per-subtask exact match per size and its interpolated crossing (sparse parity)."""
    from jaxscale.fit.emergence import threshold_crossing

    rows = [r for r in rows if r.get("subtask_metrics")]
    if not rows:
        return None
    out = {}
    for key in sorted(rows[0]["subtask_metrics"], key=int):
        scale = np.array([float(r[scale_axis]) for r in rows])
        em = np.array([r["subtask_metrics"][key]["exact_match"] for r in rows])
        n = np.array([r["subtask_metrics"][key]["n"] for r in rows], float)
        c = threshold_crossing(scale, em, threshold, weights=n) if np.unique(scale).size > 1 else None
        out[key] = {"crossing": None if c is None else c.scale,
                    "status": None if c is None else c.status,
                    "em_by_size": None if c is None else list(c.smoothed)}
    return out


def write_figures(analysis: dict, fig_dir: Path) -> list[Path]:
    """metrics_vs_size.png, em_vs_loss.png and (with a backtest) forecast.png."""
    from jaxscale.plots.emergence import plot_em_vs_loss, plot_forecast, plot_metrics_vs_scale

    pts, series = analysis["points"], analysis["series"]
    metrics, fits = {}, {}
    for key in PROPORTIONS:
        if key in pts:
            metrics[PROPORTIONS[key]] = (pts[key], pts[key + "_lo"], pts[key + "_hi"])
            if key in series:
                fits[PROPORTIONS[key]] = [f for f in (series[key].logistic, series[key].gompertz)
                                          if f is not None]
    for key in ("answer_nll_per_token", "edit_distance", "answer_probability"):
        metrics[CONTINUOUS[key]] = (pts[key], None, None)
    axis = analysis["as_json"]["scale_axis"].replace("_", " ")
    paths = [plot_metrics_vs_scale(pts["scale"], metrics, fig_dir / "metrics_vs_size.png",
                                   fits=fits, xlabel=axis, log_y=(CONTINUOUS["answer_nll_per_token"],),
                                   title="Every metric against model size (one point per seed)")]
    fc = analysis["forecast"]
    paths.append(plot_em_vs_loss(np.maximum(-pts["answer_log_likelihood"], 1e-12),
                                 pts["exact_match"], fig_dir / "em_vs_loss.png",
                                 link=None if fc is None else fc.link, scale=pts["scale"]))
    if analysis["backtest"] is not None:
        paths.append(plot_forecast(pts["scale"], pts["exact_match"], analysis["backtest"],
                                   fig_dir / "forecast.png", xlabel=axis))
    return paths


def analyse_and_write(rows, spec, task, out: Path, *, figures: bool = True, log=None,
                      recomputed: bool = False) -> dict:
    """Analyse ``rows`` of study ``spec`` and write analysis.json, summary.md and figures."""
    from jaxscale.emergence_study import write_record

    analysis = analyse(rows, threshold=spec.threshold, scale_axis=spec.scale_axis,
                       vocab_size=task.vocab_size, chance=task.chance_levels(spec.tolerance),
                       n_boot=spec.n_boot, fit_floor=spec.fit_floor)
    result = analysis["as_json"]
    result["models"] = [{"run_id": r["run_id"], "name": r["name"], "seed": r["seed"],
                         "params": r["params"], "metrics": r.get("metrics")} for r in rows]
    result["recomputed_from_weights"] = recomputed
    fig_paths = write_figures(analysis, out / "figures") if figures else []
    result["figures"] = [str(p.relative_to(out)) for p in fig_paths]
    first = rows[0]
    meta = {"task": task.name, "family": spec.family, "task_description": task.description,
            "fingerprint": first.get("corpus", {}).get("fingerprint"),
            "budget": f"{first.get('planned_steps', first['steps'])} steps × batch {first['batch_size']} ({spec.budget})",
            "seeds": list(spec.seeds), "device": first.get("device"),
            "versions": first.get("versions"), "figures": result["figures"]}
    write_record(out / "analysis.json", result)
    write_summary(out / "summary.md", analysis, meta)
    if log is not None:
        print(f"wrote {out / 'analysis.json'}, {out / 'summary.md'} and {len(fig_paths)} "
              f"figure(s) under {out / 'figures'}", file=log)
    return result


# the study's text lives in its own module; its names stay importable from here
from jaxscale.emergence_summary import verdict_text, verdict_word, write_summary  # noqa: E402
