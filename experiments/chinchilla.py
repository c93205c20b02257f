"""The notebook's Chinchilla "allocation race", made fair, then the IsoFLOP study behind it.

    python experiments/chinchilla.py [--quick | --smoke] [--out DIR] [--mode auto|stack|sequential]

Part 1, the race. The notebook pits three strategies (big and undertrained, small and
overtrained, balanced) against each other on random tokens, with training steps 25 / 60 / 100
that spend unequal compute, and judges them by training loss. Here the three strategies are
byte-level ladder sizes on real text (the built-in corpus), with a size ratio close to the
notebook's (about 2.6× between neighbours), and every strategy spends the **same training
FLOPs counted by the model's own formula** (``cfg.flops_per_token().total × tokens``: the
non-embedding matmuls, the LM head and causal attention): the balanced model gets a stated
number of tokens per parameter (20, Hoffmann et al.'s ratio, in the full run) and the others
get the tokens that the same FLOPs buy. Each strategy's learning rate is chosen on the
validation split; they are compared by validation loss and by test loss, with seeds.

Part 2, the IsoFLOP sweep: budgets C = 6·N·D (N total parameters, Hoffmann's convention, which
the fits use) × ladder sizes, each point at the learning rate its validation loss picks. Fits
Chinchilla Approaches 1 (envelope), 2 (IsoFLOP parabolas) and 3 (L(N, D) = E + A/N^α + B/D^β by
Huber loss), reports their exponents a (N_opt ∝ C^a) and b (D_opt ∝ C^b) beside Hoffmann et
al.'s, and the allocation for 1e18…1e21 FLOPs from the rule of thumb (N = (C/120)^½, D = 20·N)
and from the fitted laws, marked as the extrapolations they are. A fit that the data cannot
identify at this scale is reported as such.

Modes. ``--smoke``: seconds of training (the test suite); ``--quick``: short budgets (the
plumbing, not the conclusions), meant for <= 2 minutes on an idle 2-core CPU; default: the race
at 20 tokens per parameter for the balanced model and a 3 × 5 IsoFLOP grid, 2 seeds each.
Measured on the idle 2-core development CPU: quick 99 s wall with no compilation cache
(``JAXSCALE_COMPILATION_CACHE=off``), 66 s with a warm one; the default run was not measured
(estimate: ~12 minutes idle).

Writes into OUT: results.jsonl (every trained model; field ``part`` is ``race`` or
``isoflop``), fits.json, race.png, isoflops.png, allocation.png, contours.png, report.md;
race/ and isoflop/ hold the resumable sweeps.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SEQ_LEN = 64
STRATEGIES = (("small, overtrained", "l2"), ("balanced", "l4"), ("big, undertrained", "l7"))
HOFFMANN_A = {1: 0.50, 2: 0.49, 3: 0.46}  # Hoffmann et al. (2022), Table 2
from jaxscale.study import IDENTIFIED_MAX_CI_WIDTH  # noqa: E402

# Per mode: the balanced strategy's tokens per parameter (which sets the race's FLOPs), the race's
# learning rates and seeds; the IsoFLOP budgets (6·N·D FLOPs), sizes, learning rates and seeds;
# batch, held-out windows, bootstrap resamples.
PLANS = {
    "smoke": dict(race_tokens_per_param=0.2, race_lrs=(4e-3, 1e-2), race_seeds=(0,),
                  budgets=(5e8, 1e9, 2e9), sizes=("l1", "l2", "l3"), lrs=(4e-3, 1e-2), seeds=(0,),
                  batch_size=8, eval_windows=8, bootstrap=20),
    "quick": dict(race_tokens_per_param=2.0, race_lrs=(4e-3, 1e-2), race_seeds=(0,),
                  budgets=(3e9, 8e9, 2e10), sizes=("l1", "l2", "l3", "l4"), lrs=(4e-3, 1e-2), seeds=(0,),
                  batch_size=16, eval_windows=32, bootstrap=100),
    "full": dict(race_tokens_per_param=20.0, race_lrs=(4e-3, 1e-2), race_seeds=(0, 1),
                 budgets=(3e10, 8e10, 2e11), sizes=("l2", "l3", "l4", "l5", "l6"), lrs=(4e-3, 1e-2), seeds=(0, 1),
                 batch_size=16, eval_windows=64, bootstrap=300),
}


def _data(plan):
    from jaxscale.data.corpus import load_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.runner import RunSettings

    corpus = load_corpus("pystdlib")
    data = from_corpus(corpus, seq_len=SEQ_LEN, batch_size=plan["batch_size"], eval_max_windows=plan["eval_windows"])
    settings = RunSettings(batch_size=plan["batch_size"], seq_len=SEQ_LEN, eval_windows=plan["eval_windows"],
                           n_evals=5, progress=False)
    return data, settings


# ----- part 1: the race --------------------------------------------------------------------------

def race_budget(plan) -> float:
    """The race's training FLOPs: the balanced model's own FLOPs per token × its tokens."""
    from jaxscale.config import create_model_config

    cfg = create_model_config(f"ladder/{dict((s, n) for s, n in STRATEGIES)['balanced']}")
    return cfg.flops_per_token(seq_len=SEQ_LEN).total * plan["race_tokens_per_param"] * cfg.param_counts().total


def run_race(out: Path, plan: dict, mode: str) -> tuple[list, float]:
    from jaxscale.config import create_model_config
    from jaxscale.runner import ModelSpec
    from jaxscale.sweep import run_sweep
    from jaxscale.train import Budget, OptimConfig

    data, settings = _data(plan)
    flops = race_budget(plan)
    specs = []
    for strategy, size in STRATEGIES:
        cfg = create_model_config(f"ladder/{size}")
        tokens = flops / cfg.flops_per_token(seq_len=SEQ_LEN).total
        specs += [ModelSpec(cfg, seed, OptimConfig(lr=lr), Budget("tokens", tokens))
                  for lr in plan["race_lrs"] for seed in plan["race_seeds"]]
    _common.log(f"part 1: the race, {len(STRATEGIES)} strategies at {flops:.3g} training FLOPs each "
                f"(own formula), {len(plan['race_lrs'])} learning rates × {len(plan['race_seeds'])} seed(s)")
    rows = run_sweep(specs, data, settings, mode=mode, out=out / "race", save_weights=False,
                     record={"experiment": "chinchilla-race", "plan": plan}).rows
    strategy_of = {f"ladder/{size}": strategy for strategy, size in STRATEGIES}
    return [{**r, "part": "race", "strategy": strategy_of[r["name"]]} for r in rows], flops


def analyse_race(rows: list, flops: float) -> dict:
    """Per strategy at its chosen learning rate: FLOPs (own formula and 6·N·D), tokens per
    parameter, validation and test loss (seed mean and SD); the winner by validation loss."""
    from jaxscale.sweep import select_best_lr

    chosen = select_best_lr(rows)
    entries = []
    for strategy, size in STRATEGIES:
        rs = [r for r in chosen if r["name"] == f"ladder/{size}"]
        if not rs:  # every learning rate diverged
            entries.append({"strategy": strategy, "name": f"ladder/{size}", "diverged": True})
            continue
        r0 = rs[0]
        val = np.array([r["val_loss"] for r in rs])
        test = np.array([r["test_loss"] for r in rs])
        entries.append({
            "strategy": strategy, "name": r0["name"], "params": r0["params"],
            "non_embedding_params": r0["non_embedding_params"], "flops_per_token": r0["flops_per_token"],
            "tokens": r0["tokens"], "steps": r0["steps"], "tokens_per_param": r0["tokens"] / r0["params"],
            "flops": r0["flops"], "flops_6nd": 6.0 * r0["params"] * r0["tokens"], "lr": r0["lr"],
            "val": val.tolist(), "test": test.tolist(), "val_mean": float(val.mean()), "test_mean": float(test.mean()),
            "val_sd": float(val.std(ddof=1)) if val.size > 1 else None,
            "curves": [[(p["tokens"] * r["flops_per_token"], p["val_loss"]) for p in r["curve"] if "val_loss" in p]
                       for r in rs], "diverged": False})
    ok = [e for e in entries if not e["diverged"]]
    by_val = sorted(ok, key=lambda e: e["val_mean"])
    by_test = sorted(ok, key=lambda e: e["test_mean"])
    return {"flops": flops, "entries": entries, "winner_val": by_val[0]["strategy"] if by_val else None,
            "winner_test": by_test[0]["strategy"] if by_test else None,
            "margin_val": by_val[1]["val_mean"] - by_val[0]["val_mean"] if len(by_val) > 1 else None}


def notebook_race_counted() -> list[dict]:
    """The notebook's own race (its three architectures, vocab 400, context 32, batch 4 × 24,
    25 / 100 / 60 steps) counted by the model's FLOP formula: its budgets were not equal."""
    from jaxscale.config import ModelConfig

    rows = []
    for strategy, (d, h, layers, f), steps in (("big, undertrained", (128, 8, 6, 256), 25),
                                               ("small, overtrained", (64, 4, 3, 128), 100),
                                               ("balanced", (96, 6, 4, 192), 60)):
        cfg = ModelConfig(vocab_size=400, d_model=d, n_heads=h, n_layers=layers, d_ff=f, max_seq_len=32, dropout=0.1)
        tokens = steps * 4 * 24
        rows.append({"strategy": strategy, "params": cfg.param_counts().total, "steps": steps, "tokens": tokens,
                     "flops": cfg.flops_per_token(seq_len=24).total * tokens,
                     "tokens_per_param": tokens / cfg.param_counts().total})
    return rows


