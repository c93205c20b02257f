"""Argument groups and helpers shared by the training subcommands."""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
from pathlib import Path

from jaxscale.folders import output_folder


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def positive_float(text: str) -> float:
    """A finite number > 0 (``nan`` and ``inf`` parse as floats, but no setting means them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {value}")
    return value


MAX_SEED = 2**31 - 1  # a model seed becomes an int32 (the initial state's seed array); as emergence_spec's


def seed(text: str) -> int:
    """A seed: an integer from 0 to ``MAX_SEED``. Why checked here: numpy refuses a negative
    seed and the model's int32 seed array a larger one, but only once the plan is printed and
    the output folder (with sweep.json, plan.json or study.json) is written, in messages that
    name no option (``expected non-negative integer``, ``out of bounds for int32``); a negative
    --data-seed was even accepted."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer from 0 to {MAX_SEED}), got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer from 0 to {MAX_SEED}), got {value}")
    return value


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a weight decay): checked here so that the error names the option;
    ``OptimConfig``'s own check named its field (``OptimConfig.weight_decay has a bad value``)
    and came after the output folder was made."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1) (a dropout rate, a warmup share), checked here for the same reason as
    ``non_negative_float``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def add_budget_args(p: argparse.ArgumentParser, *, several: bool = False) -> None:
    g = p.add_mutually_exclusive_group()
    nargs = "+" if several else None
    g.add_argument("--steps", type=positive_int, nargs=nargs, help="optimiser steps per model")
    g.add_argument("--tokens", type=positive_float, nargs=nargs,
                   help="training tokens per model (rounded up to whole steps of batch size x sequence "
                        "length tokens; at least one step)")
    g.add_argument("--tokens-per-param", type=positive_float, nargs=nargs,
                   help="training tokens per parameter (Chinchilla: 20; rounded up to whole steps, at "
                        "least one)")
    p.add_argument("--params-basis", choices=("total", "non-embedding"), default="total",
                   help="parameter count that --tokens-per-param multiplies (default: total)")


def budgets_from_args(args, default_steps: int) -> list:
    from jaxscale.train import Budget

    basis = args.params_basis.replace("-", "_")
    for kind in ("steps", "tokens", "tokens_per_param"):
        value = getattr(args, kind)
        if value is not None:
            values = value if isinstance(value, list) else [value]
            return [Budget(kind, v, basis) for v in values]
    return [Budget("steps", default_steps, basis)]


