"""``jaxscale bench``: throughput of a family, explicit sizes or a notebook workload, as one stack,
one after another and as the planner groups them, side by side; optionally against eager PyTorch."""

from __future__ import annotations

import argparse

from jaxscale.commands import _common as c

EXAMPLES = """examples:
  jaxscale bench --family ladder --sizes l3 l6 --batch-size 32
  jaxscale bench --preset notebook-emergence --sizes micro --k 8 --modes stack sequential
  jaxscale bench --d-model 256 --n-layers 4 --seq-len 256 --batch-size 32 --dropout 0 --modes sequential
  jaxscale bench --preset notebook-scaling --vs-torch            # needs pip install -e '.[bench]'
  jaxscale bench --preset notebook-emergence --vs-torch --json > bench.json
  jaxscale bench --family ladder --sizes l4 l8 --batch-size 32 --vs-torch

What it measures (one run, side by side): compile time; steady-state step time (compilation
excluded, synchronised with block_until_ready, --repeats dispatches of --steps-per-dispatch steps,
median with min/max/IQR); tokens/s per model and in total; model FLOP/s summed over the models'
TRUE sizes and MFU = model FLOP/s / (peak x devices), where the peak is the matmul peak measured
on a CPU or the dense bf16/fp32 figure of a known GPU/TPU (jaxscale.bench.PEAK_FLOPS); padded-FLOP
utilisation of each stack; stack vs sequential (vs the planner's auto) with ratios; recompiles
after the first dispatch (must be 0). The compilation cache is off, so compile times are cold.

--json fields: device, devices, peak_flops, peak_source, flop_formula, batch_size, seq_len,
models[] (flops_per_token terms, attention, remat), modes.<mode>.{tokens_per_s, mfu,
model_flops_per_s, step_s, compile_s, per_model[].{tokens_per_s, mfu}, groups[].{tokens_per_s, mfu,
padded_flops_util, step_ms, compile_s, recompiles_after_first, profile (with --profile: ops[].{op,
us_per_step, calls_per_step, share})}}, ratios, recompiles, vs_torch (with --vs-torch).

  jaxscale bench --preset notebook-emergence --sizes large --modes sequential --profile runs/prof
"""