# ----- part 2: the IsoFLOP sweep and the three approaches ----------------------------------------

def run_isoflop(out: Path, plan: dict, mode: str) -> list:
    """Budgets × sizes (D = C / (6·N_total), as ``study.isoflop_specs``) × learning rates × seeds."""
    from jaxscale.config import create_model_config
    from jaxscale.runner import ModelSpec
    from jaxscale.sweep import run_sweep
    from jaxscale.train import Budget, OptimConfig

    data, settings = _data(plan)
    specs = []
    for c in plan["budgets"]:
        for size in plan["sizes"]:
            cfg = create_model_config(f"ladder/{size}")
            tokens = c / (6.0 * cfg.param_counts().total)
            specs += [ModelSpec(cfg, seed, OptimConfig(lr=lr), Budget("tokens", tokens))
                      for lr in plan["lrs"] for seed in plan["seeds"]]
    _common.log(f"part 2: IsoFLOP grid, {len(plan['budgets'])} budgets × {len(plan['sizes'])} sizes × "
                f"{len(plan['lrs'])} learning rates × {len(plan['seeds'])} seed(s)")
    rows = run_sweep(specs, data, settings, mode=mode, out=out / "isoflop", save_weights=False,
                     record={"experiment": "chinchilla-isoflop", "plan": plan}).rows
    return [{**r, "part": "isoflop", "isoflop_budget": 6.0 * r["params"] * r["budget"]["value"]} for r in rows]


