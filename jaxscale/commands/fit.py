"""``jaxscale fit``: fit scaling laws to a result-row file or a CSV.

Sub-commands ``power-law`` (L = A·N^-α + B, or L = E + k·C^-γ with ``--against compute``) and
``chinchilla`` (Hoffmann et al.'s Approaches 1, 2 and 3).
"""

from __future__ import annotations

import argparse
import sys

from jaxscale.commands._common import non_negative_int, positive_float

EXAMPLES = """examples:
  jaxscale fit power-law results/sweep.jsonl              # L(N) on non-embedding params
  jaxscale fit power-law results/sweep.jsonl --x params   # ... on total params
  jaxscale fit power-law runs.csv --against compute --json
  jaxscale fit chinchilla runs.csv --approach 3 --bootstrap 1000 --drop-highest 5
  jaxscale fit chinchilla results/sweep.jsonl --approach all --json > fit.json
  jaxscale allocate --compute 1e21 --fit fit.json          # use the fitted law

SOURCE is a result-row file (JSON Lines written by `jaxscale sweep`) or a CSV with columns
N (or params, Model Size), loss, and D (or tokens) or C (or Training FLOP; then D = C/(6N)).
From result rows: x = non_embedding_params (--x params for total), y = test_loss, the best
learning rate per (size, budget) by val_loss, seeds averaged (the bootstrap resamples them),
diverged rows dropped with a warning. From a CSV: its one size column, or the column --x names
when it has both params and non_embedding_params.
Approach 2 groups IsoFLOP runs by their planned budget, C = 6*N_total*D (result rows), or the
C column (CSV); by 6*N*D only when neither is there.

--json prints one object per law, tagged "power_law", "approach1", "approach2", "approach3";
each parameter is a number or {"value": v, "ci95": [lo, hi], "se": s}.
"""

PL_EXAMPLES = """examples:
  jaxscale fit power-law results/sweep.jsonl
  jaxscale fit power-law runs.csv --bootstrap 500 --holdout 2 --plot figures/
  jaxscale fit power-law runs.csv --against compute --json
"""

