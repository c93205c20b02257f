"""``jaxscale sweep``: a family or explicit sizes × seeds × learning rates × budgets, planned into
stacks, or one of the notebook's workloads as a preset."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from jaxscale.commands import _common as c

EXAMPLES = """examples:
  jaxscale sweep --family ladder --sizes l1 l2 l3 --seeds 0 1 --lrs 1e-3 3e-3 --tokens-per-param 20 --out runs/s1
  jaxscale sweep --family ladder --sizes l1 l3 --tokens 2e5 4e5 8e5 --select best-lr --out runs/grid
  jaxscale sweep --family notebook-scaling --steps 60 --corpus shakespeare --out runs/nb
  jaxscale sweep --family ladder --sizes l9 l10 l11 --dtype bfloat16 --tokens-per-param 20 --out runs/gpu
  jaxscale sweep --preset notebook-scaling --mode stack --out runs/nb-preset
  jaxscale sweep --preset notebook-emergence --mode sequential --out runs/nb-emergence

Writes OUT/results.jsonl (one row per model, appended as each stack finishes), OUT/plan.json and
OUT/weights/ (orbax; skip with --no-save-weights; load with jaxscale.sweep.load_weights).
"""


def register(sub) -> None:
    p = sub.add_parser("sweep", help="train many models, planned into stacks",
                       description="Train a sweep of models as stacks (jit + vmap), planned by a cost model.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--family", help="model family (jaxscale families)")
    src.add_argument("--preset", choices=("notebook-scaling", "notebook-emergence"),
                     help="the notebook's own workload, exactly as it runs it")
    p.add_argument("--sizes", nargs="+", default=None,
                   help="size names within the family, or the preset's models to run (default: all)")
    p.add_argument("--seeds", nargs="+", type=c.seed, default=[0], help="model seeds (default 0)")
    p.add_argument("--lrs", nargs="+", type=c.positive_float, default=[3e-3], help="peak learning rates (default 3e-3)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                   help="matmul dtype of every model (default: the family's, float32); bfloat16 on GPUs/TPUs "
                        "(parameters, optimiser state and the loss stay float32)")
    c.add_budget_args(p, several=True)
    p.add_argument("--mode", choices=("auto", "stack", "sequential"), default="auto",
                   help="auto: the planner's cost model decides (default); stack: one stack per compatible "
                        "group; sequential: every model alone")
    p.add_argument("--select", choices=("best-lr",), default=None,
                   help="best-lr: report the learning rate with the lowest validation loss per (size, budget)")
    p.add_argument("--no-save-weights", action="store_true", help="do not save final weights")
    p.add_argument("--checkpoint-every", type=c.positive_int, default=None,
                   help="also checkpoint every N steps inside a stack (always: at the end of each stack "
                        "and on SIGINT/SIGTERM)")
    p.add_argument("--resume", action="store_true",
                   help="require an existing sweep in --out to resume (rerunning the same command on the "
                        "same --out resumes anyway)")
    p.add_argument("--compile-ahead", choices=("auto", "on", "off"), default="auto",
                   help="prepare the next group in the background while one trains: auto (default: compile "
                        "there on an accelerator; on a CPU only load programs already compiled on disk), "
                        "on (compile there everywhere), off")
    c.add_lanes_arg(p)
    c.add_plan_for_arg(p)
    p.add_argument("--distributed", action="store_true",
                   help="join a multi-process JAX job (jax.distributed.initialize); see the README")
    c.add_run_args(p)
    # what a preset fixes itself (its models' seeds, learning rates, budgets, data and optimiser):
    # given with --preset, these are refused by name rather than silently ignored
    p.set_defaults(func=run, preset_fixed={dest: p.get_default(dest) for dest in PRESET_FIXED})


PRESET_FIXED = ("seeds", "lrs", "steps", "tokens", "tokens_per_param", "params_basis", "corpus", "batch_size",
                "seq_len", "data_seed", "eval_every", "eval_windows", "weight_decay", "warmup_frac", "clip_norm")


def preset_specs(args, specs):
    """The preset's models, restricted to ``--sizes`` when given; refuses the options a preset fixes."""
    given = [dest for dest, default in args.preset_fixed.items() if getattr(args, dest) != default]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise ValueError(f"{flags}: --preset {args.preset} is the notebook's own workload and fixes these; "
                         f"use --family {args.preset} to choose them")
    if not args.sizes:
        return specs
    from jaxscale.sweep import repeated

    if repeated(args.sizes):
        raise ValueError(f"--sizes: given more than once: {repeated(args.sizes)}")
    by_size = {s.cfg.name.split("/", 1)[-1]: s for s in specs}
    missing = [s for s in args.sizes if s not in by_size]
    if missing:
        raise ValueError(f"--sizes: {missing} not in --preset {args.preset}; its sizes are {list(by_size)}")
    return [by_size[s] for s in args.sizes]


def resume_command(args, out: Path) -> str:
    """The command line that resumes this sweep: the one given, with ``--out <out>`` added when it
    had none (without it, each run makes a new ``runs/sweep-<time>-<pid>`` folder, so the same
    command would start a fresh sweep)."""
    argv = list(sys.argv)
    if args.out is None:
        argv += ["--out", str(out)]
    return shlex.join(argv)