def check_token_budgets(budgets, cfgs, batch_size: int, seq_len: int) -> None:
    """Refuse a --tokens or --tokens-per-param budget below one step (``batch_size`` x
    ``seq_len`` tokens), and two budgets that round to one step count for some model. Why: a budget is rounded up to whole steps (``Budget.steps``), so such
    a budget trained every model on a whole step, e.g. 1024 tokens for ``--tokens 1``, without a
    word; a larger budget moves by less than one step."""
    per_step = batch_size * seq_len
    for b in budgets:
        if b.kind == "steps":
            continue
        for cfg in cfgs:
            counts = cfg.param_counts()
            n = counts.total if b.params_basis == "total" else counts.non_embedding
            tokens = b.value if b.kind == "tokens" else b.value * n
            if tokens < per_step:
                flag = "--" + b.kind.replace("_", "-")
                what = (f"a budget of {tokens:g} tokens" if b.kind == "tokens" else
                        f"{b.value:g} x {n:,} parameters of {cfg.name} = {tokens:g} tokens")
                raise ValueError(f"{flag}: {what} is less than one step of {batch_size} sequences x {seq_len} "
                                 f"tokens ({per_step} tokens), and a budget is rounded up to whole steps; give "
                                 f"at least one step's tokens, or --steps")
    # Two budgets that round to one step count train the same model twice (``--tokens 5000
    # 5100`` at 256 tokens a step: 20 steps each), and a grid then holds a duplicate point.
    for cfg in cfgs:
        by_steps: dict[int, object] = {}
        for b in budgets:
            steps = b.steps(cfg, batch_size, seq_len)
            other = by_steps.setdefault(steps, b)
            if other is not b and other != b:
                flag = "--" + b.kind.replace("_", "-")
                raise ValueError(f"{flag}: {other.value:g} and {b.value:g} both train {cfg.name} for {steps} "
                                 f"steps of {per_step} tokens (a budget is rounded up to whole steps), so the "
                                 f"same model would be trained twice; give budgets at least one step apart")


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default="pystdlib",
                   help="pystdlib (built-in default), shakespeare, or a path to a text file/folder, .npy or .bin")
    p.add_argument("--batch-size", type=positive_int, default=16, help="sequences per step (default 16)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="tokens per sequence (default: the context)")
    p.add_argument("--data-seed", type=seed, default=0, help="seed of the batch stream (default 0)")
    p.add_argument("--eval-every", type=positive_int, default=None, help="steps between validation evaluations")
    p.add_argument("--eval-windows", type=positive_int, default=128, help="held-out windows per evaluation")
    p.add_argument("--weight-decay", type=non_negative_float, default=0.1,
                   help="AdamW decoupled weight decay (default 0.1)")
    p.add_argument("--warmup-frac", type=fraction, default=0.1, help="share of steps in linear warmup (default 0.1)")
    p.add_argument("--clip-norm", type=positive_float, default=1.0, help="global gradient-norm clip (default 1.0)")
    p.add_argument("--out", default=None, help="output folder (default: a new folder under ./runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--batch-shards", type=positive_int, default=None,
                   help="devices each batch is split over (data parallelism; several devices only). "
                        "Default: a stack puts every device on its model axis, a model trained alone "
                        "splits its batch over as many devices as divide it")
    p.add_argument("--compile", choices=("auto", "full", "fast"), default="auto", dest="compile_mode",
                   help="CPU code generation per training program: auto (fast-compiling when the compile "
                        "time saved beats the slower steps, by the planner's estimates; default), full, fast")


def add_lanes_arg(p: argparse.ArgumentParser, extra: str = "") -> None:
    p.add_argument("--lanes", type=positive_int, default=None,
                   help="groups trained at once, in threads (default: one per core, at most 4, on a "
                        "single-device CPU, where a small model's program keeps about one core busy; "
                        "else 1); the numbers do not depend on it" + extra)


def add_plan_for_arg(p) -> None:
    from jaxscale.compile_cache import PLAN_FOR

    p.add_argument("--plan-for", choices=PLAN_FOR, default="auto",
                   help="what the plan is made for: reruns (later runs load this run's compiled programs: "
                        "fewer shared programs, padding counted for them too), once (this run alone: fewer "
                        "compiles), auto (default: reruns while the compilation cache is on, else once)")


def run_settings(args):
    from jaxscale.runner import RunSettings

    return RunSettings(batch_size=args.batch_size, seq_len=args.seq_len, data_seed=args.data_seed,
                       eval_every=args.eval_every, eval_windows=args.eval_windows, progress=not args.quiet,
                       compile_mode=args.compile_mode, batch_shards=args.batch_shards)


def optim_config(args, lr: float):
    from jaxscale.train import OptimConfig

    return OptimConfig(lr=lr, weight_decay=args.weight_decay, warmup_frac=args.warmup_frac, clip_norm=args.clip_norm)


def check_batch_shards(args, batch_size: int) -> None:
    """Refuse ``--batch-shards`` that this host's devices or the batch cannot hold, before an
    output folder is made (a stack's further condition, dividing the device count, is checked
    by ``run_sweep`` once the plan is known, still before anything is written)."""
    if getattr(args, "batch_shards", None) is None:
        return
    from jaxscale.devices import host_mesh_shape

    try:
        host_mesh_shape(1, batch_size, stacked=False, batch_shards=args.batch_shards)
    except ValueError as err:
        raise ValueError(f"--batch-shards: {err}") from None


def out_dir(args, prefix: str, *, make: bool = True) -> Path:
    """The ``--out`` folder (default: a new one under ``runs/``), made, or with ``make=False``
    only checked (``folders.check_output_folder``) for a callee that makes it once its own
    checks pass (``run_sweep``: a plan's mesh refused after the folder was made left it empty)."""
    if args.out:
        path = Path(args.out)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{prefix}-{stamp}-{os.getpid()}"
    if not make:
        from jaxscale.folders import check_output_folder

        return check_output_folder(path, "--out")
    return output_folder(path, "--out")


def _steps_of(row: dict) -> str:
    """The steps a row trained, with its plan where it stopped short (early, or diverged)."""
    planned = row.get("planned_steps")
    return f"{row['steps']}" if planned in (None, row["steps"]) else f"{row['steps']} of {planned}"


def summary_line(row: dict) -> str:
    fmt = lambda x: "diverged" if x is None else f"{x:.4f}"
    return (f"{row['name']:<28} params {row['params']:>10,} (non-emb {row['non_embedding_params']:>10,}) "
            f"seed {row['seed']} lr {row['lr']:g} steps {_steps_of(row)} tokens {row['tokens']:,} | "
            f"train {fmt(row['train_loss'])} val {fmt(row['val_loss'])} test {fmt(row['test_loss'])}")