CH_EXAMPLES = """examples:
  jaxscale fit chinchilla runs.csv                       # Approach 3, no intervals
  jaxscale fit chinchilla runs.csv --bootstrap 1000      # with 95% bootstrap intervals
  jaxscale fit chinchilla runs.csv --approach all --json --plot figures/
  jaxscale fit chinchilla chinchilla.csv --drop-highest 5   # Besiroglu et al.'s filter
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE", help="result-row file (.jsonl) or CSV")
    # default None: result rows then use non_embedding_params, a CSV its one size column; a CSV
    # has --x honoured (it was ignored: the fit ran on the CSV's column, reported as --x's)
    p.add_argument("--x", choices=("non_embedding_params", "params"), default=None,
                   help="size measure: the result-row field (default: non_embedding_params), or the "
                        "CSV column to read (default: its one size column; needed when it has both)")
    # non_negative_int: a negative B was refused only by the fit, after the data were read, in
    # words that named no option ("bootstrap: must be >= 0"); 0 means no bootstrap
    p.add_argument("--bootstrap", type=non_negative_int, default=None, metavar="B",
                   help="bootstrap resamples for 95%% intervals (0: none)")
    # non_negative_int: a negative seed failed only at the bootstrap, in numpy's words ("expected
    # non-negative integer"), after the data were read
    p.add_argument("--seed", type=non_negative_int, default=0, help="bootstrap random seed")
    # non_negative_int: a negative K was refused only after the data were read
    p.add_argument("--drop-highest", type=non_negative_int, default=0, metavar="K",
                   help="drop the K highest-loss points before fitting")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="DIR", help="write PNG figures into DIR")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit power laws and Chinchilla laws to results",
        description="Fit scaling laws to a result-row file or a CSV of runs.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="law", metavar="LAW")
    pl = sub.add_parser(
        "power-law", help="L = A*N^-alpha + B (or E + k*C^-gamma)",
        description="Fit L = A*N^-alpha + B (Huber on log-loss, multi-start L-BFGS, bootstrap "
                    "intervals), backtest on the largest sizes, and the 'k x more parameters' "
                    "table.", epilog=PL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(pl)
    pl.add_argument("--against", choices=("size", "compute"), default="size",
                    help="fit against size N (default) or training compute C")
    # non_negative_int: a negative K meant no backtest, silently (only 0 says that)
    pl.add_argument("--holdout", type=non_negative_int, default=1, metavar="K",
                    help="backtest: refit without the K largest sizes (0: no backtest)")
    # positive_float: inf passed the fit's own "delta: must be > 0" check (0 and nan did not)
    pl.add_argument("--delta", type=positive_float, default=1e-3, help="Huber threshold (log-loss)")
    pl.set_defaults(func=run_power_law)
    ch = sub.add_parser(
        "chinchilla", help="Hoffmann et al.'s Approaches 1, 2, 3",
        description="Fit the Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta (Approach 3), "
                    "and/or N_opt(C), D_opt(C) by the envelope (1) or IsoFLOP parabolas (2).",
        epilog=CH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(ch)
    ch.add_argument("--approach", choices=("1", "2", "3", "all"), default="3",
                    help="which approach (default: %(default)s)")
    ch.set_defaults(func=run_chinchilla)
    p.set_defaults(func=lambda args: _no_law(p))


def _no_law(p) -> int:
    p.print_help()
    return 2


def _load(args):
    from jaxscale.fit.sources import load_source
    data = load_source(args.source, x=args.x)
    return data.drop_highest(args.drop_highest)


def _fmt(est) -> str:
    return str(est)


def _emit(args, payload: dict, lines: list[str]) -> None:
    if args.json:
        # Strict JSON: a non-finite number (an interval reaching inf, an undefined R^2) is null,
        # as result rows write it (``results._jsonable``); json.dumps alone writes bare
        # Infinity/NaN, which strict parsers (jq, JavaScript) reject.
        from jaxscale.results import strict_json
        print(strict_json(payload))
    else:
        print("\n".join(lines))


def run_power_law(args) -> int:
    from jaxscale.fit import power_law as pl
    _check_plot_dir(args)  # before the fit: a bad --plot folder costs nothing
    data = _load(args)
    bootstrap = 200 if args.bootstrap is None else args.bootstrap
    notes = list(data.notes)
    if args.against == "compute":
        x = data.compute
    else:
        data = data.longest_run_per_size()
        notes = list(data.notes)
        x = data.N
    fit = pl.fit_power_law(x, data.loss, delta=args.delta, bootstrap=bootstrap, seed=args.seed,
                           seed_losses=data.seed_losses, labels=data.names, form=args.against)
    improvement = fit.improvement()
    back = None
    if args.holdout > 0:
        try:
            back = pl.backtest_power_law(x, data.loss, holdout=args.holdout, delta=args.delta,
                                         bootstrap=0, form=args.against)
        except ValueError as err:
            notes.append(f"no backtest: {err}")
    out = fit.to_json()
    out["improvement"] = {f"{k:g}x": v for k, v in improvement.items()}
    out["backtest"] = None if back is None else back.to_json()
    payload = {"power_law": out,
               "source": {"path": str(args.source), "n_points": data.n, "x": data.x_kind,
                          "notes": notes}}
    sym = ("k", "gamma", "E") if args.against == "compute" else ("A", "alpha", "B")
    var = "C" if args.against == "compute" else "N"
    lines = [f"power law  L = {sym[0]}*{var}^-{sym[1]} + {sym[2]}   ({fit.n} points, "
             f"x = {data.x_kind if args.against == 'size' else 'training FLOPs'}, "
             f"{fit.n_bootstrap} bootstrap resamples, 95% intervals)"]
    lines += [f"  {nm:<6} {_fmt(e)}" for nm, e in zip(sym, (fit.A, fit.alpha, fit.B))]
    lines.append(f"  R^2 (log loss) {fit.r2_log:.5f}   RMSE (log loss) {fit.rmse_log:.4g}")
    if not fit.decreasing:
        # NoDecreaseWarning went to stderr; the summary says it too, where the numbers are read
        lines.append(f"  note: no scaling law: {sym[1]} = {fit.alpha.value:.4g} (not > 0, or a scale beyond float "
                     f"range): the fitted loss does not fall with {var} over these points; the table below "
                     f"predicts no improvement")
    elif not fit.floor_identified:
        lines.append(f"  note: {_floor_note(sym[2], sym[1] + ' describes')}")
    lines.append(f"  from the largest {var} = {fit.x.max():.3g}:")
    for k, v in improvement.items():
        lines.append(f"    {k:>6g}x {var:<2}-> loss {v['loss']:.4f} ({v['total_pct']:.1f}% lower; "
                     f"reducible part {v['reducible_pct']:.1f}% lower)")
    if back is not None:
        lines.append(f"  backtest (fit without the {back.x_held.size} largest): mean |error| "
                     f"{100 * back.mean_abs_rel_error:.2f}%")
    lines += [f"  note: {n}" for n in notes]
    if args.plot:
        from jaxscale.plots.power_law import plot_power_law
        path = plot_power_law(fit, _plot_dir(args) / "power_law.png", backtest=back)
        lines.append(f"  figure: {path}")
        payload["figures"] = [str(path)]
    _emit(args, payload, lines)
    return 0


def _check_plot_dir(args) -> None:
    """Refuse a ``--plot`` path that cannot be a folder, before anything is read; the folder is
    made only when a figure is written (``_plot_dir``): made here, it was left behind empty
    when the source then failed to load (``fit power-law missing.csv --plot figs``)."""
    if args.plot:
        from jaxscale.folders import check_output_folder
        check_output_folder(args.plot, "--plot")


def _plot_dir(args):
    """The ``--plot`` folder, made, as its first figure is about to be written."""
    from jaxscale.folders import output_folder
    return output_folder(args.plot, "--plot")


def run_chinchilla(args) -> int:
    from jaxscale.fit import chinchilla as ch
    _check_plot_dir(args)  # before the fit: a bad --plot folder costs nothing
    data = _load(args)
    if data.D is None:
        raise ValueError(f"{args.source}: Chinchilla fits need tokens (a D/tokens column) or "
                         f"compute (a C/Training FLOP column)")
    bootstrap = 0 if args.bootstrap is None else args.bootstrap
    approaches = ("1", "2", "3") if args.approach == "all" else (args.approach,)
    payload, lines, fits, figures = {}, [], {}, []
    for ap in approaches:
        try:
            if ap == "3":
                fit = ch.fit_approach3(data.N, data.D, data.loss, bootstrap=bootstrap,
                                       seed=args.seed, seed_losses=data.seed_losses)
            elif ap == "2":
                # grouped by the planned budget where the source records one: the study's IsoFLOP
                # runs have D = C/(6*N_total), so 6*N*D with non-embedding N split every budget
                fit = ch.fit_approach2(data.N, data.D, data.loss, compute=data.budget)
            else:
                fit = ch.fit_approach1(data.N, data.D, data.loss, run_id=data.run_ids,
                                       intermediate=data.intermediate)
        except ValueError as err:
            if args.approach != "all":
                raise
            payload[f"approach{ap}"] = {"error": str(err)}
            lines.append(f"Approach {ap}: not fitted ({err})")
            continue
        fits[ap] = fit
        payload[f"approach{ap}"] = fit.to_json()
        lines += _summary(ap, fit)
    payload["source"] = {"path": str(args.source), "n_points": data.n, "x": data.x_kind,
                         "notes": list(data.notes)}
    lines += [f"note: {n}" for n in data.notes]
    if args.plot and fits:
        from jaxscale.plots import chinchilla as chp
        # An Approach-3 law without a frontier has no N_opt(C) to draw.
        drawable = {k: f for k, f in fits.items() if k != "3" or f.has_frontier}
        d = _plot_dir(args) if drawable else None  # every figure needs a drawable fit
        if "2" in fits:
            figures.append(chp.plot_isoflops(fits["2"], data.N, data.D, data.loss,
                                             d / "isoflops.png", labels=data.names))
        if drawable:
            figures.append(chp.plot_optimal_allocation(drawable, d / "optimal_allocation.png"))
        if "3" in fits and fits["3"].has_frontier:
            figures.append(chp.plot_loss_contours(fits["3"], d / "loss_contours.png"))
        payload["figures"] = [str(f) for f in figures]
        lines += [f"figure: {f}" for f in figures]
    _emit(args, payload, lines)
    return 0


def _floor_note(floor: str, exponent: str) -> str:
    """The note printed under a fit whose irreducible term ``floor`` the data do not identify
    (``_optim.floor_identified``); ``exponent``: what then describes the whole loss."""
    from jaxscale.fit._optim import FLOOR_BOUNDARY_FRACTION

    return (f"{floor} is not identified: the fit drives it below {FLOOR_BOUNDARY_FRACTION:.0%} of the smallest loss "
            f"(the loss still falls like a pure power law over these points), so the fit's {exponent} the whole "
            f"loss, not its reducible part, and {floor}'s interval is how large a floor the data still allow")


def _summary(ap: str, fit) -> list[str]:
    if ap == "3":
        out = [f"Approach 3  L(N, D) = E + A/N^alpha + B/D^beta   ({fit.n} points, "
               f"{fit.n_starts} starts, {fit.n_bootstrap} bootstrap resamples, 95% intervals)"]
        for k in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
            out.append(f"  {k:<6} {getattr(fit, k)}")
        out.append(f"  objective (sum of Huber terms) {fit.objective:.6g}   R^2 (log loss) "
                   f"{fit.r2_log:.4f}   RMSE (log loss) {fit.rmse_log:.4g}")
        if not fit.floor_identified:
            out.append(f"  note: {_floor_note('E', 'alpha and beta describe')}")
        if not fit.has_frontier:
            # N_opt(C) needs alpha, beta > 0 and finite A, B; asking the law for it would raise
            # and lose the other approaches' output.
            out.append("  note: no compute-optimal frontier: the fitted law needs alpha, beta > 0 and finite "
                       "A, B for N_opt(C), D_opt(C) to exist; none is reported")
            return out
        out.append("  N_opt(C) = G*(C/6)^a, D_opt(C) = (C/6)^b / G:")
        for c in (1e21, 1e23, 5.76e23, 1e25):
            try:
                out.append(f"    C = {c:.3g}: N_opt = {fit.n_opt(c):.4g}, D_opt = {fit.d_opt(c):.4g}")
            except ValueError as err:  # beyond float range (tiny alpha + beta): say so, keep the rest
                out.append(f"    C = {c:.3g}: {err}")
        return out
    name = "envelope of minimum loss" if ap == "1" else "IsoFLOP parabolas"
    out = [f"Approach {ap} ({name})  N_opt = k_N*C^a, D_opt = k_D*C^b   "
           f"({fit.budgets.size} budgets, 95% intervals)"]
    for k in ("a", "b", "k_N", "k_D"):
        out.append(f"  {k:<4} {getattr(fit, k)}")
    out += [f"  note: {n}" for n in fit.notes]
    return out


if __name__ == "__main__":  # pragma: no cover
    from jaxscale.cli import main
    sys.exit(main(["fit"] + sys.argv[1:]))
