"""The Chinchilla experiment's report (report.md): the race's table, the three approaches'
exponents and the allocation table for 1e18…1e21 FLOPs.

Split out of ``experiments/chinchilla.py`` (which re-exports every name here) so that the
report's text and tables read apart from the training and fitting. Imported by ``chinchilla.py``
after it has put this folder on ``sys.path`` (which ``import _common`` here relies on too).
"""

from __future__ import annotations

import math
from pathlib import Path

import _common
from _chinchilla_setup import HOFFMANN_A, SEQ_LEN, notebook_race_counted

from jaxscale.study import IDENTIFIED_MAX_CI_WIDTH


def write_report(out: Path, mode: str, plan: dict, race: dict, fits: dict, rows: list, figures: dict, *,
                 command: str, wall_seconds: float) -> Path:
    from jaxscale.isoflop_grid import family_order, isoflop_extension_note
    from jaxscale.lr_grid import lr_edge_note
    from jaxscale.report import allocation_rows, floor_note, identified_mark, not_identified_note

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
    race_note, iso_note = (lr_edge_note([r for r in rows if r.get("part") == part]) for part in ("race", "isoflop"))
    size_note = isoflop_extension_note([r for r in rows if r.get("part") == "isoflop"], plan["budgets"],
                                       family_order("ladder"), plan["sizes"])
    lines += ["", race_note] if race_note else []
    lines += ["", race_headline(race, len(plan["race_seeds"])), ""]
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
              *([iso_note, ""] if iso_note else []),
              *([size_note, ""] if size_note else []),
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
        note = floor_note([("Approach 3", "E", a3.E, a3.floor_identified)])
        lines += ["", note] if note else []
    lines += ["", "### Allocation for budgets 1e18…1e21 FLOPs", "",
              "| budget (FLOPs) | rule: N = (C/120)^½ | rule: D = 20·N | Approach 1: N_opt | Approach 2: N_opt | "
              "Approach 3: N_opt [95%] | Approach 3: D_opt | |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    max_c = max(6.0 * r["params"] * r["tokens"] for r in rows)
    a1 = objs.get("approach1")
    m1, m2, m3 = (identified_mark(fits, i) for i in (1, 2, 3))
    for row in allocation_rows(fits, max_c, plan["budgets"]):
        lo, hi = row["a3_params_ci"]
        n1 = float(a1.n_opt(row["compute"])) if a1 is not None else float("nan")
        flag = (f"**extrapolation: {row['decades_beyond_data']:.1f} decades beyond the data**"
                if row["extrapolated"] else "within the data")
        lines.append(f"| {row['compute']:.1e} | {row['rule_params']:.3g} | {row['rule_tokens']:.3g} | {n1:.3g}{m1} | "
                     f"{row['a2_params']:.3g}{m2} | {row['a3_params']:.3g}{m3} [{lo:.3g}, {hi:.3g}] | "
                     f"{row['a3_tokens']:.3g}{m3} | {flag} |")
    footnote = not_identified_note(fits)
    lines += ["", footnote] if footnote else []
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


def race_headline(race: dict, n_seeds: int) -> str:
    """The race's verdict on validation loss. A lead smaller than twice the standard error of the
    difference between the two best strategies' seed means (sqrt(sd₁²/n + sd₂²/n)) is reported as
    no clear winner: the full run's balanced model led by 0.013 nats against a seed SD of 0.022,
    and a headline "winner" there says more than the seeds do."""
    margin = race["margin_val"]
    ranked = sorted((e for e in race["entries"] if not e["diverged"]), key=lambda e: e["val_mean"])
    tail = f"; by test loss: {race['winner_test']}."
    if margin is None or len(ranked) < 2:
        return f"**Winner by validation loss: {race['winner_val']}**{tail}"
    sds = [e["val_sd"] for e in ranked[:2]]
    if n_seeds < 2 or any(sd is None or not math.isfinite(sd) for sd in sds):
        return (f"**Winner by validation loss: {race['winner_val']}** (by {margin:.4f} nats over the runner-up; "
                f"one seed, so no noise estimate){tail}")
    two_se = 2 * math.sqrt(sum(sd ** 2 for sd in sds) / n_seeds)
    if margin < two_se:
        return (f"**No clear winner by validation loss**: {race['winner_val']} leads {ranked[1]['strategy']} by "
                f"{margin:.4f} nats, within twice the standard error of the difference of their seed means "
                f"({two_se:.4f}; {n_seeds} seeds){tail}")
    return (f"**Winner by validation loss: {race['winner_val']}** (by {margin:.4f} nats over "
            f"{ranked[1]['strategy']}, more than twice the standard error of the difference, {two_se:.4f}){tail}")
