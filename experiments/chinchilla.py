"""The notebook's Chinchilla "allocation race", made fair, then the IsoFLOP study behind it.

    python experiments/chinchilla.py [--quick | --smoke] [--out DIR] [--mode auto|stack|sequential]

Part 1, the race. The notebook pits three strategies (big and undertrained, small and
overtrained, balanced) against each other on random tokens, with training steps 25 / 100 / 60
(in that order) that spend unequal compute, and judges them by training loss. Here the three strategies are
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
(``JAXSCALE_COMPILATION_CACHE=off``), 66 s with a warm one; the default run took 372 s
(2026-12-04, five learning rates; 161 s with the two it had before), and 634 s on a slow day
with the IsoFLOP extension (l1 at the two smaller budgets: 20 more models, planned at 28 s).

Writes into OUT: results.jsonl (every trained model; field ``part`` is ``race`` or
``isoflop``), fits.json, race.png, isoflops.png, allocation.png, contours.png, report.md;
race/ and isoflop/ hold the resumable sweeps (isoflop-ext1/, ... the sizes added where a budget's
lowest validation loss was an end of its sizes: ``jaxscale/isoflop_grid.py``).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _chinchilla_plots import plot_race, write_figures  # noqa: E402
from _chinchilla_report import write_report  # noqa: E402
from _chinchilla_setup import HOFFMANN_A, PLANS, SEQ_LEN, STRATEGIES, notebook_race_counted  # noqa: E402

# The settings, the figures and the report live in sibling modules (_chinchilla_*.py); every name
# this script defined before the split stays reachable here (``module.write_report`` ...).
__all__ = [
    "HOFFMANN_A", "PLANS", "SEQ_LEN", "STRATEGIES", "notebook_race_counted",
    "plot_race", "write_figures", "write_report",
    "race_budget", "run_race", "analyse_race", "run_isoflop", "fit_approaches", "main",
]


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


# ----- part 2: the IsoFLOP sweep and the three approaches ----------------------------------------

def run_isoflop(out: Path, plan: dict, mode: str) -> list:
    """Budgets × sizes (D = C / (6·N_total), as ``study.isoflop_specs``) × learning rates × seeds."""
    from jaxscale.config import create_model_config
    from jaxscale.runner import ModelSpec
    from jaxscale.sweep import run_sweep
    from jaxscale.train import Budget, OptimConfig

    from jaxscale.isoflop_grid import family_order, sizes_beyond

    data, settings = _data(plan)

    def point(c, name):
        cfg = create_model_config(name)
        tokens = c / (6.0 * cfg.param_counts().total)
        return [ModelSpec(cfg, seed, OptimConfig(lr=lr), Budget("tokens", tokens))
                for lr in plan["lrs"] for seed in plan["seeds"]]

    specs = [s for c in plan["budgets"] for size in plan["sizes"] for s in point(c, f"ladder/{size}")]
    _common.log(f"part 2: IsoFLOP grid, {len(plan['budgets'])} budgets × {len(plan['sizes'])} sizes × "
                f"{len(plan['lrs'])} learning rates × {len(plan['seeds'])} seed(s)")
    record = {"experiment": "chinchilla-isoflop", "plan": plan}
    rows = run_sweep(specs, data, settings, mode=mode, out=out / "isoflop", save_weights=False, record=record).rows
    order = family_order("ladder")
    for round_ in range(1, plan.get("isoflop_extend_rounds", 0) + 1):
        beyond = sizes_beyond(rows, plan["budgets"], order)
        if not beyond:
            break
        _common.log(f"part 2, sizes beyond the grid (round {round_}): "
                    + ", ".join(f"{name.split('/')[-1]} at {c:.1e}" for c, name in beyond))
        specs = [s for c, name in beyond for s in point(c, name)]
        rows = rows + run_sweep(specs, data, settings, mode=mode, out=out / f"isoflop-ext{round_}",
                                save_weights=False, record=record).rows
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
    from jaxscale.results import strict_json

    (out / "fits.json").write_text(strict_json(  # a non-finite bound is written null
        {"race": {**race, "entries": [{k: v for k, v in e.items() if k != "curves"} for e in race["entries"]]},
         **{k: v for k, v in fits.items() if k != "_objects"}}))
    report = write_report(out, mode, plan, race, fits, rows, figures,
                          command=_common.command_line("chinchilla.py", argv), wall_seconds=time.perf_counter() - t0)
    for e in race["entries"]:
        if not e["diverged"]:
            _common.log(f"race: {e['strategy']:<20} {e['name']:<10} {e['tokens_per_param']:6.1f} tokens/param  "
                        f"val {e['val_mean']:.4f}  test {e['test_mean']:.4f}")
    _common.log(f"race, lowest validation loss: {race['winner_val']}; lowest test loss: {race['winner_test']}")
    for i in (1, 2, 3):
        f = fits["_objects"].get(f"approach{i}")
        _common.log(f"Approach {i}: " + (f"a = {f.a}, b = {f.b} (Hoffmann a = {HOFFMANN_A[i]:.2f})"
                                          + ("" if fits[f"approach{i}"]["identified"] else "; not identified")
                                          if f is not None else f"not identified ({fits[f'approach{i}']['error']})"))
    _common.log(f"wrote {report}, {out / 'results.jsonl'}, {out / 'fits.json'} and {len(figures)} figures "
                f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    from jaxscale.host import preload_allocator_or_exit

    preload_allocator_or_exit("chinchilla.py")  # restarts with jemalloc preloaded where installed (jaxscale/host.py)
    sys.exit(main())
