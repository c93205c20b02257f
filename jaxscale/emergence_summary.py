"""The text of an emergence study: ``summary.md`` and the verdict's words, from the analysis
that ``emergence_report.analyse`` made (``analysis.json``'s dict). Kept apart from the analysis
itself so that each file holds one concern: what is computed there, how it reads here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["verdict_word", "verdict_text", "write_summary"]


def _f(x, digits=3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _ci(lo, hi) -> str:
    return "" if lo is None or not (np.isfinite(lo) and np.isfinite(hi)) else f" [{_f(lo)}, {_f(hi)}]"


def verdict_word(v: dict | None) -> str:
    """The verdict in a line: its label, how often seed resamples agree, the sizes whose seeds split."""
    if not v:
        return "not computed"
    extra = [f"holds in {100 * v['agreement']:.0f}% of resamples"] if v.get("n_boot") else []
    if v.get("seed_splits"):
        extra.append(f"seeds split at {len(v['seed_splits'])} size{'s' if len(v['seed_splits']) > 1 else ''}")
    return v["label"] + (f" ({'; '.join(extra)})" if extra else "")


def verdict_text(v: dict | None) -> str:
    """The verdict of ``analysis.json`` in a paragraph: the label with both sharpness ratios and
    their intervals, whether seed resamples settle it, and the sizes whose seeds split."""
    if v is None:
        return "not computed"
    ratios = (f"exact match {_f(v['em_sharpness'])}{_ci(*v.get('em_sharpness_ci', (None, None)))}, "
              f"{v['continuous_metric']} {_f(v['continuous_sharpness'])}"
              f"{_ci(*v.get('continuous_sharpness_ci', (None, None)))}")
    if v["label"] == "no transition":  # the sharpness ratios of a floor-level series are noise
        rise, chance = v.get("em_rise"), v.get("chance") or 0.0
        level = ("its level at the first size" if not chance > 0 else
                 f"chance ({_f(chance)}) or its level at the first size, whichever is higher")
        how = (f"exact match is nowhere above {level}" if rise is None
               or not rise > 0 else f"exact match never rises clearly above {level}: its largest "
               f"rise, {rise:+.3g}, is {_f(v['em_rise_z'], 2)} standard errors, "
               f"and a clear rise takes {_f(v['rise_z'], 2)}")
        text = f"**no transition** ({how}; the sharpness ratios, {ratios}, measure noise)."
    else:
        text = (f"**{v['label']}** (sharpness, 1 = even ramp: {ratios}; "
                f"sharp ≥ {_f(v['sharp_ratio'])}).")
    if v.get("n_boot"):
        others = ", ".join(f"{k} {100 * x:.0f}%" for k, x in v["label_share"].items() if k != v["label"] and x > 0)
        text += (f" {'Settled' if v['settled'] else '**Not settled** by these seeds'}: the label holds in "
                 f"{100 * v['agreement']:.0f}% of {v['n_boot']:,} resamples of the seeds and test items"
                 + (f" ({others})." if others else "."))
    splits = v.get("seed_splits") or []
    if splits:
        where = ", ".join(f"{sp['name'] or _f(sp['scale'])} ({sp['above']} of {sp['seeds']})" for sp in splits)
        text += (f" Seeds split at {where}: only some reached exact match {_f(v['split_threshold'])}, so the"
                 " mean there is the share of runs that learned the task, and it is there that more seeds"
                 " narrow the verdict.")
    return text + (f" Note: {v['note']}." if v.get("note") else "")


def write_summary(path: Path, analysis: dict, meta: dict) -> Path:
    """``summary.md``: what was run, the metric table, the fits, the verdict and the forecast."""
    from jaxscale.emergence_report import CONTINUOUS, PROPORTIONS  # the report imports this module
    from jaxscale.fit.emergence.sigmoid import STEP_NOTE

    a = analysis["as_json"]
    lines = [f"# Emergence study: {meta['task']} × {meta['family']}", ""]
    for k in ("task_description", "fingerprint", "budget", "seeds", "device", "versions"):
        if meta.get(k) is not None:
            lines.append(f"- **{k.replace('_', ' ')}**: {meta[k]}")
    lines += [f"- **test items per model**: {a['test_items']}; threshold {a['threshold']:g}; "
              f"scale axis `{a['scale_axis']}`"]
    if a.get("chance"):
        lines.append("- **chance levels** (the score of the best constant answer; the floor of the "
                     "fits, and the verdict's baseline for exact match): "
                     + ", ".join(f"{PROPORTIONS[k]} {_f(c, 4)}" for k, c in a["chance"].items()))
    lines += ["",
              "## Metrics by size (mean over seeds, 95% interval)", ""]
    keys = [k for k in (*PROPORTIONS, *CONTINUOUS) if k in a["sizes"][0]]
    labels = {**PROPORTIONS, **CONTINUOUS}
    lines.append("| size | " + a["scale_axis"] + " | seeds | " + " | ".join(labels[k] for k in keys) + " |")
    lines.append("|" + "---|" * (3 + len(keys)))
    for e in a["sizes"]:
        cells = [f"{_f(e[k]['mean'])}{_ci(e[k]['lo'], e[k]['hi'])}" for k in keys]
        lines.append(f"| {e['name']} | {e['scale']:,.0f} | {e['seeds']} | " + " | ".join(cells) + " |")
    lines += ["", "Proportions: hierarchical bootstrap (seeds, then test items); continuous "
              "metrics: Student-t over seeds.", "", "## Fits (midpoint = where the sigmoid is "
              "halfway between floor and ceiling)", ""]
    flat = (a.get("verdict") or {}).get("label") == "no transition"
    for key, s in a["series"].items():
        # BIG-bench's scores divide by the typical step, so a series on its floor scores noise
        # (sparse parity at chance, climbing from 0.3 to 0.5 at its smallest size: 171)
        noise = " (noise: exact match never rises clearly, see the verdict)" if flat and key == "exact_match" else ""
        lines.append(f"**{PROPORTIONS[key]}**: crossing of {a['threshold']:g} at "
                     f"{_f(s['crossing'])}{_ci(*s['crossing_ci'])} ({s['crossing_status']}); "
                     f"breakthroughness {_f(s['breakthroughness'])}, linearity {_f(s['linearity'])}{noise}")
        for kind in ("logistic", "gompertz"):
            fit = s[kind]
            if fit is not None:
                flag = (f" — NOT IDENTIFIED ({fit['reason']})" if not fit["identified"] else
                        f" — {STEP_NOTE}" if fit.get("step") else "")
                lines.append(f"- {kind}: midpoint {_f(fit['midpoint'])}{_ci(*fit['midpoint_ci'])}, "
                             f"10–90% width {_f(fit['width_decades'])} decades"
                             f"{_ci(*fit['width_ci'])}, "
                             + (f"floor {_f(fit['floor'])} (fitted), chance {_f(fit.get('chance'))}, "
                                if fit.get("floor_fitted") else f"floor {_f(fit['floor'])} (chance), ")
                             + f"AIC {_f(fit['aic'], 5)}{flag}")
        lines.append("")
    lines += ["## Verdict", "", verdict_text(a["verdict"])]
    lines += ["", "## Forecast (answer loss law → link → exact match) and backtest", ""]
    fc, bt = a.get("forecast"), a.get("backtest")
    if fc:
        lines.append(f"- all sizes: exact match reaches {a['threshold']:g} at {_f(fc['scale'])}"
                     f"{_ci(*fc['ci'])} ({_f(fc['extrapolation_decades'])} decades beyond the "
                     f"largest size; loss exponent {_f(fc['loss_exponent'])})")
    if bt:
        lines.append(f"- backtest, {bt['n_holdout']} largest size(s) held out: observed crossing "
                     f"{_f(bt['observed'])}; forecast {_f(bt['forecast'])}{_ci(*bt['forecast_ci'])}"
                     f", error {_f(bt['forecast_error_decades'])} decades; naive logistic on EM "
                     f"{_f(bt['naive'])}{_ci(*bt['naive_ci'])}, error "
                     f"{_f(bt['naive_error_decades'])} decades")
    if a.get("subtasks"):
        lines += ["", "## Subtasks (exact match crossing per subtask)", ""]
        for k, s in a["subtasks"].items():
            lines.append(f"- subtask {k}: {_f(s['crossing'])} ({s['status']})")
    if a["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in a["notes"]]
    if meta.get("figures"):
        lines += ["", "## Figures", ""] + [f"![{Path(p).stem}]({p})" for p in meta["figures"]]
    path.write_text("\n".join(lines) + "\n")
    return path
