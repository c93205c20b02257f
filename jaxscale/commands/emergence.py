"""``jaxscale emergence``: emergence studies.

Two modes share the command:

* ``jaxscale emergence analyze TABLE.csv`` — published scores by model size (a ``params`` column,
  one column per benchmark, scores in [0, 1]): the interpolated threshold crossing per benchmark,
  the logistic/Gompertz fits and, with ``--n-items``, the verdict of a trained study (the same
  rise test against ``--chance``).
* ``jaxscale emergence --task NAME --family NAME --seeds … --out DIR`` trains the family (fitted
  to the task's vocabulary and row length) on the task as stacks, evaluates every model per
  example and analyses every metric against size (``jaxscale.emergence_study``);
  ``--eval-only DIR`` recomputes every metric and the analysis from the saved weights.
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
  jaxscale emergence --task addition --task-arg n_digits=2 --family ladder --sizes l1 l2 l3 l5 \\
      --seeds 0 1 2 --steps 600 --out runs/add          # train, evaluate, analyse
  jaxscale emergence --task induction --family depth --seeds 0 1 2 --epochs 2 --out runs/ind
  jaxscale emergence --eval-only runs/add               # recompute every metric from weights

Train mode writes OUT/study.json, results.jsonl (rows with 'metrics'), outputs/<run_id>.npz
(per-example outputs), weights/, plan.json, analysis.json, summary.md and figures/*.png.

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
    from jaxscale.commands import _common as c

    train = parser.add_argument_group("train mode (train, evaluate and analyse a family on a task)")
    train.add_argument("--task", help="task name: notebook-arithmetic, arithmetic, addition, "
                       "sparse-parity, induction, modular-addition")
    train.add_argument("--task-arg", action="append", metavar="KEY=VALUE", default=None,
                       help="a task knob, repeatable (e.g. n_digits=3, reverse=true, n_test=2000)")
    train.add_argument("--task-seed", type=c.seed, default=0, help="seed the task is generated from")
    train.add_argument("--family", help="model family (`jaxscale families`, or 'depth': 1- vs "
                       "2-layer models); vocabulary and context are fitted to the task")
    train.add_argument("--sizes", nargs="+", default=None, help="sizes of the family (default all)")
    train.add_argument("--seeds", type=c.seed, nargs="+", default=None,
                       help="model seeds, the same for every size (>= 3, default 0 1 2)")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=c.positive_int, help="optimiser steps per model (default 500)")
    budget.add_argument("--epochs", type=c.positive_float, help="epochs over the training items")
    budget.add_argument("--tokens", type=c.positive_float, help="training tokens per model")
    budget.add_argument("--tokens-per-param", type=c.positive_float,
                        help="training tokens per parameter")
    train.add_argument("--lr", type=c.positive_float, default=3e-3, help="peak learning rate (3e-3)")
    train.add_argument("--weight-decay", type=c.non_negative_float, default=0.1, help="AdamW weight decay (0.1)")
    train.add_argument("--batch-size", type=c.positive_int, default=64, help="items per step (64)")
    train.add_argument("--context", type=c.positive_int, default=None,
                       help="model context (default: the task's row length - 1)")
    train.add_argument("--mode", choices=("auto", "stack", "sequential"), default="auto",
                       help="stack planning (default auto: the planner's cost model)")
    c.add_plan_for_arg(train)
    train.add_argument("--threshold", dest="train_threshold", type=float, default=None,
                       help="exact-match level that counts as 'emerged' (default 0.5, or halfway from "
                            "chance to 1 for a task whose guessing reaches 0.5, e.g. 0.75 for sparse-parity)")
    train.add_argument("--scale-axis", choices=("params", "non_embedding_params", "flops"),
                       default="params", help="model size axis of the analysis (default params)")
    train.add_argument("--n-boot", dest="train_n_boot", type=c.non_negative_int, default=1000,
                       help="bootstrap replicates for the intervals (default 1000)")
    train.add_argument("--fit-floor", action="store_true",
                       help="let the sigmoid fits find the lower plateau (small models that score "
                            "above chance by partial competence) instead of holding it at chance; "
                            "with --eval-only it overrides the study's setting")
    train.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    train.add_argument("--out", help="output folder (must not hold a study yet)")
    train.add_argument("--eval-only", metavar="DIR",
                       help="recompute every metric and the analysis from the saved weights in DIR")
    parser.set_defaults(func=run, emergence_command=None)

    sub = parser.add_subparsers(dest="emergence_command", metavar="MODE")
    analyze = sub.add_parser(
        "analyze", help="analyse a CSV of published scores by model size",
        description="Per benchmark: the crossing of --threshold interpolated in log size (after "
                    "isotonic smoothing), logistic and Gompertz fits (midpoint, 10-90%% width), "
                    "BIG-bench breakthroughness and linearity, and with --n-items the verdict "
                    "(no transition, smooth or sharp), whose rise is measured from --chance as "
                    "in a trained study.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    analyze.add_argument("table", metavar="TABLE.csv", help="CSV with a 'params' column")
    analyze.add_argument("--threshold", type=float, default=0.5,
                         help="score that counts as 'emerged' (default 0.5)")
    analyze.add_argument("--chance", type=float, default=0.0,
                         help="chance score, the floor of the fits and the verdict's baseline "
                              "(e.g. 0.25 for 4-way choice)")
    # positive_int, non_negative_int: a bad --n-items or --n-boot was refused only after the
    # parse, in the command's own words (still before the table was read)
    analyze.add_argument("--n-items", type=c.positive_int, default=None,
                         help="test items per benchmark; enables bootstrap intervals and the verdict")
    analyze.add_argument("--n-boot", type=c.non_negative_int, default=1000,
                         help="bootstrap replicates (0: none)")
    analyze.add_argument("--json", action="store_true", help="print machine-readable JSON")
    analyze.add_argument("--plot", metavar="DIR", help="write one figure per benchmark to DIR")
    analyze.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.emergence_command == "analyze":
        return run_analyze(args)
    if args.task or args.eval_only or args.family:
        return run_train(args)
    print("jaxscale emergence: give a mode: `analyze TABLE.csv`, or --task/--family "
          "(see `jaxscale emergence --help`)", file=sys.stderr)
    return 2


def study_spec_from_args(args: argparse.Namespace):
    """The :class:`~jaxscale.emergence_study.StudySpec` of the train-mode arguments; missing or
    bad arguments raise ValueError naming the option."""
    from jaxscale.emergence_study import StudySpec, parse_knobs

    for opt in ("task", "family", "out"):
        if not getattr(args, opt):
            raise ValueError(f"--{opt} is required in train mode (or give --eval-only DIR)")
    budget = {"kind": "steps", "value": 500}
    for kind in ("steps", "epochs", "tokens", "tokens_per_param"):
        if getattr(args, kind) is not None:
            budget = {"kind": kind, "value": getattr(args, kind)}
    spec = StudySpec(
        task=args.task, family=args.family, seeds=tuple(args.seeds or (0, 1, 2)),
        task_seed=args.task_seed, task_knobs=parse_knobs(args.task_arg),
        sizes=tuple(args.sizes) if args.sizes else None, budget=budget, lr=args.lr,
        weight_decay=args.weight_decay, batch_size=args.batch_size, context=args.context,
        mode=args.mode, threshold=0.5 if args.train_threshold is None else args.train_threshold,
        n_boot=args.train_n_boot, scale_axis=args.scale_axis, fit_floor=args.fit_floor)
    return _with_threshold(spec, args.train_threshold)


def _with_threshold(spec, given: float | None):
    """``spec`` with the task's default threshold when ``--threshold`` was not given
    (``emergence_spec.default_threshold``), or checked against the task's chance level by the
    flag's name when it was (the study would refuse it as ``threshold``, before training)."""
    import dataclasses

    from jaxscale.emergence_spec import build_task, check_threshold_above_chance, default_threshold

    task = build_task(spec.task, spec.task_seed, spec.task_knobs)  # its data: ~0.1 s, made again to train
    if given is None:
        return dataclasses.replace(spec, threshold=default_threshold(task, spec.tolerance))
    check_threshold_above_chance(spec, task, "--threshold")
    return spec