def register(sub) -> None:
    p = sub.add_parser("bench", help="throughput, MFU and stack-vs-sequential benchmark",
                       description="Measure tokens/s, model FLOP utilisation and compile time of models trained as "
                                   "one stack, one after another, and as the planner groups them.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--family", help="model family (jaxscale families)")
    src.add_argument("--preset", choices=("notebook-scaling", "notebook-emergence"),
                     help="a notebook workload: its models, data, batch and optimiser")
    p.add_argument("--sizes", nargs="+", default=None, help="size names within the family or preset (default: all)")
    for name in ("d-model", "n-heads", "n-layers", "d-ff", "context", "vocab-size"):
        p.add_argument(f"--{name}", type=c.positive_int, nargs="+" if name == "d-model" else None, default=None,
                       help=f"explicit config: {name}" + (" (several: one model each)" if name == "d-model" else "")
                       + {"n-heads": " (default d_model/64, at least 1)", "d-ff": " (default 4 x d_model)",
                          "context": " (default --seq-len)", "vocab-size": " (default 256)",
                          "n-layers": " (default 4)"}.get(name, ""))
    p.add_argument("--batch-size", type=c.positive_int, default=None,
                   help="sequences per step (default: the preset's, else 16)")
    p.add_argument("--seq-len", type=c.positive_int, default=None,
                   help="tokens per sequence (default: the preset's, else the context)")
    p.add_argument("--dropout", type=float, default=None, help="dropout rate (default: the config's)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None, help="matmul dtype (default float32)")
    p.add_argument("--k", type=c.positive_int, default=1,
                   help="K seeds of every model (a stack of K copies: the overhead-bound target)")
    p.add_argument("--modes", nargs="+", choices=("stack", "sequential", "auto"),
                   default=["stack", "sequential", "auto"], help="modes to time (default: all three)")
    p.add_argument("--steps-per-dispatch", type=c.positive_int, default=None,
                   help="optimiser steps per dispatch (default: about 0.5 s of work per dispatch)")
    c.add_lanes_arg(p, "; a plan on several lanes is also timed with its lanes at once")
    p.add_argument("--repeats", type=c.positive_int, default=5, help="timed dispatches per program (default 5)")
    p.add_argument("--budget-steps", type=c.positive_int, default=None,
                   help="run length the planner (auto) plans for (default: the preset's, else 1000)")
    p.add_argument("--vs-torch", action="store_true",
                   help="also time the same models as an eager PyTorch loop (benchmarks/torch_baseline.py, "
                        "needs the bench extra) and print the ratios: for a preset, the notebook's own loops "
                        "(steady steps, and `jaxscale sweep --preset` end to end per mode, cold and warm "
                        "compilation cache, and auto with the cache off); for a family or explicit config, "
                        "their steady steps at the bench's batch, sequence length and optimiser (float32)")
    p.add_argument("--no-end-to-end", action="store_true", help="with --vs-torch: only the steady-state comparison")
    p.add_argument("--e2e-repeats", type=c.positive_int, default=1,
                   help="with --vs-torch on a preset: rounds of the end-to-end comparison (eager PyTorch, then each "
                        "mode cold and warm), reported as medians with their range (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--profile", metavar="DIR", default=None,
                   help="after the timings, trace one more dispatch of every program with jax.profiler into "
                        "DIR and report each program's ops by time per step (on a CPU this sets XLA's "
                        "--xla_cpu_enable_xprof_traceme, which names each op in the trace)")
    p.add_argument("--profile-top", type=c.positive_int, default=15, help="ops listed per program (default 15)")
    p.set_defaults(func=run)


def build(args):
    """(specs, data, optim, budget_steps, workload) from the parsed options."""
    from jaxscale.bench import BenchSpec
    from jaxscale.config import ModelConfig, family_configs
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.sweep import repeated

    explicit = args.d_model is not None
    # refused as a repeated --sizes is: the same model (under the same name) or mode timed twice
    if repeated(args.d_model or ()):
        raise ValueError(f"--d-model: given more than once: {repeated(args.d_model)} "
                         f"(--k N benches N seeds of each model)")
    if repeated(args.modes):
        raise ValueError(f"--modes: given more than once: {repeated(args.modes)}")
    if sum(bool(x) for x in (args.family, args.preset, explicit)) != 1:
        raise ValueError("give one of --family, --preset or --d-model (explicit config)")
    if not explicit and any(getattr(args, a) is not None for a in ("n_heads", "n_layers", "d_ff", "context", "vocab_size")):
        raise ValueError("--n-heads/--n-layers/--d-ff/--context/--vocab-size go with --d-model")
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}")
    overrides = {k: v for k, v in (("dropout", args.dropout), ("dtype", args.dtype)) if v is not None}
    optim, budget, workload, data = None, args.budget_steps, None, None
    if args.preset:
        from jaxscale.presets import make_preset

        preset = make_preset(args.preset)
        workload = args.preset
        cfgs = [s.cfg for s in preset.specs]
        optim = preset.specs[0].optim
        budget = budget or max(s.budget.steps(s.cfg, preset.data.batch_size, preset.data.seq_len) for s in preset.specs)
        if args.batch_size is None and args.seq_len is None:
            data = preset.data
    elif args.family:
        cfgs = family_configs(args.family)
    else:
        seq = args.seq_len
        ctx = args.context or seq
        if ctx is None:
            raise ValueError("an explicit config needs --context or --seq-len")
        cfgs = [ModelConfig(vocab_size=args.vocab_size or 256, d_model=d, n_heads=args.n_heads or max(1, d // 64),
                            n_layers=args.n_layers or 4, d_ff=args.d_ff or 4 * d, max_seq_len=ctx,
                            dropout=0.0, name=f"d{d}-L{args.n_layers or 4}") for d in args.d_model]
    if args.sizes:
        if explicit:
            raise ValueError("--sizes goes with --family or --preset")
        by_size = {cf.name.split("/", 1)[-1]: cf for cf in cfgs}
        if repeated(args.sizes):
            raise ValueError(f"--sizes: given more than once: {repeated(args.sizes)} "
                             f"(--k N benches N seeds of each size)")
        missing = [s for s in args.sizes if s not in by_size]
        if missing:
            raise ValueError(f"--sizes: unknown sizes {missing}; sizes are {list(by_size)}")
        cfgs = [by_size[s] for s in args.sizes]
    cfgs = [cf.replace(**overrides) if overrides else cf for cf in cfgs]
    if data is None:
        b = args.batch_size or (preset.data.batch_size if args.preset else 16)
        t = args.seq_len or (preset.data.seq_len if args.preset else min(cf.max_seq_len for cf in cfgs))
        if args.preset and preset.data.info.get("kind") == "task" and (args.seq_len or args.batch_size):
            from jaxscale.data.source import from_task
            from jaxscale.data.tasks import make_task

            if args.seq_len and args.seq_len != preset.data.seq_len:
                raise ValueError(f"{args.preset} trains on sequences of {preset.data.seq_len} tokens; "
                                 f"--seq-len cannot change that")
            data = from_task(make_task("notebook-arithmetic", seed=42), batch_size=b, shuffle=False, val_fraction=0.0)
        else:
            vocab = max(cf.vocab_size for cf in cfgs)
            data = from_corpus(random_tokens_corpus(vocab, max(200_000, 4 * b * t), seed=0), seq_len=t,
                               batch_size=b, eval_max_windows=8, vocab_size=vocab)
    specs = [BenchSpec(cf, seed) for cf in cfgs for seed in range(args.k)]
    return specs, data, optim, budget or 1000, workload


def run(args) -> int:
    if args.profile:  # read when JAX starts its backends, which has not happened yet
        import os

        from jaxscale.folders import check_output_folder

        # the traces' folder, checked before anything is built or timed; it is made only as the
        # first trace is written (op_profile.capture makes DIR/programNN, after the timings): made
        # here, it was left behind empty when bench then refused a setting or stopped while timing
        check_output_folder(args.profile, "--profile")

        flag = "--xla_cpu_enable_xprof_traceme=true"
        if flag not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    from jaxscale import bench, bench_torch

    if args.vs_torch:
        bench_torch.check_torch()  # fail before any timing
    specs, data, optim, budget, workload = build(args)
    log = None if args.json else (lambda msg: print(msg, flush=True))
    res = bench.run_bench(specs, data, optim=optim, modes=args.modes, steps_per_dispatch=args.steps_per_dispatch,
                          repeats=args.repeats, budget_steps=budget, log=log, profile_dir=args.profile,
                          profile_top=args.profile_top, lanes=args.lanes)
    if args.vs_torch and args.preset:  # the notebook's own loops: steady steps and end to end
        res["vs_torch"] = bench_torch.vs_torch(workload, res, end_to_end=not args.no_end_to_end, modes=args.modes,
                                               log=log, lanes=args.lanes, e2e_repeats=args.e2e_repeats)
    elif args.vs_torch:  # a family or explicit config: the same models, batch and optimiser, eagerly
        from jaxscale.train import OptimConfig

        res["vs_torch"] = bench_torch.vs_torch_configs([s.cfg for s in specs], res, optim or OptimConfig(), log=log)
    if args.json:
        print(bench.to_json(res))
    else:
        print()
        print(bench.format_report(res))
    return 0 if res["recompiles"] == 0 else 1
