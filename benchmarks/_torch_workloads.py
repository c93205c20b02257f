"""The workloads ``torch_baseline.py`` runs: a family of models end to end, or steady steps.

Split out of ``benchmarks/torch_baseline.py`` (which re-exports every name here): running a
notebook workload over a family's models (with repeats), timing the steady-state training step,
and the per-model result lines both print. It is imported by that script, which puts this
folder and the repository on ``sys.path`` first.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch

from jaxscale.config import family_configs

from _torch_model import build_model, count_parameters
from _torch_training import (EMERGENCE, SCALING, WARMUP_STEPS, _adamw, _emergence_loss, _make_step,
                             _scaling_batch, _scaling_loss, arithmetic_sequences,
                             train_emergence_model, train_scaling_model)

WORKLOADS = ("notebook-scaling", "notebook-emergence")


def _header(workload: str) -> dict:
    # The 1-minute load average at the start: eager torch's intra-op threads degrade badly when the
    # cores are shared, so a timing taken on a busy machine says so.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return dict(workload=workload, torch_version=torch.__version__, threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(), load_avg_1m=load)


def _run_once(name: str, *, seed: int, steps: int | None, sdpa: bool, sizes: Sequence[str] | None,
              test_sequences: int, log: Callable[[str], None] | None) -> dict:
    configs = family_configs(name)
    if sizes:
        configs = [c for c in configs if c.name.split("/", 1)[1] in set(sizes)]
    models = []
    t0 = time.perf_counter()
    if name == "notebook-scaling":
        for cfg in configs:
            models.append(train_scaling_model(cfg, seed=seed, steps=steps, sdpa=sdpa))
            if log:
                log(_format_model(models[-1]))
    else:
        rng = np.random.RandomState(seed)
        tests = arithmetic_sequences(rng, test_sequences)     # drawn once, as in the notebook
        for cfg in configs:
            train = arithmetic_sequences(rng, EMERGENCE["train_sequences"])  # fresh per model
            models.append(train_emergence_model(cfg, train, tests, seed=seed, steps=steps, sdpa=sdpa))
            if log:
                log(_format_model(models[-1]))
    return dict(_header(name), total_seconds=time.perf_counter() - t0, models=models)


def run_workload(name: str, *, repeats: int = 1, seed: int = 0, steps: int | None = None,
                 sdpa: bool = False, sizes: Sequence[str] | None = None,
                 test_sequences: int = EMERGENCE["test_sequences"],
                 log: Callable[[str], None] | None = None) -> dict:
    """Run one notebook workload eagerly; return the JSON object described in the module doc.

    With ``repeats`` > 1 the workload runs that many times; the object is the fastest run's, with
    every run's total in ``total_seconds_repeats``. ``steps`` shortens training (scaling: steps
    per model; emergence: a cap on each model's optimiser steps), ``sizes`` picks family members,
    ``test_sequences`` sets the emergence test-set size (the notebook's 100 by default).
    """
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose from {WORKLOADS}")
    runs = [_run_once(name, seed=seed, steps=steps, sdpa=sdpa, sizes=sizes,
                      test_sequences=test_sequences, log=log)
            for _ in range(max(1, int(repeats)))]
    best = min(runs, key=lambda r: r["total_seconds"])
    best["total_seconds_repeats"] = [r["total_seconds"] for r in runs]
    best["attention"] = "sdpa" if sdpa else "manual"
    best["seed"] = seed
    best["steps_override"] = steps
    return best


def _timed_steps(name: str, model, step, x, y, *, warmup: int, iters: int,
                 log: Callable[[str], None] | None) -> dict:
    """``warmup`` untimed then ``iters`` timed calls of ``step(x, y)`` (which ends with
    ``loss.item()``, so each is synchronous): the model's line of a steady-step result."""
    for _ in range(warmup):
        step(x, y)
    ms = []
    for _ in range(iters):
        ts = time.perf_counter()
        step(x, y)
        ms.append(1e3 * (time.perf_counter() - ts))
    res = dict(name=name, params=count_parameters(model), steps=iters, step_ms_median=statistics.median(ms),
               step_ms_min=min(ms), step_ms_max=max(ms))
    if log:
        log(f"  {name:<28} {res['params']:>9,} params  median {res['step_ms_median']:7.2f} ms/step  "
            f"(min {min(ms):.2f}, max {max(ms):.2f}, {iters} steps)")
    return res


def steady_step(name: str, *, iters: int = 30, warmup: int = WARMUP_STEPS, seed: int = 0,
                sdpa: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Median eager training-step time of each model of a family on a fixed batch, and their sum.

    Each model takes ``warmup`` untimed steps, then ``iters`` timed ones (data made beforehand,
    so only zero_grad/forward/backward/clip/AdamW/``loss.item()`` are timed).
    """
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; choose from {WORKLOADS}")
    models = []
    for cfg in family_configs(name):
        model = build_model(cfg, seed, sdpa)
        model.train()
        if name == "notebook-scaling":
            opt = _adamw(model, SCALING["lr"], SCALING["weight_decay"])
            step = _make_step(model, opt, SCALING["clip"], _scaling_loss)
            x, y = _scaling_batch(0)
        else:
            opt = _adamw(model, EMERGENCE["lr"], EMERGENCE["weight_decay"])
            step = _make_step(model, opt, EMERGENCE["clip"], _emergence_loss)
            x, y = torch.tensor([[12, 15, 18, 21]]), torch.tensor([24 + 10])
        models.append(_timed_steps(cfg.name, model, step, x, y, warmup=warmup, iters=iters, log=log))
    return dict(_header(name), mode="steady-step", attention="sdpa" if sdpa else "manual",
                sum_step_ms_median=sum(m["step_ms_median"] for m in models), models=models)


def steady_step_configs(configs: Sequence, *, batch_size: int, seq_len: int, lr: float = 1e-3,
                        weight_decay: float = 0.1, betas: tuple = (0.9, 0.95), eps: float = 1e-8,
                        clip: float = 1.0, iters: int = 30, warmup: int = WARMUP_STEPS, seed: int = 0,
                        sdpa: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """The steady-state eager step of any models (``ModelConfig``s, e.g. a family's sizes or an
    explicit config), as ``jaxscale bench`` times them: a ``batch_size`` × ``seq_len`` batch of
    random tokens, next-token cross-entropy at every position, gradient norm clipped to ``clip``,
    AdamW with ``lr``/``betas``/``eps``/``weight_decay`` (torch's AdamW decays every parameter;
    jaxscale's decays matrices and embeddings only: the same work per step). Median per model and
    the sum, timed as ``steady_step``."""
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
    models = []
    for cfg in configs:
        if seq_len > cfg.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds {cfg.name}'s context {cfg.max_seq_len}")
        model = build_model(cfg, seed, sdpa)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        step = _make_step(model, opt, clip, _scaling_loss)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=gen)
        y = torch.randint(0, cfg.vocab_size, (batch_size, seq_len), generator=gen)
        models.append(_timed_steps(cfg.name, model, step, x, y, warmup=warmup, iters=iters, log=log))
    return dict(_header("configs"), mode="steady-step", attention="sdpa" if sdpa else "manual",
                batch_size=batch_size, seq_len=seq_len,
                sum_step_ms_median=sum(m["step_ms_median"] for m in models), models=models)


# ----- result lines ------------------------------------------------------------------------------

def _format_model(m: dict) -> str:
    result = (f"loss {m['loss']:.4f}" if "loss" in m
              else f"accuracy {m['accuracy']:.3f} after {m['epochs']} epochs")
    step_ms = "n/a" if m["step_ms_median"] is None else f"{m['step_ms_median']:.2f} ms/step"
    return (f"  {m['name']:<28} {m['params']:>9,} params  {m['steps']:>5} steps  "
            f"{m['seconds']:8.2f} s  {step_ms:>14}  {result}")