def check_token_budget(spec) -> None:
    """Refuse a ``--tokens`` or ``--tokens-per-param`` budget below one optimiser step of the
    study (``--batch-size`` items x the task's training sequence, its row length - 1 tokens),
    before anything is written, as ``sweep`` and ``train`` do (``_common.check_token_budgets``).
    Why: a budget is rounded up to whole steps, so ``--tokens 1`` trained every model on a whole
    step without a word. The task and models are built here for their sizes (cheap: no model is
    initialised); ``run_study`` builds them again."""
    if spec.budget["kind"] not in ("tokens", "tokens_per_param"):
        return
    from jaxscale.commands._common import check_token_budgets
    from jaxscale.emergence_study import prepare

    _, data, specs, _ = prepare(spec)
    cfgs = list({s.cfg.name: s.cfg for s in specs}.values())  # one per size, not per seed
    check_token_budgets([specs[0].budget], cfgs, data.batch_size, data.seq_len)


def run_train(args: argparse.Namespace) -> int:
    """Train-and-analyse (``--task``/``--family``) and ``--eval-only DIR``."""
    from jaxscale.compile_cache import enable_compilation_cache
    from jaxscale.emergence_study import eval_only, run_study

    if args.eval_only:
        if args.task or args.family:
            raise ValueError("--eval-only re-analyses a finished study; do not combine it with "
                             "--task/--family")
        enable_compilation_cache()
        result = eval_only(args.eval_only, figures=not args.no_figures,
                           fit_floor=True if args.fit_floor else None, threshold=args.train_threshold,
                           threshold_flag="--threshold")
        out = args.eval_only
    else:
        spec = study_spec_from_args(args)
        check_token_budget(spec)
        enable_compilation_cache()
        # run_study makes --out once the task and models are built: a study refused for a bad
        # setting (a task knob, a family) left an empty --out behind when the CLI made it first
        result = run_study(spec, args.out, figures=not args.no_figures, plan_for=args.plan_for,
                           out_name="--out")
        out = args.out
    print_result(result)
    print(f"summary: {out}/summary.md")
    return 0


