#!/usr/bin/env python
"""Eager-PyTorch baseline for the notebook's two workloads, timed so jaxscale can be compared with it.

This is the "what users leave behind" side of the speed-up ratios in the engine and bench issues:
the PyTorch teaching notebook's own training loops (one model after another, one eager optimiser
step at a time), on the same GPT as ``jaxscale/model.py`` with the sizes of
``jaxscale.config.family_configs``. It needs ``torch`` (the optional ``bench`` extra,
``pip install torch==2.13.0``); the jaxscale library itself never imports torch, and
``jaxscale bench --vs-torch`` runs this file in a subprocess and reads its ``--json`` output.

Workloads, as the notebook runs them (float32, CPU, torch's default thread count):

* ``notebook-scaling``: per size, AdamW(lr 3e-4, weight decay 0.01), 40 steps; step ``s`` draws a
  4×24 batch of random tokens in [0, 500) and random targets after ``torch.manual_seed(s)``;
  cross-entropy over every position, gradient norm clipped to 1.0. Loss = mean of the last 10 steps.
* ``notebook-emergence``: 100 test sequences, then per size 300 fresh training sequences
  (arithmetic: start 1..14, step 1..3, four terms → the fifth; token = number + 10), one sequence
  per AdamW(lr 1e-3, weight decay 0.01) step with clipping 1.0, up to 20 epochs, stopping after an
  epoch > 5 whose mean loss is < 0.1; the loss is on the last position's prediction of the fifth
  term. Accuracy: argmax of the last position's logits − 10 within ±2 of the target.

The notebook draws its sequences from numpy's global generator without a seed, and initialises
each model from torch's global generator wherever the previous model left it; here both are
seeded (``--seed``) so that runs are repeatable. Nothing else differs.

Timing: ``seconds`` is wall time per model (build, train, evaluate); ``step_ms_median`` is the
median of synchronously timed optimiser steps (``loss.item()`` ends each step) after the first
``WARMUP_STEPS``. ``--steady-step FAMILY`` times only the training step of the five models on a
fixed batch and reports the sum of their medians (the "five eager steps" figure).

Examples::

    python benchmarks/torch_baseline.py --workload notebook-scaling
    python benchmarks/torch_baseline.py --workload both --json
    python benchmarks/torch_baseline.py --workload notebook-emergence --repeats 3
    python benchmarks/torch_baseline.py --steady-step notebook-scaling --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import torch

try:
    from jaxscale.config import ModelConfig, family_configs
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jaxscale.config import ModelConfig, family_configs
from jaxscale.commands._common import positive_int, seed as seed_value  # noqa: E402

# The model, the training loops and the workloads live in sibling modules (_torch_*.py). This file
# is run by path and loaded by importlib from its path, so neither finds them without this folder
# on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _torch_model import INIT_STD, LN_EPS, Block, TorchGPT, build_model, count_parameters  # noqa: E402
from _torch_training import (EMERGENCE, SCALING, WARMUP_STEPS, _adamw, _emergence_loss,  # noqa: E402
                             _make_step, _scaling_batch, _scaling_loss, _steady_ms,
                             arithmetic_accuracy, arithmetic_sequences, train_emergence_model,
                             train_scaling_model)
from _torch_workloads import (WORKLOADS, _format_model, _header, _run_once, run_workload,  # noqa: E402
                              steady_step, steady_step_configs)

# Every name this script defined before the split, re-exported: tests and callers load this file
# and use its attributes (``module.build_model`` ...).
__all__ = [
    "ModelConfig", "family_configs",
    "INIT_STD", "LN_EPS", "Block", "TorchGPT", "build_model", "count_parameters",
    "EMERGENCE", "SCALING", "WARMUP_STEPS", "_adamw", "_emergence_loss", "_make_step",
    "_scaling_batch", "_scaling_loss", "_steady_ms", "arithmetic_accuracy", "arithmetic_sequences",
    "train_emergence_model", "train_scaling_model",
    "WORKLOADS", "_format_model", "_header", "_run_once", "run_workload", "steady_step", "steady_step_configs",
    "_print_summary", "main",
]


# ----- command line ------------------------------------------------------------------------------

def _print_summary(res: dict) -> None:
    steps = sum(m["steps"] for m in res["models"])
    reps = res.get("total_seconds_repeats", [])
    rep_txt = f" (best of {len(reps)}: {', '.join(f'{t:.2f}' for t in reps)})" if len(reps) > 1 else ""
    print(f"  {'total':<28} {sum(m['params'] for m in res['models']):>9,} params  {steps:>5} steps  "
          f"{res['total_seconds']:8.2f} s{rep_txt}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="torch_baseline.py",
        description="Eager PyTorch runs of the notebook's workloads (the baseline for jaxscale's "
                    "speed-ups). Same GPT, data, optimiser and steps as the notebook; float32, CPU.",
        epilog="examples:\n"
               "  python benchmarks/torch_baseline.py --workload notebook-scaling\n"
               "  python benchmarks/torch_baseline.py --workload both --json\n"
               "  python benchmarks/torch_baseline.py --workload notebook-emergence --repeats 3\n"
               "  python benchmarks/torch_baseline.py --steady-step notebook-scaling\n"
               "  python benchmarks/torch_baseline.py --steady-step-configs spec.json --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--workload", choices=WORKLOADS + ("both",), default=None,
                      help="run a notebook workload end to end (default: notebook-scaling)")
    what.add_argument("--steady-step", metavar="FAMILY", choices=WORKLOADS,
                      help="time only the steady-state training step of the family's five models "
                           "and report the sum of their median step times")
    what.add_argument("--steady-step-configs", metavar="FILE",
                      help="the same for any models: a JSON file {configs: [ModelConfig fields...], "
                           "batch_size, seq_len, optim: {lr, weight_decay, betas, eps, clip}} "
                           "(what jaxscale bench --vs-torch writes for a family or explicit config)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="run each workload R times and report the fastest (default 1)")
    parser.add_argument("--seed", type=seed_value, default=0, help="model-init and sequence seed (default 0)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="shorten training (scaling: steps per model; emergence: cap per model)")
    parser.add_argument("--iters", type=positive_int, default=30,
                        help="timed steps per model in --steady-step mode (default 30)")
    parser.add_argument("--sdpa", action="store_true",
                        help="use torch's fused scaled_dot_product_attention instead of the "
                             "notebook-style explicit softmax attention")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch.set_num_threads (default: torch's default, all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = None if args.json else print

    if args.steady_step_configs:
        spec = json.loads(Path(args.steady_step_configs).read_text())
        missing = [k for k in ("configs", "batch_size", "seq_len") if k not in spec]
        if missing:
            parser.error(f"--steady-step-configs {args.steady_step_configs}: missing {missing}")
        cfgs = [ModelConfig.from_dict(c) for c in spec["configs"]]
        if log:
            print(f"steady-state eager step of {len(cfgs)} model(s), batch {spec['batch_size']} x "
                  f"{spec['seq_len']} (torch {torch.__version__}, {torch.get_num_threads()} threads)")
        res = steady_step_configs(cfgs, batch_size=int(spec["batch_size"]), seq_len=int(spec["seq_len"]),
                                  **spec.get("optim", {}), iters=args.iters, seed=args.seed, sdpa=args.sdpa,
                                  log=log)
        if args.json:
            print(json.dumps(res))
        else:
            print(f"  sum of the {len(res['models'])} median step times: {res['sum_step_ms_median']:.2f} ms")
        return 0

    if args.steady_step:
        if log:
            print(f"steady-state eager step, {args.steady_step} (torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads)")
        res = steady_step(args.steady_step, iters=args.iters, seed=args.seed, sdpa=args.sdpa, log=log)
        if args.json:
            print(json.dumps(res))
        else:
            print(f"  sum of the {len(res['models'])} median step times: {res['sum_step_ms_median']:.2f} ms")
        return 0

    names = WORKLOADS if args.workload == "both" else (args.workload or "notebook-scaling",)
    results = []
    for name in names:
        if log:
            print(f"{name} (eager torch {torch.__version__}, {torch.get_num_threads()} threads)")
        res = run_workload(name, repeats=args.repeats, seed=args.seed, steps=args.steps,
                           sdpa=args.sdpa, log=log)
        results.append(res)
        if log:
            if args.repeats > 1:
                print("  (per-model lines above are from every run; the total is the fastest run's)")
            _print_summary(res)
    if args.json:
        if len(results) == 1:
            print(json.dumps(results[0]))
        else:
            print(json.dumps(dict(_header("both"), total_seconds=sum(r["total_seconds"] for r in results),
                                  workloads=results)))
    elif len(results) > 1:
        print(f"both workloads: {sum(r['total_seconds'] for r in results):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
