"""The notebook's section 1 (the power law L = A·N^-α + B) measured on real text, and its
random-token workload beside it, where no law can be learned.

    python experiments/power_law.py [--quick | --smoke] [--out DIR] [--mode auto|stack|sequential]

Part 1 trains the byte-level ladder on the built-in corpus (the Python standard library, byte
tokens): every size at the same stated budget of tokens per (total) parameter, a grid of
learning rates and two seeds per size in each stack. Each size's learning rate is chosen on the
validation split; the law is fitted on the test-split loss (seed mean; the bootstrap resamples
sizes and seeds) against non-embedding and against total parameters (at 10^4-10^5 parameters
the choice moves the exponent, so both are shown), with a backtest that fits without the largest
size(s) and predicts them. The figure is the notebook's four panels (log-log fit, linear view,
"k× more parameters" bars for 2/5/10/100/1000×, residuals) with 95% bands.

Part 2 runs the notebook's own workload unchanged (preset ``notebook-scaling``: its five
architectures, i.i.d. uniform tokens over V = 500, 40 steps of 4 × 24 tokens, AdamW 3e-4) for
several data seeds. The next token is independent of the context, so the best any model can do
is the uniform prediction, whose loss is ln V = ln 500 ≈ 6.2146 nats: every size's loss sits at
that floor and differences between sizes are noise. The report shows the measured losses beside
ln V and what a power-law fit does with them.

Modes. ``--smoke``: a few seconds of training (the test suite); ``--quick``: ladder l1-l5 at 4
tokens per parameter, 2 seeds of the random preset, meant for <= 2 minutes on an idle 2-core CPU;
default: ladder l1-l8 at 20 tokens per parameter, 3 seeds of the random preset. Measured on
the idle 2-core development CPU: quick 69 s wall with no compilation cache
(``JAXSCALE_COMPILATION_CACHE=off``), 40 s with a warm one; the default run took 408 s
(2026-12-04, four learning rates).

Writes into OUT: results.jsonl (every trained model; field ``part`` is ``text`` or
``random_tokens``), fits.json, power_law.png and power_law_total.png (four panels each),
random_tokens.png, curves.png, report.md; text/ and random_tokens/ hold the resumable sweeps.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

V_RANDOM = 500
LN_V = math.log(V_RANDOM)  # the loss of the uniform prediction: the floor on i.i.d. tokens

# Per mode: the ladder sizes, learning-rate grid, seeds, budget (tokens per total parameter),
# batch, held-out windows, bootstrap resamples, backtest hold-out, and the random preset's seeds.
# The full run's four learning rates bracket every size's optimum: with 4e-3 and 1e-2 alone every
# size chose 1e-2, the grid's end (2026-12-04), and one seed of l1 / l4 / l8 at 1e-2, 2.5e-2, 5e-2
# did best at 5e-2 / 2.5e-2 / 1e-2 (``jaxscale/lr_grid.py``).
PLANS = {
    "smoke": dict(sizes=("l1", "l2", "l3", "l4", "l5"), lrs=(4e-3, 1e-2), seeds=(0, 1), tokens_per_param=0.2,
                  batch_size=8, eval_windows=8, bootstrap=20, holdout=1, random_seeds=(42,)),
    "quick": dict(sizes=("l1", "l2", "l3", "l4", "l5"), lrs=(4e-3, 1e-2), seeds=(0, 1), tokens_per_param=4.0,
                  batch_size=16, eval_windows=32, bootstrap=200, holdout=1, random_seeds=(42, 43)),
    "full": dict(sizes=("l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8"), lrs=(4e-3, 1e-2, 2.5e-2, 5e-2), seeds=(0, 1),
                 tokens_per_param=20.0, batch_size=16, eval_windows=64, bootstrap=1000, holdout=2,
                 random_seeds=(42, 43, 44)),
}
SEQ_LEN = 64


# ----- part 1: real text ---------------------------------------------------------------------------

def run_text(out: Path, plan: dict, mode: str) -> list:
    """The ladder sweep on the built-in corpus (resumable in ``out/text``)."""
    from jaxscale.config import create_model_config
    from jaxscale.data.corpus import load_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.runner import RunSettings
    from jaxscale.sweep import expand, run_sweep
    from jaxscale.train import Budget, OptimConfig

    corpus = load_corpus("pystdlib")
    data = from_corpus(corpus, seq_len=SEQ_LEN, batch_size=plan["batch_size"], eval_max_windows=plan["eval_windows"])
    settings = RunSettings(batch_size=plan["batch_size"], seq_len=SEQ_LEN, eval_windows=plan["eval_windows"],
                           n_evals=5, progress=False)
    cfgs = [create_model_config(f"ladder/{s}") for s in plan["sizes"]]
    specs = expand(cfgs, seeds=plan["seeds"], lrs=plan["lrs"],
                   budgets=[Budget("tokens_per_param", plan["tokens_per_param"], "total")], optim=OptimConfig())
    _common.log(f"part 1: {len(specs)} models ({len(cfgs)} sizes × {len(plan['lrs'])} learning rates × "
                f"{len(plan['seeds'])} seeds) on {corpus.name}, {plan['tokens_per_param']:g} tokens per parameter")
    rows = run_sweep(specs, data, settings, mode=mode, out=out / "text", save_weights=False,
                     record={"experiment": "power_law", "plan": plan}).rows
    return _common.tag(rows, part="text")


def fit_text(rows: list, plan: dict) -> tuple[dict, list]:
    """The law on test loss against both parameter counts, each with its backtest. Returns the
    JSON-ready fits (fit objects under ``_objects``) and the warnings the fits raised."""
    from jaxscale.fit import backtest_power_law, fit_power_law, rows_to_data

    fits: dict = {"_objects": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for basis, key in (("non_embedding_params", "non_embedding"), ("params", "total")):
            d = rows_to_data(rows, x=basis, y="test_loss")
            fit = fit_power_law(d.N, d.loss, bootstrap=plan["bootstrap"], seed_losses=d.seed_losses,
                                labels=[n.split("/")[-1] for n in d.names])
            bt = backtest_power_law(d.N, d.loss, holdout=plan["holdout"], bootstrap=0,
                                    labels=[n.split("/")[-1] for n in d.names])
            fits[key] = {**fit.to_json(), "backtest": bt.to_json(), "improvement": fit.improvement(),
                         "points": {"names": list(d.names), "N": d.N.tolist(), "test_loss": d.loss.tolist()}}
            fits["_objects"][key] = (fit, bt)
    fits["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return fits, fits["warnings"]


# ----- part 2: the notebook's random tokens ------------------------------------------------------

def run_random(out: Path, plan: dict, mode: str) -> list:
    """The ``notebook-scaling`` preset, unchanged, once per data seed (resumable)."""
    from jaxscale.presets import make_preset
    from jaxscale.sweep import run_sweep

    rows = []
    for seed in plan["random_seeds"]:
        preset = make_preset("notebook-scaling", seed=seed)
        _common.log(f"part 2: preset notebook-scaling, data seed {seed} ({len(preset.specs)} models, "
                    f"{preset.specs[0].budget.value:g} steps of {preset.data.tokens_per_step} random tokens)")
        res = run_sweep(preset.specs, preset.data, dataclasses.replace(preset.settings, progress=False), mode=mode,
                        out=out / "random_tokens" / f"seed{seed}", save_weights=False)
        rows += _common.tag(res.rows, part="random_tokens", data_seed_preset=seed)
    return rows


def analyse_random(rows: list, plan: dict) -> dict:
    """Per size: the notebook's metric (mean training loss of the last 10 steps), held-out
    losses and first-step loss against ln V; and what a power-law fit makes of the metric. A fit
    that fails is reported, never raised."""
    from jaxscale.fit import fit_power_law

    names = sorted({r["name"] for r in rows}, key=lambda n: next(r["params"] for r in rows if r["name"] == n))
    sizes = []
    for name in names:
        rs = sorted((r for r in rows if r["name"] == name), key=lambda r: r["data_seed_preset"])
        train = np.array([r["train_loss"] if r["train_loss"] is not None else np.nan for r in rs])
        test = np.array([r["test_loss"] if r["test_loss"] is not None else np.nan for r in rs])
        first = np.array([r["curve"][0]["train_loss"] or np.nan for r in rs])
        sizes.append({"name": name, "params": rs[0]["params"], "train_loss": train.tolist(),
                      "test_loss": test.tolist(), "first_step_loss": first.tolist(),
                      "train_mean": float(np.nanmean(train)), "test_mean": float(np.nanmean(test)),
                      "train_minus_lnv": float(np.nanmean(train) - LN_V), "test_minus_lnv": float(np.nanmean(test) - LN_V)})
    N = np.array([s["params"] for s in sizes], float)
    L = np.array([s["train_mean"] for s in sizes])
    seeds = np.array([s["train_loss"] for s in sizes]) if len(plan["random_seeds"]) > 1 else None
    spread_sizes = float(L.max() - L.min())
    seed_sd = float(np.nanmean(np.nanstd(seeds, axis=1, ddof=1))) if seeds is not None else float("nan")
    result = {"ln_v": LN_V, "vocab_size": V_RANDOM, "sizes": sizes, "spread_between_sizes": spread_sizes,
              "mean_seed_sd": seed_sd, "fit": None, "fit_error": None, "fit_warnings": [], "_fit": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = fit_power_law(N, L, bootstrap=plan["bootstrap"], seed_losses=seeds,
                                labels=[n.split("/")[-1] for n in (s["name"] for s in sizes)])
            reducible = fit.A.value * N ** -fit.alpha.value
            result["fit"] = {**fit.to_json(), "reducible_at_sizes": reducible.tolist(),
                             "B_minus_lnv": fit.B.value - LN_V}
            result["_fit"] = fit
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            result["fit_error"] = f"{type(err).__name__}: {err}"
    result["fit_warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return result


# ----- figures -----------------------------------------------------------------------------------

def plot_random(rnd: dict, text_fit, path: Path) -> Path:
    """Left: both workloads' losses against size, with their floors (ln 500 for the random
    tokens, ln 256 = uniform over bytes for the text) and the fitted curves with 95% bands.
    Right: the random-token losses minus ln V, magnified, with the seed spread."""
    from jaxscale.fit.power_law import ExtrapolationWarning
    from jaxscale.plots._common import plt, save

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    ax = axes[0]
    N = np.array([s["params"] for s in rnd["sizes"]], float)
    names = [s["name"].split("/")[-1] for s in rnd["sizes"]]
    for s in rnd["sizes"]:
        ax.scatter([s["params"]] * len(s["train_loss"]), s["train_loss"], color="C3", s=14, alpha=0.6)
    ax.plot(N, [s["train_mean"] for s in rnd["sizes"]], "o-", color="C3",
            label="random tokens: notebook's metric (last-10-step train loss), seed mean")
    ax.plot(N, [s["test_mean"] for s in rnd["sizes"]], "s--", color="C1", label="random tokens: test loss")
    ax.axhline(LN_V, color="C3", ls=":", label=f"floor ln {V_RANDOM} = {LN_V:.4f}")
    for x, y, n in zip(N, [s["train_mean"] for s in rnd["sizes"]], names):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(3, 6), fontsize=7)
    tx, ty = text_fit.x, text_fit.y
    grid = np.geomspace(tx.min() / 1.3, max(tx.max(), N.max()) * 1.3, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        pred, lo, hi = text_fit.predict(grid, band=True)
    ax.fill_between(grid, lo, hi, color="C0", alpha=0.2, label="real text: 95% band of the fit")
    ax.plot(grid, pred, color="C0", label=f"real text: L = {text_fit.A.value:.3g}·N^-{text_fit.alpha.value:.3f} "
                                          f"+ {text_fit.B.value:.3f}")
    ax.scatter(tx, ty, color="C0", zorder=3, label="real text: test loss (seed mean)")
    for x, y, n in zip(tx, ty, text_fit.labels or ()):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(3, 6), fontsize=7)
    ax.axhline(math.log(256), color="C0", ls=":", label=f"uniform over bytes: ln 256 = {math.log(256):.3f}")
    ax.set_xscale("log")
    ax.set_ylim(0, LN_V + 1.0)
    ax.set_xlabel("total parameters N (log scale)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Real text falls with size; random tokens sit at ln V")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center right")

    ax = axes[1]
    for key, mark, col, label in (("train_loss", "o", "C3", "last-10-step train loss"),
                                  ("test_loss", "s", "C1", "test loss")):
        vals = np.array([s[key] for s in rnd["sizes"]], float) - LN_V
        mean = np.nanmean(vals, axis=1)
        err = np.nanstd(vals, axis=1, ddof=1) if vals.shape[1] > 1 else None
        ax.errorbar(N, 1e3 * mean, yerr=None if err is None else 1e3 * err, fmt=mark + "-", color=col, capsize=3,
                    label=f"{label} − ln V (mean ± seed SD)")
    fit = rnd.get("_fit")
    if fit is not None:
        g = np.geomspace(N.min() / 1.2, N.max() * 1.2, 100)
        p, lo, hi = fit.predict(g, band=True)
        ax.fill_between(g, 1e3 * (lo - LN_V), 1e3 * (hi - LN_V), color="k", alpha=0.1, label="fit: 95% band")
        ax.plot(g, 1e3 * (p - LN_V), "k--", lw=1, label=f"power-law fit: α = {fit.alpha.value:.3g}")
    ax.axhline(0, color="k", lw=0.8)
    for x, y, n in zip(N, 1e3 * (np.array([s["train_mean"] for s in rnd["sizes"]]) - LN_V), names):
        ax.annotate(n, (x, y), textcoords="offset points", xytext=(3, 6), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("total parameters N (log scale)")
    ax.set_ylabel(f"loss − ln {V_RANDOM} (millinats/token)")
    ax.set_title("Random tokens, magnified: what is left above the floor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("The notebook's random-token workload has no scaling law to learn")
    fig.tight_layout()
    return save(fig, path)


def write_figures(out: Path, fits: dict, text_rows: list, rnd: dict) -> dict:
    from jaxscale.plots.power_law import plot_power_law
    from jaxscale.report import plot_curves

    paths = {}
    fit, bt = fits["_objects"]["non_embedding"]
    paths["power_law"] = plot_power_law(fit, out / "power_law.png", backtest=bt,
                                        title=f"Byte-level text: test loss vs non-embedding parameters, "
                                              f"L = A·N^-α + B, α = {fit.alpha.value:.3f}")
    fit_t, bt_t = fits["_objects"]["total"]
    paths["power_law_total"] = plot_power_law(fit_t, out / "power_law_total.png", backtest=bt_t,
                                              title=f"Byte-level text: test loss vs total parameters, "
                                                    f"α = {fit_t.alpha.value:.3f}")
    paths["random_tokens"] = plot_random(rnd, fit_t, out / "random_tokens.png")
    paths["curves"] = plot_curves(text_rows, out / "curves.png")
    return {k: Path(v).name for k, v in paths.items()}


# ----- report ------------------------------------------------------------------------------------

def write_report(out: Path, mode: str, plan: dict, fits: dict, text_rows: list, rnd: dict, figures: dict,
                 *, command: str, wall_seconds: float) -> Path:
    from jaxscale.lr_grid import lr_edge_note
    from jaxscale.report import floor_note
    from jaxscale.sweep import select_best_lr

    est = _common.est
    lines = ["# The power law on real text, and why random tokens have none", ""]
    lines += _common.provenance(text_rows + rnd["rows"], command=command, wall_seconds=wall_seconds, mode=mode)
    lines += ["", "## 1. Loss against model size on real text", "",
              f"Corpus `pystdlib` (byte tokens, V = 256). Ladder sizes {', '.join(plan['sizes'])}, each trained on "
              f"{plan['tokens_per_param']:g} tokens per total parameter (batch {plan['batch_size']} × {SEQ_LEN} tokens, "
              f"AdamW with warmup and cosine decay over each run's own steps), learning rates "
              f"{', '.join(f'{lr:g}' for lr in plan['lrs'])} × seeds {', '.join(map(str, plan['seeds']))}. Each size's "
              "learning rate is chosen on the **validation** split; the law is fitted on the **test** loss "
              "(seed mean; the 95% intervals come from a bootstrap over sizes and seeds).", "",
              "| size | params | non-embedding | tokens | chosen lr | val loss | test loss (per seed) |",
              "|---|---:|---:|---:|---:|---:|---|"]
    chosen = select_best_lr(text_rows)
    for name in sorted({r["name"] for r in chosen}, key=lambda n: next(r["params"] for r in chosen if r["name"] == n)):
        rs = [r for r in chosen if r["name"] == name]
        lines.append(f"| {name} | {rs[0]['params']:,} | {rs[0]['non_embedding_params']:,} | {rs[0]['tokens']:,} | "
                     f"{rs[0]['lr']:g} | {np.mean([r['val_loss'] for r in rs]):.4f} | "
                     + ", ".join(f"{r['test_loss']:.4f}" for r in rs) + " |")
    lr_note = lr_edge_note(text_rows)
    lines += ([""] + [lr_note] if lr_note else [])
    lines += ["", "| law | A | α | B (irreducible) | R² (log) | n | backtest |", "|---|---|---|---|---:|---:|---|"]
    for key, label in (("non_embedding", "N = non-embedding parameters"), ("total", "N = total parameters")):
        fit, bt = fits["_objects"][key]
        held = ", ".join(f"{x:,.0f}: predicted {p:.4f}, observed {o:.4f}"
                         for x, p, o in zip(bt.x_held, bt.predicted, bt.y_held))
        lines.append(f"| {label} | {est(fit.A)} | {est(fit.alpha)} | {est(fit.B)} | {fit.r2_log:.4f} | {fit.n} | "
                     f"mean abs. error {100 * bt.mean_abs_rel_error:.2f}% on the {bt.x_held.size} largest ({held}) |")
    note = floor_note([(label, "B", fits["_objects"][key][0].B, fits["_objects"][key][0].floor_identified)
                       for key, label in (("non_embedding", "non-embedding"), ("total", "total"))])
    lines += ["", note] if note else []
    fit = fits["_objects"]["non_embedding"][0]
    imp = fit.improvement()
    lines += ["", "The notebook's \"k× more parameters\" read-out (non-embedding law, from the largest size "
              f"N = {fit.x.max():,.0f}; the reducible part alone falls by 1 − k^-α): "
              + "; ".join(f"{k:g}× → {v['total_pct']:.1f}% lower loss ({v['reducible_pct']:.1f}% of the reducible part)"
                          for k, v in imp.items()) + ". Factors of 100× and 1000× extrapolate two and three decades "
              "beyond the data: read them as what the fitted law implies, not as measurements.", "",
              "At this scale the embedding is a large share of the parameters, so the two bases give different "
              "exponents. Kaplan et al. measured α ≈ 0.076 at 10^6–10^9 non-embedding parameters on BPE tokens, "
              "trained to convergence; agreeing or disagreeing with it at 10^4 parameters, byte tokens and a fixed "
              "tokens-per-parameter budget tests nothing about it.", "",
              f"![power law, non-embedding]({figures['power_law']})", "",
              f"![power law, total]({figures['power_law_total']})", "",
              f"![learning curves]({figures['curves']})", ""]
    if fits["warnings"]:
        lines += ["Warnings raised by the fits:", ""] + [f"- {w}" for w in fits["warnings"]] + [""]

    lines += ["## 2. The notebook's workload: random tokens", "",
              f"Preset `notebook-scaling`, unchanged: the notebook's five architectures (vocab {V_RANDOM}), i.i.d. "
              f"uniform tokens, 40 steps of 4 × 24 tokens, AdamW 3e-4; its metric is the mean training loss of the "
              f"last 10 steps. Data seeds: {', '.join(map(str, plan['random_seeds']))}.", "",
              f"**No scaling law can be learned from this data.** Each token is drawn uniformly and independently of "
              f"the context, so the cross-entropy of any model is at least the entropy of the uniform distribution, "
              f"ln V = ln {V_RANDOM} = {LN_V:.4f} nats, reached only by predicting uniform; a larger model can do no "
              f"better, it can only fit noise in the training batches (which raises held-out loss). The measured "
              f"losses sit at the floor:", "",
              "| size | params | first-step loss | notebook metric (per seed) | − ln V | test loss (seed mean) | − ln V |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for s in rnd["sizes"]:
        lines.append(f"| {s['name']} | {s['params']:,} | {np.nanmean(s['first_step_loss']):.4f} | "
                     + ", ".join(f"{v:.4f}" for v in s["train_loss"])
                     + f" | {s['train_minus_lnv']:+.4f} | {s['test_mean']:.4f} | {s['test_minus_lnv']:+.4f} |")
    sd = rnd["mean_seed_sd"]
    lines += ["", f"The notebook metric's seed means span {rnd['spread_between_sizes']:.4f} nats over the sizes "
              f"(highest − lowest)"
              + (f", against a seed-to-seed standard deviation of {sd:.4f} nats at a fixed size" if math.isfinite(sd)
                 else "") + "."]
    if rnd["fit"] is not None:
        f = rnd["_fit"]
        red = rnd["fit"]["reducible_at_sizes"]
        lines += ["", f"What a power-law fit does with these losses (notebook metric against total parameters): "
                  f"A = {est(f.A)}, α = {est(f.alpha)}, B = {est(f.B)} (R² log {f.r2_log:.4f}). B − ln V = "
                  f"{rnd['fit']['B_minus_lnv']:+.4f} nats; the \"reducible\" term A·N^-α is {min(red):.3g}–{max(red):.3g} "
                  "nats across the sizes. The fit explains differences that are at the floor and at the size of the "
                  "noise, so its exponent is meaningless: it describes how far each model has drifted from the "
                  "uniform prediction after 40 steps, not a law of size."
                  + (" Here α < 0: the fitted loss *rises* with size." if f.alpha.value < 0 else "")
                  + (" The 95% interval of α includes 0." if f.alpha.ci95 is not None
                     and f.alpha.ci95[0] <= 0 <= f.alpha.ci95[1] else "")]
    else:
        lines += ["", f"A power-law fit to these losses failed: {rnd['fit_error']}. That is the expected outcome on "
                  "data with no size dependence."]
    if rnd["fit_warnings"]:
        lines += ["", "Warnings raised by that fit: " + "; ".join(rnd["fit_warnings"])]
    lines += ["", f"![random tokens]({figures['random_tokens']})", "",
              "## Files", "", "`results.jsonl` (every trained model; `part` = `text` or `random_tokens`), `fits.json` "
              "(every fitted law, with backtests), the PNG figures above, `text/` and `random_tokens/` (the sweeps: "
              "rows, plans, settings; rerunning the same command resumes them).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    args, mode, out = _common.parse_args(__doc__, "power_law", argv)  # also prepare_process()
    plan = PLANS[mode]
    t0 = time.perf_counter()
    text_rows = run_text(out, plan, args.mode)
    fits, _ = fit_text(text_rows, plan)
    random_rows = run_random(out, plan, args.mode)
    rnd = analyse_random(random_rows, plan)
    rnd["rows"] = random_rows
    _common.write_rows(out / "results.jsonl", text_rows + random_rows)
    with np.errstate(over="ignore", invalid="ignore"):  # bootstrap curves far outside the data
        figures = write_figures(out, fits, text_rows, rnd)
    from jaxscale.results import strict_json

    (out / "fits.json").write_text(strict_json(  # a non-finite bound is written null
        {"text": {k: v for k, v in fits.items() if k != "_objects"},
         "random_tokens": {k: v for k, v in rnd.items() if k not in ("_fit", "rows")}}))
    report = write_report(out, mode, plan, fits, text_rows, rnd, figures,
                          command=_common.command_line("power_law.py", argv), wall_seconds=time.perf_counter() - t0)
    for key in ("non_embedding", "total"):
        fit, bt = fits["_objects"][key]
        _common.log(f"text, N = {key}: L = {fit.A} · N^-({fit.alpha}) + {fit.B}; R² (log) {fit.r2_log:.4f}; "
                    f"backtest error {100 * bt.mean_abs_rel_error:.2f}%")
    rf = rnd["_fit"]
    _common.log(f"random tokens: losses {min(s['train_mean'] for s in rnd['sizes']):.4f}–"
                f"{max(s['train_mean'] for s in rnd['sizes']):.4f} vs ln {V_RANDOM} = {LN_V:.4f}; fit "
                + (f"α = {rf.alpha}" if rf is not None else f"failed ({rnd['fit_error']})"))
    _common.log(f"wrote {report}, {out / 'results.jsonl'}, {out / 'fits.json'} and {len(figures)} figures "
                f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    from jaxscale.host import preload_allocator_or_exit

    preload_allocator_or_exit("power_law.py")  # restarts with jemalloc preloaded where installed (jaxscale/host.py)
    sys.exit(main())