def print_result(result: dict) -> None:
    """A short text digest of an emergence analysis (analysis.json has everything)."""
    print(f"\n{'size':<22}{'params':>10}  {'exact match':>22}  {'token acc':>10}  {'NLL/token':>9}")
    for e in result["sizes"]:
        em = e["exact_match"]
        print(f"{e['name']:<22}{e['scale']:>10,.0f}  {em['mean']:>8.3f}{_fmt_ci((em['lo'], em['hi'])):>14}"
              f"  {e['token_accuracy']['mean']:>10.3f}  {e['answer_nll_per_token']['mean']:>9.3f}")
    s = result["series"]["exact_match"]
    midpoints = _midpoints(s)
    if midpoints:
        print(f"exact match: {midpoints}; crossing of {result['threshold']:g} at "
              f"{_fmt(s['crossing'])}{_fmt_ci(s['crossing_ci'])}")
    if result.get("verdict"):
        from jaxscale.emergence_report import verdict_word

        print(f"verdict: {verdict_word(result['verdict'])}")
    bt = result.get("backtest")
    if bt:
        print(f"backtest: forecast error {_fmt(bt['forecast_error_decades'])} decades, naive "
              f"{_fmt(bt['naive_error_decades'])} decades")


def _midpoints(series: dict) -> str | None:
    """The sigmoid midpoint(s) of one analysed series (``analysis.json``'s ``series.<metric>``),
    chosen as the analysis chose them: the shape with the lower AIC (``best_fit``), or, when the
    logistic and Gompertz AICs are within ``AIC_TIE`` (``best_fit`` null), both, as summary.md
    gives them. None without a fit. Why: the digest gave the logistic midpoint alone, also where
    the Gompertz shape fitted clearly better or the two tied with midpoints several times apart."""
    from jaxscale.fit.emergence.sigmoid import STEP_NOTE
    from jaxscale.fit.emergence.table import AIC_TIE

    def one(kind: str) -> str:
        fit = series[kind]
        flag = (f" (not identified: {fit['reason']})" if not fit["identified"] else
                f" ({STEP_NOTE})" if fit.get("step") else "")
        return f"{kind} midpoint {_fmt(fit['midpoint'])}{_fmt_ci(fit['midpoint_ci'])}{flag}"

    kinds = [k for k in ("logistic", "gompertz") if series.get(k) is not None]
    if not kinds:
        return None
    best, gap = series.get("best_fit"), series.get("delta_aic")
    if best in kinds and len(kinds) == 2:
        return f"{one(best)} (lower AIC by {_fmt(gap)})"
    if best in kinds or len(kinds) == 1:
        return one(best if best in kinds else kinds[0])
    return (f"logistic ≈ gompertz (AIC {_fmt(gap)} apart, within {AIC_TIE:g}: neither shape preferred): "
            + ", ".join(one(k) for k in kinds))


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
    return "" if not all(v is not None and math.isfinite(v) for v in ci) else (
        f" [{_fmt(ci[0])}, {_fmt(ci[1])}]")


