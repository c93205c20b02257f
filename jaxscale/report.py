"""The study's figures and ``report.md``: every number in the report is read from the fit objects.

The report holds the fitted laws with 95% intervals and R² (in log space), the per-size table,
the backtests, the compute-optimal allocation from Approaches 2 and 3 next to the
20-tokens-per-parameter rule (budgets far beyond the data are marked as extrapolations), the
figures inline, the exact command, versions, device and corpus fingerprint.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EXTRAPOLATION_DECADES = 1.0
FAR_BUDGETS = (1e18, 1e19, 1e20, 1e21)  # the course's allocation table


def _est(e) -> str:
    lo, hi = e.ci95 if e.ci95 is not None else (math.nan, math.nan)
    if math.isnan(lo) or math.isnan(hi):  # no interval; an infinite bound is shown as inf
        return f"{e.value:.4g}"
    return f"{e.value:.4g} [{lo:.4g}, {hi:.4g}]"


def floor_note(laws: list[tuple[str, str, object, bool]]) -> str | None:
    """A sentence on the laws (label, the floor's name, its ``Estimate``, whether it is
    identified: ``_optim.floor_identified``) whose irreducible term the data do not identify,
    with how large a floor their intervals still allow; None when every floor is identified.

    Why: such a fit prints a floor like 5e-12 with an interval reaching the same order as the
    losses; read without comment, that looks like a measured floor of zero."""
    loose = [(label, name, est) for label, name, est, identified in laws if not identified]
    if not loose:
        return None
    def allowed_for(label, name, est) -> str:
        hi = est.ci95[1] if est.ci95 is not None else math.nan
        if math.isnan(hi):
            return f"{label}: {name} ≈ 0"
        return f"{label}: {name} up to {hi:.3g}" if math.isfinite(hi) else f"{label}: {name} unbounded above"

    allowed = "; ".join(allowed_for(*law) for law in loose)
    from jaxscale.fit._optim import FLOOR_BOUNDARY_FRACTION

    return ("**Floor not identified** (" + allowed + "). The fit drives the irreducible term towards 0, below "
            f"{FLOOR_BOUNDARY_FRACTION:.0%} of the smallest loss, because over the range trained the loss still falls as fast as a pure power "
            "law. The fitted exponents then describe the whole loss, not its reducible part, and the upper "
            "ends of their intervals go with the largest floor the data allow. Larger or longer-trained "
            "models are needed to place the floor.")


def write_figures(out: Path, fits: dict, ladder: list) -> dict[str, str]:
    from jaxscale.plots.power_law import plot_power_law

    objs = fits["_objects"]
    paths = {}
    fit, bt = objs["power_law_non_embedding"]
    paths["power_law"] = plot_power_law(fit, out / "power_law.png", backtest=bt,
                                        title=f"Test loss vs non-embedding parameters: L = A·N^-α + B, "
                                              f"α = {fit.alpha.value:.3f}")
    fit_t, bt_t = objs["power_law_total"]
    paths["power_law_total"] = plot_power_law(fit_t, out / "power_law_total.png", backtest=bt_t,
                                              title=f"Test loss vs total parameters: α = {fit_t.alpha.value:.3f}")
    paths.update(write_chinchilla_figures(out, objs))
    paths["curves"] = plot_curves(ladder, out / "curves.png")
    return {k: Path(v).name for k, v in paths.items()}


def write_chinchilla_figures(out: Path, objs: dict) -> dict:
    """IsoFLOP profiles, N_opt/D_opt against C and loss contours, for the approaches that were
    identified (``fit_approaches``' ``_objects``)."""
    from jaxscale.plots.chinchilla import plot_isoflops, plot_loss_contours, plot_optimal_allocation

    paths = {}
    N, D, L, names = objs["isoflop_points"]
    if "approach2" in objs:
        paths["isoflops"] = plot_isoflops(objs["approach2"], N, D, L, out / "isoflops.png", labels=names)
    approaches = {str(i): objs[f"approach{i}"] for i in (1, 2, 3) if f"approach{i}" in objs}
    if approaches:
        paths["allocation"] = plot_optimal_allocation(approaches, out / "allocation.png")
    if "approach3" in objs:
        paths["contours"] = plot_loss_contours(objs["approach3"], out / "contours.png")
    return paths


def plot_curves(rows: list, path: Path) -> Path:
    """Validation loss against training tokens, one line per size (its best learning rate, seed
    mean), log-log."""
    from jaxscale.plots._common import plt, save
    from jaxscale.sweep import select_best_lr

    chosen = select_best_lr(rows)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    names = sorted({r["name"] for r in chosen}, key=lambda n: next(r["params"] for r in chosen if r["name"] == n))
    for i, name in enumerate(names):
        runs = [r for r in chosen if r["name"] == name]
        points = [[(p["tokens"], p["val_loss"]) for p in r["curve"] if p.get("val_loss") is not None] for r in runs]
        n = min(len(p) for p in points)
        tokens = [p[0] for p in points[0][:n]]
        mean = np.mean([[v for _, v in p[:n]] for p in points], axis=0)
        ax.plot(tokens, mean, "o-", ms=3, color=plt.cm.viridis(i / max(len(names) - 1, 1)),
                label=f"{name.split('/')[-1]} ({runs[0]['params']:,} params, lr {runs[0]['lr']:g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Learning curves at the chosen learning rate (mean over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


NOT_IDENTIFIED_MARK = "†"


def identified_mark(fits: dict, i: int) -> str:
    """"" for an Approach ``i`` whose exponent is identified (``study.identified``), else the mark
    that an allocation table puts after its numbers, explained by :func:`not_identified_note`."""
    return "" if fits.get(f"approach{i}", {}).get("identified") else NOT_IDENTIFIED_MARK


def not_identified_note(fits: dict, approaches=(1, 2, 3)) -> str:
    """The footnote for :func:`identified_mark` ("" when every approach shown is identified)."""
    missing = [str(i) for i in approaches if identified_mark(fits, i)]
    if not missing:
        return ""
    return (f"{NOT_IDENTIFIED_MARK} Approach {', '.join(missing)}: not identified at this scale (the exponent's "
            "95% interval is missing or too wide): its N_opt is what the point estimate implies, not a finding.")


def allocation_rows(fits: dict, max_data_compute: float, local_budgets) -> list[dict]:
    """Rule of thumb vs Approach 2 and 3 at the local budgets and the course's 1e18-1e21."""
    from jaxscale.fit import chinchilla_optimal_allocation

    a2, a3 = fits["_objects"].get("approach2"), fits["_objects"].get("approach3")
    rows = []
    nan = float("nan")
    for c in list(local_budgets) + list(FAR_BUDGETS):
        rule_n, rule_d = chinchilla_optimal_allocation(c, 20.0)
        n3, lo3, hi3 = (float(v[0]) for v in a3.n_opt_band(c)) if a3 is not None else (nan, nan, nan)
        decades = math.log10(c / max_data_compute)
        rows.append({"compute": c, "rule_params": float(rule_n), "rule_tokens": float(rule_d),
                     "a2_params": float(a2.n_opt(c)) if a2 is not None else nan, "a3_params": n3,
                     "a3_params_ci": (lo3, hi3), "a3_tokens": float(a3.d_opt(c)) if a3 is not None else nan,
                     "decades_beyond_data": decades, "extrapolated": decades > EXTRAPOLATION_DECADES})
    return rows


def write_report(out: Path, cfg, fits: dict, ladder: list, iso: list, *, command: str, wall_seconds: float,
                 figures: dict) -> Path:
    from jaxscale.fit.sources import budget_tokens
    from jaxscale.isoflop_grid import family_order, isoflop_extension_note
    from jaxscale.lr_grid import lr_edge_note
    from jaxscale.sweep import select_best_lr

    objs = fits["_objects"]
    first = ladder[0]
    lines = [f"# jaxscale study ({cfg.scale} scale)", "",
             f"Command: `{command}`  ", f"Wall time: {wall_seconds:.0f} s  ",
             f"Device: {first['device']['kind']} ({first['device']['platform']} × {first['device']['count']})  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in first["versions"].items()) + "  ",
             f"Corpus: {first['corpus']['name']}, fingerprint `{first['corpus']['fingerprint']}`", "",
             "## 1. Loss against model size", "",
             f"{len(cfg.sizes)} sizes × {len(cfg.lrs)} learning rates × {len(cfg.seeds)} seeds"
             + (f" (and, up to {cfg.lr_extend_rounds} rounds, the next rate out ×/÷ {cfg.lr_extend_factor:g} for a size "
                "whose choice was an end of the grid)" if cfg.lr_extend_rounds else "") + ", each trained at "
             f"{cfg.tokens_per_param:g} tokens per {cfg.params_basis} parameter (batch {cfg.batch_size} × "
             f"{cfg.seq_len} tokens). The learning rate of each size is chosen on the validation split; the law "
             "is fitted to the **test** loss (seed mean; the bootstrap resamples sizes and seeds).", "",
             "| size | params | non-embedding | tokens | lr | val loss | test loss (seed mean) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    chosen = select_best_lr(ladder)
    for name in sorted({r["name"] for r in chosen}, key=lambda n: next(r["params"] for r in chosen if r["name"] == n)):
        rs = [r for r in chosen if r["name"] == name]
        lines.append(f"| {name} | {rs[0]['params']:,} | {rs[0]['non_embedding_params']:,} | {rs[0]['tokens']:,} | "
                     f"{rs[0]['lr']:g} | {np.mean([r['val_loss'] for r in rs]):.4f} | "
                     f"{np.mean([r['test_loss'] for r in rs]):.4f} |")
    lr_note = lr_edge_note(ladder)
    lines += ["", lr_note] if lr_note else []
    lines += ["", "| law | A (k) | α (γ) | B (E) | R² (log) | n | backtest: mean abs. error on the largest |",
              "|---|---|---|---|---:|---:|---|"]
    for key, label in (("power_law_non_embedding", "L(N), N = non-embedding"), ("power_law_total", "L(N), N = total")):
        fit, bt = objs[key]
        lines.append(f"| {label} | {_est(fit.A)} | {_est(fit.alpha)} | {_est(fit.B)} | {fit.r2_log:.4f} | {fit.n} | "
                     f"{100 * bt.mean_abs_rel_error:.2f}% on {bt.x_held.size} held out "
                     f"({max(bt.decades):.2f} decades beyond) |")
    comp = objs["compute_law"]
    lines.append(f"| L(C), C = training FLOPs | {_est(comp.k)} | {_est(comp.gamma)} | {_est(comp.E)} | "
                 f"{comp.r2_log:.4f} | {comp.n} | — |")
    note = floor_note([(label, name, fit.B, fit.floor_identified) for label, name, fit in (
        ("L(N), non-embedding", "B", objs["power_law_non_embedding"][0]),
        ("L(N), total", "B", objs["power_law_total"][0]), ("L(C)", "E", comp))])
    lines += ["", note] if note else []
    fit = objs["power_law_non_embedding"][0]
    imp = fit.improvement()
    lines += ["", "Scaling returns from the largest size (non-embedding law): " + "; ".join(
        f"{k:g}× → {v['total_pct']:.1f}% lower loss" for k, v in imp.items()) + ".", "",
        f"![power law]({figures['power_law']})", "", f"![power law, total parameters]({figures['power_law_total']})",
        "", f"![learning curves]({figures['curves']})", "",
        "## 2. Compute-optimal allocation", "",
        f"IsoFLOP grid: budgets {', '.join(f'{c:.1e}' for c in cfg.isoflop_budgets)} FLOPs (C = 6·N·D, N total "
        f"parameters) × sizes {', '.join(cfg.isoflop_sizes)}, each at its part-1 learning rate. Approach 1 uses every "
        "run (end-of-schedule points of several lengths per size); Approach 3 fits L(N, D) = E + A/N^α + B/D^β on "
        "every run (Huber δ = 1e-3 on log loss, Hoffmann's 4,500-start grid).", ""]
    iso_note = isoflop_extension_note(iso, cfg.isoflop_budgets,
                                      family_order(cfg.family), cfg.isoflop_sizes)
    if iso_note:
        lines += [iso_note, ""]
    lines += ["| approach | a (N_opt ∝ C^a) | b (D_opt ∝ C^b) | R² | at this scale |", "|---|---|---|---:|---|"]
    for i in (1, 2, 3):
        f = objs.get(f"approach{i}")
        if f is None:
            lines.append(f"| {i} | not identified: {fits[f'approach{i}']['error']} | | | |")
        else:
            verdict = ("identified" if not identified_mark(fits, i)
                       else "**not identified** (interval too wide or missing)")
            lines.append(f"| {i} | {_est(f.a)} | {_est(f.b)} | {f.r2_log:.4f} | {verdict} |")
    a3 = objs.get("approach3")
    lines += ["", "Hoffmann et al. (2022) found a ≈ 0.50 / 0.49 / 0.46 (Approaches 1 / 2 / 3).", ""]
    if a3 is not None:
        lines += [f"Approach 3: E = {_est(a3.E)}, A = {_est(a3.A)}, B = {_est(a3.B)}, α = {_est(a3.alpha)}, "
                  f"β = {_est(a3.beta)}, G = {_est(a3.G)}.", ""]
        note = floor_note([("Approach 3", "E", a3.E, a3.floor_identified)])
        lines += [note, ""] if note else []
    lines += ["| budget (FLOPs) | 20 tokens/param: N | D | Approach 2: N_opt | Approach 3: N_opt [95%] | D_opt | |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    # the compute of each run's budget (a diverged run's planned tokens, as its budget's other runs)
    max_c = max(6.0 * r["params"] * budget_tokens(r) for r in ladder + iso)
    m2, m3 = identified_mark(fits, 2), identified_mark(fits, 3)
    for row in allocation_rows(fits, max_c, cfg.isoflop_budgets):
        lo, hi = row["a3_params_ci"]
        flag = (f"**extrapolation: {row['decades_beyond_data']:.1f} decades beyond the data**"
                if row["extrapolated"] else "within the data")
        lines.append(f"| {row['compute']:.1e} | {row['rule_params']:.3g} | {row['rule_tokens']:.3g} | "
                     f"{row['a2_params']:.3g}{m2} | {row['a3_params']:.3g}{m3} [{lo:.3g}, {hi:.3g}] | "
                     f"{row['a3_tokens']:.3g}{m3} | {flag} |")
    footnote = not_identified_note(fits, (2, 3))
    lines += ["", footnote] if footnote else []
    lines += ["", "The 1e18–1e21 rows extrapolate the fitted laws many decades beyond what was trained: read them as "
              "what these small-scale laws imply, not as predictions.", "",
              ] + [f"![{k}]({figures[k]})\n" for k in ("isoflops", "allocation", "contours") if k in figures]
    if fits.get("warnings"):
        lines += ["## Warnings raised by the fits", ""] + [f"- {w}" for w in fits["warnings"]] + [""]
    lines += ["## Files", "", "`results.jsonl` (every trained model), `fits.json` (every fitted law), "
              "`ladder/` and `isoflop/` (the two sweeps: rows, plans, settings), the PNG figures above.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