def run(args) -> int:
    from jaxscale.compile_cache import enable_compilation_cache
    from jaxscale.config import create_model_config, family_configs
    from jaxscale.data.corpus import load_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.presets import make_preset
    from jaxscale.results import write_rows
    from jaxscale.sweep import expand, run_sweep, select_best_lr

    from jaxscale.devices import maybe_init_distributed
    from jaxscale.runner import Interrupted
    from jaxscale.signals import graceful_stop

    maybe_init_distributed(args.distributed)
    enable_compilation_cache()
    if args.resume and not (args.out and (Path(args.out) / "sweep.json").exists()):
        raise ValueError(f"--resume: no sweep to resume in --out {args.out!r}")
    hook = None
    if args.preset:
        if args.dtype:
            raise ValueError(f"--dtype: a preset is the notebook's own workload (float32); use --family "
                             f"{args.preset} --dtype {args.dtype} for its sizes in {args.dtype}")
        preset = make_preset(args.preset)
        specs, data, settings, hook = preset_specs(args, preset.specs), preset.data, preset.settings, preset.row_hook
        settings = dataclasses.replace(settings, compile_mode=args.compile_mode, batch_shards=args.batch_shards)
        if args.quiet:  # --quiet: no progress line, for a preset too
            settings = dataclasses.replace(settings, progress=False)
        else:
            print(f"preset {args.preset}: {len(specs)} models, the notebook's own workload")
    else:
        cfgs = family_configs(args.family)
        if args.sizes:
            cfgs = [create_model_config(f"{args.family}/{s}") for s in args.sizes]
        if args.dtype:
            cfgs = [dataclasses.replace(cf, dtype=args.dtype) for cf in cfgs]
        budgets = c.budgets_from_args(args, default_steps=200)
        specs = expand(cfgs, seeds=args.seeds, lrs=args.lrs, budgets=budgets, optim=c.optim_config(args, args.lrs[0]))
        settings = c.run_settings(args)
        context = min(cf.max_seq_len for cf in cfgs)
        if args.seq_len is not None and args.seq_len > context:
            # refused here, before --out is made: found only by the first group's training, it
            # came after sweep.json recorded it (``run_sweep`` now replaces the settings of a
            # sweep that trained nothing, but a bad value should cost nothing at all)
            raise ValueError(f"--seq-len: {args.seq_len} tokens is longer than the models' context "
                             f"({context} tokens{' for the smallest of --sizes' if len(cfgs) > 1 else ''}); "
                             f"give --seq-len {context} or less, or leave it out (default: the context)")
        seq_len = args.seq_len or context
        c.check_token_budgets(budgets, cfgs, args.batch_size, seq_len)
        data = from_corpus(load_corpus(args.corpus, vocab_size=cfgs[0].vocab_size), seq_len=seq_len,
                           batch_size=args.batch_size, eval_max_windows=args.eval_windows,
                           vocab_size=max(cf.vocab_size for cf in cfgs))
    c.check_batch_shards(args, data.batch_size)
    out = c.out_dir(args, "sweep", make=False)  # checked; made by run_sweep once the plan's mesh is
    settings = dataclasses.replace(settings, compile_ahead={"auto": "auto", "on": True, "off": False}[args.compile_ahead])
    record = {k: v for k, v in vars(args).items()
              if k not in ("func", "command", "out", "quiet", "resume", "checkpoint_every", "distributed",
                           "compile_mode", "compile_ahead", "preset_fixed", "lanes", "plan_for")}
    with graceful_stop() as stop:
        try:
            result = run_sweep(specs, data, settings, mode=args.mode, out=out,
                               save_weights=not args.no_save_weights, row_hook=hook,
                               checkpoint_every=args.checkpoint_every, should_stop=stop, record=record,
                               lanes=args.lanes, plan_for=args.plan_for)
        except Interrupted as err:
            print(f"\ninterrupted at step {err.step}; checkpoint saved in {err.checkpoint}.\n"
                  f"resume with the same command: {resume_command(args, out)}", file=sys.stderr)
            return stop.exit_code
    print()
    for row in result.rows:
        extra = ""
        tm = row.get("metrics", {}).get("tolerance_match")
        if tm is not None:  # MetricTable.as_dict is flat: the rate itself (older rows: {"rate": ...})
            extra = f" | ±2 accuracy {tm['rate'] if isinstance(tm, dict) else tm:.3f}"
        print(c.summary_line(row) + extra)
    if args.select == "best-lr":
        chosen = select_best_lr(result.rows)
        # replaced, not appended to: the selection is recomputed from every row at each run, so a
        # rerun or resume appended the same selection again
        write_rows(out / "selected.jsonl", [{"run_id": r["run_id"], "name": r["name"], "lr": r["lr"],
                                              "seed": r["seed"], "budget": r["budget"], "val_loss": r["val_loss"],
                                              "test_loss": r["test_loss"]} for r in chosen])
        print("\nbest learning rate per (size, budget), by validation loss (seed mean):")
        seen = set()
        for r in chosen:
            key = (r["name"], r["tokens"])
            if key not in seen:
                seen.add(key)
                print(f"  {r['name']:<26} tokens {r['tokens']:>12,}  lr {r['lr']:g}")
        from jaxscale.lr_grid import lr_edge_note

        if note := lr_edge_note(result.rows):
            print(note)
    print(f"\nwrote {out / 'results.jsonl'} ({len(result.rows)} rows), {out / 'plan.json'}")
    return 0