def _table_verdict_line(v, note: str) -> str:
    """A score table benchmark's verdict in a line, with the rise it rests on."""
    if v is None:
        return f"verdict: none ({note.removeprefix('no verdict: ')})" if note else "verdict: none"
    from jaxscale.emergence_summary import verdict_word

    base = (f"chance ({v.chance:g}) or the smallest size, whichever is higher" if v.chance > 0
            else "the smallest size")
    return (f"verdict: {verdict_word(v.as_dict())}; largest rise above {base}: {v.em_rise:+.3g}, "
            f"{_fmt(v.em_rise_z)} standard errors (a clear rise takes {v.rise_z:g})")


def run_analyze(args: argparse.Namespace) -> int:
    from jaxscale.fit.emergence import analyze_score_table
    from jaxscale.fit.emergence.sigmoid import STEP_NOTE

    if not 0.0 <= args.chance < 1.0:
        raise ValueError(f"--chance must lie in [0, 1) (the chance score, e.g. 0.25 for 4-way "
                         f"choice), got {args.chance}")
    if not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must lie in (0, 1), got {args.threshold}")
    if args.threshold <= args.chance:  # every score at chance would count as emerged
        raise ValueError(f"--threshold {args.threshold:g} must lie above --chance {args.chance:g} (the "
                         f"score of guessing): a crossing at or below chance marks no ability")
    if args.plot:  # before the fits: a bad folder costs nothing; made only once a figure is drawn,
        # or a table that failed to load left it behind empty
        from jaxscale.folders import check_output_folder
        check_output_folder(args.plot, "--plot")
    report = analyze_score_table(args.table, args.threshold, chance=args.chance,
                                 n_items=args.n_items, n_boot=args.n_boot)
    figures = []
    if args.plot and report.benchmarks:
        from jaxscale.folders import output_folder
        from jaxscale.plots.emergence import plot_score_table
        figures = plot_score_table(report, output_folder(args.plot, "--plot"))
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
            flag = f"  NOT IDENTIFIED: {f.reason}" if not f.identified else f"  ({STEP_NOTE})" if f.step else ""
            print(f"  {f.kind:<9} midpoint {_fmt(f.midpoint)}{_fmt_ci(f.midpoint_ci)}, "
                  f"10-90% width {abs(f.width):.2f} decades{_fmt_ci(f.width_ci)}, "
                  f"AIC {f.aic:.1f}{flag}")
        print(f"  breakthroughness {b.breakthroughness:.2f}, linearity {b.linearity:.2f}")
        print(f"  {_table_verdict_line(report.verdicts.get(b.name), report.verdict_notes.get(b.name, ''))}")
    for p in figures:
        print(f"wrote {p}")
    return 0
