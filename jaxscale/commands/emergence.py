"""``jaxscale emergence``: emergence studies.

Two modes share the command:

* ``jaxscale emergence analyze TABLE.csv`` — published scores by model size (a ``params`` column,
  one column per benchmark, scores in [0, 1]): the interpolated threshold crossing per benchmark
  and the logistic/Gompertz fits. Implemented here.
* ``jaxscale emergence --task NAME --family NAME --seeds … --out DIR`` (train, evaluate, analyse)
  and ``--eval-only DIR`` (recompute every metric from saved weights). The parser accepts them;
  the run is delegated to :func:`run_train`, which the training engine will provide. Until then
  it stops with a clear "not implemented yet" error instead of pretending.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

EPILOG = """examples:
  jaxscale emergence analyze scores.csv                   # crossing of 0.5 + fits per benchmark
  jaxscale emergence analyze scores.csv --threshold 0.6 --chance 0.25 --json
  jaxscale emergence analyze scores.csv --n-items 1000 --plot figures/   # intervals + figures
  jaxscale emergence --task addition --family ladder --seeds 0 1 2 --out runs/add   (coming)
  jaxscale emergence --eval-only runs/add                                          (coming)

TABLE.csv: a 'params' column (model sizes, strictly increasing), one column per benchmark
(scores in [0, 1]; an empty cell = not reported) and optionally a 'name' column, e.g.
  name,params,MMLU,GSM8K
  small,1.35e8,0.25,0.10
  large,7e9,0.68,0.75
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "emergence", help="emergence: train-and-analyse a task, or analyse a score table",
        description="Locate emergent abilities: threshold crossings, sigmoid fits with intervals, "
                    "metric comparisons and forecasts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train = parser.add_argument_group("train mode (train, evaluate and analyse a family on a task)")
    train.add_argument("--task", help="task name (see jaxscale.data.tasks.task_names())")
    train.add_argument("--family", help="model family name (see `jaxscale families`)")
    train.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds per size (>= 3)")
    train.add_argument("--out", help="output directory for rows, outputs, summary and figures")
    train.add_argument("--eval-only", metavar="DIR",
                       help="recompute every metric from the saved weights in DIR")
    parser.set_defaults(func=run, emergence_command=None)

    sub = parser.add_subparsers(dest="emergence_command", metavar="MODE")
    analyze = sub.add_parser(
        "analyze", help="analyse a CSV of published scores by model size",
        description="Per benchmark: the crossing of --threshold interpolated in log size (after "
                    "isotonic smoothing), logistic and Gompertz fits (midpoint, 10-90%% width), "
                    "BIG-bench breakthroughness and linearity.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("table", metavar="TABLE.csv", help="CSV with a 'params' column")
    analyze.add_argument("--threshold", type=float, default=0.5,
                         help="score that counts as 'emerged' (default 0.5)")
    analyze.add_argument("--chance", type=float, default=0.0,
                         help="chance score, the floor of the fits (e.g. 0.25 for 4-way choice)")
    analyze.add_argument("--n-items", type=int, default=None,
                         help="test items per benchmark; enables bootstrap intervals")
    analyze.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    analyze.add_argument("--json", action="store_true", help="print machine-readable JSON")
    analyze.add_argument("--plot", metavar="DIR", help="write one figure per benchmark to DIR")
    analyze.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.emergence_command == "analyze":
        return run_analyze(args)
    if args.task or args.eval_only or args.family:
        try:
            return run_train(args)
        except NotImplementedError as err:
            print(f"jaxscale emergence: error: {err}", file=sys.stderr)
            return 2
    print("jaxscale emergence: give a mode: `analyze TABLE.csv`, or --task/--family "
          "(see `jaxscale emergence --help`)", file=sys.stderr)
    return 2


def run_train(args: argparse.Namespace) -> int:
    """Train-and-analyse and --eval-only modes: provided by the training engine (not yet)."""
    raise NotImplementedError(
        "train mode (--task/--family/--seeds/--out) and --eval-only are not implemented yet; "
        "`jaxscale emergence analyze TABLE.csv` works today")


def _clean(value):
    """JSON-safe: NaN/inf become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _fmt_ci(ci) -> str:
    return "" if not all(math.isfinite(v) for v in ci) else f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def run_analyze(args: argparse.Namespace) -> int:
    from jaxscale.fit.emergence import analyze_score_table

    if args.n_boot < 0:
        raise ValueError(f"--n-boot must be >= 0, got {args.n_boot}")
    report = analyze_score_table(args.table, args.threshold, chance=args.chance,
                                 n_items=args.n_items, n_boot=args.n_boot)
    figures = []
    if args.plot:
        from jaxscale.plots.emergence import plot_score_table
        figures = plot_score_table(report, args.plot)
    if args.json:
        out = _clean(report.as_dict())
        out["figures"] = [str(p) for p in figures]
        print(json.dumps(out, indent=2, allow_nan=False))
        return 0
    print(f"threshold {args.threshold:g}; crossing interpolated in log10(params) after isotonic "
          "smoothing; midpoints from binomial fits")
    for b in report.benchmarks:
        c = b.crossing
        where = _fmt(c.scale) + _fmt_ci(c.ci) if c.identified else f"none ({c.status})"
        print(f"\n{b.name}: crossing at params = {where}")
        for f in (b.logistic, b.gompertz):
            if f is None:
                print("  fits: need at least 3 sizes")
                break
            flag = "" if f.identified else f"  NOT IDENTIFIED: {f.reason}"
            print(f"  {f.kind:<9} midpoint {_fmt(f.midpoint)}{_fmt_ci(f.midpoint_ci)}, "
                  f"10-90% width {abs(f.width):.2f} decades{_fmt_ci(f.width_ci)}, "
                  f"AIC {f.aic:.1f}{flag}")
        print(f"  breakthroughness {b.breakthroughness:.2f}, linearity {b.linearity:.2f}")
    for p in figures:
        print(f"wrote {p}")
    return 0
