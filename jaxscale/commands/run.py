"""``jaxscale run``: the main job, the default study end to end on the built-in corpus.

Sweeps the byte-level ladder (learning-rate grid and seeds inside each stack) at ~20 tokens per
parameter, fits the power law on test loss against non-embedding and total parameters with a
backtest, runs an IsoFLOP grid and fits Chinchilla Approaches 1-3, and writes ``results.jsonl``,
``fits.json``, the figures and ``report.md`` into one folder. Rerunning it resumes the newest
unfinished run under ``./runs/`` (``--fresh`` starts anew).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

from jaxscale.commands import _common as c

EXAMPLES = """examples:
  jaxscale run                    # the default study (CPU: <= 10 minutes), or resume the last unfinished one
  jaxscale run --fresh            # start a new one even if an unfinished run exists
  jaxscale run --scale quick      # a 2-minute version (fewer sizes, shorter budgets)
  jaxscale run --scale gpu --out runs/gpu   # the same study, larger, for an accelerator
  jaxscale run --tokens-per-param 60        # the ladder trained 3x longer: a cleaner power law, ~3x part 1
"""


def register(sub) -> None:
    from jaxscale.study import SCALES

    p = sub.add_parser("run", help="the main job: the default scaling study end to end",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu",
                   help="study size: cpu (default, <= 10 min on 2 cores), quick, smoke, gpu")
    p.add_argument("--out", default=None, help="output folder (default: resume the newest unfinished "
                                               "./runs/run-*, else a new one)")
    p.add_argument("--fresh", action="store_true", help="start a new run instead of resuming")
    p.add_argument("--mode", choices=("auto", "stack", "sequential"), default="auto", help="planner mode")
    p.add_argument("--tokens-per-param", type=c.positive_float, default=None,
                   help="training tokens per parameter of the ladder (part 1; default: the scale's, 20 for "
                        "cpu). Longer training gives the small sizes more than a few hundred steps and a "
                        "cleaner law (README), at proportionally more time")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    c.add_lanes_arg(p)
    c.add_plan_for_arg(p)
    p.set_defaults(func=run)


def study_config(args):
    """The study ``args`` ask for: the scale's, with ``--tokens-per-param`` if given."""
    import dataclasses

    from jaxscale.study import SCALES

    cfg = SCALES[args.scale]
    return cfg if args.tokens_per_param is None else dataclasses.replace(cfg, tokens_per_param=args.tokens_per_param)


def check_study_budget(cfg) -> None:
    """Refuse a ladder budget (``--tokens-per-param``) below one step for some size: it was
    rounded up to one step without a word, and the report then named the budget asked for, not
    the one trained (``_common.check_token_budgets``, as ``sweep`` and ``train`` do)."""
    from jaxscale.config import create_model_config
    from jaxscale.train import Budget

    cfgs = [create_model_config(f"{cfg.family}/{s}") for s in cfg.sizes]
    c.check_token_budgets([Budget("tokens_per_param", cfg.tokens_per_param, cfg.params_basis)], cfgs,
                          cfg.batch_size, cfg.seq_len)


def choose_out(args, cfg) -> tuple[Path, bool]:
    """(folder, resuming): ``--out``, else the newest unfinished run of the same study (unless
    ``--fresh``), else a new ``runs/run-<time>-<scale>[-tpp<R>]``. A ``--out`` folder that is
    neither empty nor a run of this study is refused (``study.holds_run_of``): any existing
    folder was taken for a run to resume, and a sweep's results.jsonl there was overwritten."""
    from jaxscale.study import holds_run_of, newest_unfinished, run_suffix

    if args.out:
        path = Path(args.out)
        resuming = holds_run_of(path, cfg, "--out")
        if resuming and args.fresh:  # it was resumed without a word: --fresh promises a new run
            raise ValueError(f"--fresh starts a new run, but --out {path} holds one of this study (to "
                             f"resume it, drop --fresh; to start anew, give another folder or delete it)")
        return path, resuming
    if not args.fresh:
        previous = newest_unfinished("runs", cfg)
        if previous is not None:
            return previous, True
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"run-{stamp}{run_suffix(cfg)}", False


def run(args) -> int:
    from jaxscale.compile_cache import enable_compilation_cache
    from jaxscale.folders import output_folder
    from jaxscale.report import write_figures, write_report
    from jaxscale.runner import Interrupted
    from jaxscale.signals import graceful_stop
    from jaxscale.study import DONE_MARKER, run_study

    enable_compilation_cache()
    cfg = study_config(args)
    check_study_budget(cfg)  # before a folder is chosen or made
    out, resuming = choose_out(args, cfg)
    output_folder(out, "--out")
    print(f"{'resuming' if resuming else 'starting'} the {cfg.scale} study in {out}")
    t0 = time.perf_counter()
    with graceful_stop() as stop:
        try:
            result = run_study(cfg, out, mode=args.mode, progress=not args.quiet, lanes=args.lanes,
                               plan_for=args.plan_for, should_stop=stop)
        except Interrupted as err:
            print(f"\ninterrupted at step {err.step}; rerun `jaxscale run` (or with --out {out}) to resume",
                  file=sys.stderr)
            return stop.exit_code
    figures = write_figures(out, result.fits, result.ladder_rows)
    command = "jaxscale " + " ".join(sys.argv[1:]) if sys.argv and "jaxscale" in sys.argv[0] else "jaxscale run"
    report = write_report(out, cfg, result.fits, result.ladder_rows, result.isoflop_rows, command=command,
                          wall_seconds=time.perf_counter() - t0, figures=figures)
    (out / DONE_MARKER).write_text(_dt.datetime.now().isoformat())
    _print_summary(result)
    print(f"\nwrote {out / 'results.jsonl'}, {out / 'fits.json'}, {report} and {len(figures)} figures "
          f"({time.perf_counter() - t0:.0f}s)")
    return 0


def _print_summary(result) -> None:
    objs = result.fits["_objects"]
    for key, label in (("power_law_non_embedding", "non-embedding"), ("power_law_total", "total")):
        fit, bt = objs[key]
        print(f"power law vs {label} parameters: L = {fit.A} · N^-({fit.alpha}) + {fit.B}; "
              f"R² (log) {fit.r2_log:.4f}; backtest error {100 * bt.mean_abs_rel_error:.2f}%"
              + ("" if fit.floor_identified else "; the floor B is not identified (see the report)"))
    for i in (1, 2, 3):
        f = objs.get(f"approach{i}")
        if f is None:
            print(f"Approach {i}: not identified ({result.fits[f'approach{i}']['error']})")
        else:
            print(f"Approach {i}: N_opt ∝ C^{f.a}, D_opt ∝ C^{f.b}")
    for w in result.warnings:
        print(f"warning: {w}")