def fit_approaches(race: list, iso: list, plan: dict) -> dict:
    """Approaches 1-3 (``jaxscale.study.fit_approaches``: 1 and 3 on every run, race and grid;
    2 on the grid), with the warnings the fitters raised."""
    from jaxscale.study import fit_approaches as fit_all_approaches

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = fit_all_approaches(race + iso, iso, bootstrap=plan["bootstrap"])
    fits["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return fits


# ----- figures -----------------------------------------------------------------------------------

def plot_race(race: dict, notebook: list, path: Path) -> Path:
    """The notebook's four race panels, counted fairly: validation loss against training FLOPs,
    final losses, the FLOPs each strategy spent (own formula vs 6·N·D vs the notebook's plan),
    and tokens per parameter against Hoffmann's 20."""
    from jaxscale.plots._common import plt, save

    entries = [e for e in race["entries"] if not e["diverged"]]
    colors = {"small, overtrained": "C0", "balanced": "C2", "big, undertrained": "C3"}
    labels = [f"{e['strategy']}\n({e['name'].split('/')[-1]}, {e['params']:,} params)" for e in entries]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    ax = axes[0, 0]
    for e in entries:
        curves = e["curves"]
        n = min(len(c) for c in curves)
        x = [p[0] for p in curves[0][:n]]
        y = np.mean([[p[1] for p in c[:n]] for c in curves], axis=0)
        ax.plot(x, y, "o-", ms=3, color=colors[e["strategy"]],
                label=f"{e['strategy']} ({e['name'].split('/')[-1]}, lr {e['lr']:g}): final {e['val_mean']:.3f}")
    ax.axvline(race["flops"], color="k", ls=":", lw=1, label=f"the race's budget {race['flops']:.3g} FLOPs")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs so far (model's own formula)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Validation loss against compute spent (seed mean)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    pos = np.arange(len(entries))
    for i, e in enumerate(entries):
        ax.bar(i - 0.2, e["val_mean"], 0.4, color=colors[e["strategy"]], alpha=0.8,
               label="validation" if i == 0 else None)
        ax.bar(i + 0.2, e["test_mean"], 0.4, color=colors[e["strategy"]], alpha=0.4, hatch="//",
               label="test" if i == 0 else None)
        ax.scatter([i - 0.2] * len(e["val"]), e["val"], color="k", s=10, zorder=3)
        ax.annotate(f"{e['val_mean']:.3f}", (i - 0.2, e["val_mean"]), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{e['test_mean']:.3f}", (i + 0.2, e["test_mean"]), ha="center", va="bottom", fontsize=8)
    lo = min(min(e["val_mean"], e["test_mean"]) for e in entries)
    hi = max(max(e["val_mean"], e["test_mean"]) for e in entries)
    ax.set_ylim(lo - 0.5 * (hi - lo) - 0.02, hi + 0.3 * (hi - lo) + 0.02)
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("final loss (nats/token; dots: seeds)")
    ax.set_title(f"Final loss at equal FLOPs: winner by validation = {race['winner_val']}")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    own = [e["flops"] for e in entries]
    six = [e["flops_6nd"] for e in entries]
    nb = {r["strategy"]: r["flops"] for r in notebook}
    ax.bar(pos - 0.27, own, 0.27, color="C2", label="this race: model's own formula (equal by design)")
    ax.bar(pos, six, 0.27, color="C7", label="this race: 6·N·D (N total parameters)")
    ax.bar(pos + 0.27, [nb[e["strategy"]] for e in entries], 0.27, color="C1",
           label="the notebook's race (its models and steps), own formula")
    ax.set_yscale("log")
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("training FLOPs")
    ax.set_title("Compute spent per strategy")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.bar(pos, [e["tokens_per_param"] for e in entries], color=[colors[e["strategy"]] for e in entries], alpha=0.8)
    for i, e in enumerate(entries):
        ax.annotate(f"{e['tokens_per_param']:.1f}", (i, e["tokens_per_param"]), ha="center", va="bottom", fontsize=8)
    ax.axhline(20, color="k", ls="--", label="Hoffmann et al.: ~20 tokens per parameter")
    ax.set_yscale("log")
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("training tokens per (total) parameter")
    ax.set_title("Data per parameter")
    ax.legend(fontsize=7)
    fig.suptitle(f"The allocation race at equal training FLOPs ({race['flops']:.3g}) on real text")
    fig.tight_layout()
    return save(fig, path)


def write_figures(out: Path, race: dict, fits: dict) -> dict:
    from jaxscale.report import write_chinchilla_figures

    paths = {"race": plot_race(race, notebook_race_counted(), out / "race.png")}
    paths.update(write_chinchilla_figures(out, fits["_objects"]))
    return {k: Path(v).name for k, v in paths.items()}


# ----- report ------------------------------------------------------------------------------------

def write_report(out: Path, mode: str, plan: dict, race: dict, fits: dict, rows: list, figures: dict, *,
                 command: str, wall_seconds: float) -> Path:
    from jaxscale.report import allocation_rows

    est = _common.est
    objs = fits["_objects"]
    lines = ["# The allocation race made fair, and the IsoFLOP laws behind it", ""]
    lines += _common.provenance(rows, command=command, wall_seconds=wall_seconds, mode=mode)
    lines += ["", "## 1. The race at equal training FLOPs", "",
              f"Every strategy trains for **{race['flops']:.4g} FLOPs by the model's own formula** "
              "(FLOPs per token × tokens; per token: 6 × non-embedding parameters + the LM head's 6·d·V + causal "
              f"attention) on `pystdlib` (byte tokens), batch {plan['batch_size']} × {SEQ_LEN}; the balanced model gets "
              f"{plan['race_tokens_per_param']:g} tokens per parameter and the others the tokens the same FLOPs buy "
              "(rounded up to whole steps). Learning rates "
              f"{', '.join(f'{lr:g}' for lr in plan['race_lrs'])}, chosen per strategy on validation loss; seeds "
              f"{', '.join(map(str, plan['race_seeds']))}.", "",
              "| strategy | model | params | tokens | tokens/param | FLOPs (own) | 6·N·D | lr | val loss | test loss |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for e in race["entries"]:
        if e["diverged"]:
            lines.append(f"| {e['strategy']} | {e['name']} | every learning rate diverged | | | | | | | |")
            continue
        sd = f" ± {e['val_sd']:.4f}" if e["val_sd"] is not None else ""
        lines.append(f"| {e['strategy']} | {e['name']} | {e['params']:,} | {e['tokens']:,} | {e['tokens_per_param']:.1f} | "
                     f"{e['flops']:.4g} | {e['flops_6nd']:.4g} | {e['lr']:g} | {e['val_mean']:.4f}{sd} | "
                     f"{e['test_mean']:.4f} |")
    margin = race["margin_val"]
    sds = [e["val_sd"] for e in race["entries"] if not e["diverged"] and e["val_sd"] is not None]
    lines += ["", f"**Winner by validation loss: {race['winner_val']}**"
              + (f" (by {margin:.4f} nats over the runner-up" + (f"; seed SD up to {max(sds):.4f}" if sds else
                                                                 "; one seed, so no seed spread") + ")"
                 if margin is not None else "")
              + f"; by test loss: {race['winner_test']}.", ""]
    nb = notebook_race_counted()
    lines += ["For comparison, the notebook's own race counted the same way (its architectures, vocab 400, "
              "4 × 24 tokens per step):", "", "| strategy | params | steps | tokens/param | FLOPs (own formula) |",
              "|---|---:|---:|---:|---:|"]
    for r in nb:
        lines.append(f"| {r['strategy']} | {r['params']:,} | {r['steps']} | {r['tokens_per_param']:.3f} | "
                     f"{r['flops']:.3g} |")
    ratio = max(r["flops"] for r in nb) / min(r["flops"] for r in nb)
    lines += ["", f"Its budgets differ by {ratio:.1f}×, it trains on random tokens (no strategy can learn anything) "
              "and it compares training losses: no allocation can be judged that way.", "",
              f"![race]({figures['race']})", "",
              "## 2. IsoFLOP sweep: Approaches 1, 2 and 3", "",
              f"Budgets {', '.join(f'{c:.1e}' for c in plan['budgets'])} FLOPs (C = 6·N·D, N total parameters: the "
              f"convention of the fits and of Hoffmann et al.) × sizes {', '.join(plan['sizes'])}, learning rates "
              f"{', '.join(f'{lr:g}' for lr in plan['lrs'])} (chosen per point on validation loss), seeds "
              f"{', '.join(map(str, plan['seeds']))}; test loss is fitted. Approach 2 uses the grid; Approaches 1 and 3 "
              "use every run (the grid and the race: end-of-schedule points of several lengths per size). An exponent "
              f"counts as identified when its 95% interval is narrower than {IDENTIFIED_MAX_CI_WIDTH} (Approaches 1 and "
              "2: t-interval of the log-log regression over budgets; Approach 3: bootstrap).", "",
              "| approach | a (N_opt ∝ C^a) [95%] | b (D_opt ∝ C^b) [95%] | Hoffmann et al. a / b | R² (log) | at this scale |",
              "|---|---|---|---|---:|---|"]
    for i in (1, 2, 3):
        f = objs.get(f"approach{i}")
        ref = f"{HOFFMANN_A[i]:.2f} / {1 - HOFFMANN_A[i]:.2f}"
        if f is None:
            lines.append(f"| {i} | — | — | {ref} | — | **not identified**: {fits[f'approach{i}']['error']} |")
        else:
            verdict = "identified" if fits[f"approach{i}"]["identified"] else "**not identified** (interval too wide or missing)"
            lines.append(f"| {i} | {est(f.a)} | {est(f.b)} | {ref} | {f.r2_log:.4f} | {verdict} |")
    a3 = objs.get("approach3")
    if a3 is not None:
        lines += ["", f"Approach 3: L(N, D) = E + A/N^α + B/D^β with E = {est(a3.E)}, A = {est(a3.A)}, "
                  f"B = {est(a3.B)}, α = {est(a3.alpha)}, β = {est(a3.beta)}, G = {est(a3.G)} "
                  f"({a3.n} runs, {a3.n_bootstrap} bootstrap refits; Hoffmann et al.: α 0.3392, β 0.2849)."]
    lines += ["", "### Allocation for budgets 1e18…1e21 FLOPs", "",
              "| budget (FLOPs) | rule: N = (C/120)^½ | rule: D = 20·N | Approach 1: N_opt | Approach 2: N_opt | "
              "Approach 3: N_opt [95%] | Approach 3: D_opt | |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    max_c = max(6.0 * r["params"] * r["tokens"] for r in rows)
    a1 = objs.get("approach1")
    for row in allocation_rows(fits, max_c, plan["budgets"]):
        lo, hi = row["a3_params_ci"]
        n1 = float(a1.n_opt(row["compute"])) if a1 is not None else float("nan")
        flag = (f"**extrapolation: {row['decades_beyond_data']:.1f} decades beyond the data**"
                if row["extrapolated"] else "within the data")
        lines.append(f"| {row['compute']:.1e} | {row['rule_params']:.3g} | {row['rule_tokens']:.3g} | {n1:.3g} | "
                     f"{row['a2_params']:.3g} | {row['a3_params']:.3g} [{lo:.3g}, {hi:.3g}] | {row['a3_tokens']:.3g} | "
                     f"{flag} |")
    far = [math.log10(c / max_c) for c in (1e18, 1e21)]
    lines += ["", f"The largest run here used {max_c:.2g} FLOPs (6·N·D): the 1e18–1e21 rows extrapolate the fitted "
              f"laws {far[0]:.1f} to {far[1]:.1f} decades, from byte-level models of 10^4–10^5 parameters. Read them as what these "
              "small-scale laws imply, not as predictions; the rule of thumb's row is Hoffmann et al.'s large-scale "
              "result, not something measured here.", ""]
    lines += [f"![{k}]({figures[k]})\n" for k in ("isoflops", "allocation", "contours") if k in figures]
    if fits["warnings"]:
        lines += ["### Warnings raised by the fits", ""] + [f"- {w}" for w in fits["warnings"]] + [""]
    lines += ["## Files", "", "`results.jsonl` (every trained model; `part` = `race` or `isoflop`), `fits.json` "
              "(the race summary and every fitted law), the PNG figures above, `race/` and `isoflop/` (the sweeps: "
              "rows, plans, settings; rerunning the same command resumes them).", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    args, mode, out = _common.parse_args(__doc__, "chinchilla", argv)  # also prepare_process()
    plan = PLANS[mode]
    t0 = time.perf_counter()
    race_rows, flops = run_race(out, plan, args.mode)
    race = analyse_race(race_rows, flops)
    iso_rows = run_isoflop(out, plan, args.mode)
    fits = fit_approaches(race_rows, iso_rows, plan)
    rows = race_rows + iso_rows
    _common.write_rows(out / "results.jsonl", rows)
    with np.errstate(over="ignore", invalid="ignore"):  # bootstrap curves far outside the data
        figures = write_figures(out, race, fits)
    (out / "fits.json").write_text(json.dumps(
        {"race": {**race, "entries": [{k: v for k, v in e.items() if k != "curves"} for e in race["entries"]]},
         **{k: v for k, v in fits.items() if k != "_objects"}}, indent=2, default=float))
    report = write_report(out, mode, plan, race, fits, rows, figures,
                          command=_common.command_line("chinchilla.py", argv), wall_seconds=time.perf_counter() - t0)
    for e in race["entries"]:
        if not e["diverged"]:
            _common.log(f"race: {e['strategy']:<20} {e['name']:<10} {e['tokens_per_param']:6.1f} tokens/param  "
                        f"val {e['val_mean']:.4f}  test {e['test_mean']:.4f}")
    _common.log(f"race winner (validation): {race['winner_val']}; (test): {race['winner_test']}")
    for i in (1, 2, 3):
        f = fits["_objects"].get(f"approach{i}")
        _common.log(f"Approach {i}: " + (f"a = {f.a}, b = {f.b} (Hoffmann a = {HOFFMANN_A[i]:.2f})"
                                          + ("" if fits[f"approach{i}"]["identified"] else "; not identified")
                                          if f is not None else f"not identified ({fits[f'approach{i}']['error']})"))
    _common.log(f"wrote {report}, {out / 'results.jsonl'}, {out / 'fits.json'} and {len(figures)} figures "
                f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
