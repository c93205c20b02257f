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
import math
import os
import statistics
import sys
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from jaxscale.config import ModelConfig, family_configs
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from jaxscale.config import ModelConfig, family_configs

WORKLOADS = ("notebook-scaling", "notebook-emergence")
WARMUP_STEPS = 5          # steps excluded from the steady-state median
LN_EPS = 1e-5
INIT_STD = 0.02

# The notebook's settings.
SCALING = dict(steps=40, batch=4, seq_len=24, vocab=500, lr=3e-4, weight_decay=0.01,
               clip=1.0, loss_window=10)
EMERGENCE = dict(train_sequences=300, test_sequences=100, epochs=20, lr=1e-3, weight_decay=0.01,
                 clip=1.0, offset=10, tolerance=2, min_epoch=5, stop_loss=0.1)


# ----- the model (mirrors jaxscale/model.py) ---------------------------------------------------

class Block(nn.Module):
    """Pre-LN block: x + Drop(Proj(Attn(LN(x)))), then x + Drop(FC2(GELU(FC1(LN(x)))))."""

    def __init__(self, cfg: ModelConfig, sdpa: bool = False):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim, self.rate, self.sdpa = cfg.n_heads, cfg.head_dim, cfg.dropout, sdpa
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.fc1 = nn.Linear(d, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, d)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.mlp_drop = nn.Dropout(cfg.dropout)
        mask = torch.tril(torch.ones(cfg.max_seq_len, cfg.max_seq_len, dtype=torch.bool))
        self.register_buffer("causal", mask, persistent=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        # Fused projection laid out as (qkv, head, head_dim), as jaxscale's wqkv is.
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.rate if self.training else 0.0)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            s = s.masked_fill(~self.causal[:T, :T], float("-inf"))
            o = self.attn_drop(torch.softmax(s, dim=-1)) @ v
        return self.proj(o.transpose(1, 2).reshape(B, T, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.resid_drop(self.attention(self.ln1(x)))
        return x + self.mlp_drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class TorchGPT(nn.Module):
    """Token + learned position embeddings, ``n_layers`` pre-LN blocks, final LN, untied head."""

    def __init__(self, cfg: ModelConfig, sdpa: bool = False):
        super().__init__()
        if cfg.tie_embeddings:
            raise ValueError("the torch baseline builds untied heads only (as the notebook does)")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, sdpa) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=LN_EPS)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        resid_std = INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, INIT_STD)
                if isinstance(module, nn.Linear):
                    module.bias.zero_()
                if isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            for block in self.blocks:
                block.proj.weight.normal_(0.0, resid_std)
                block.fc2.weight.normal_(0.0, resid_std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        pos = torch.arange(T, device=tokens.device)
        x = self.drop(self.tok_emb(tokens) + self.pos_emb(pos)[None])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(cfg: ModelConfig, seed: int, sdpa: bool = False) -> TorchGPT:
    """A freshly initialised model whose parameter count is checked against jaxscale's."""
    torch.manual_seed(seed)
    model = TorchGPT(cfg, sdpa=sdpa)
    n, expected = count_parameters(model), cfg.param_counts().total
    if n != expected:
        raise AssertionError(f"{cfg.name}: torch model has {n} parameters, jaxscale counts {expected}")
    return model


# ----- the notebook's training steps -------------------------------------------------------------

def _make_step(model: TorchGPT, opt: torch.optim.Optimizer, clip: float,
               loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    params = list(model.parameters())

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm=clip)
        opt.step()
        return loss.item()       # synchronises, as the notebook's loop does
    return step


def _scaling_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def _emergence_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[0, -1:, :], target)


def _adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    # torch defaults otherwise (betas 0.9/0.999, eps 1e-8, decay on every parameter), as the notebook.
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _steady_ms(step_seconds: Sequence[float]) -> float | None:
    tail = step_seconds[WARMUP_STEPS:] if len(step_seconds) > WARMUP_STEPS else step_seconds
    return 1e3 * statistics.median(tail) if tail else None


def _scaling_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(step)     # the notebook's "consistent data across models"
    shape = (SCALING["batch"], SCALING["seq_len"])
    return torch.randint(0, SCALING["vocab"], shape), torch.randint(0, SCALING["vocab"], shape)


def train_scaling_model(cfg: ModelConfig, *, seed: int = 0, steps: int | None = None,
                        sdpa: bool = False) -> dict:
    t0 = time.perf_counter()
    model = build_model(cfg, seed, sdpa)
    model.train()
    step = _make_step(model, _adamw(model, SCALING["lr"], SCALING["weight_decay"]),
                      SCALING["clip"], _scaling_loss)
    losses, times = [], []
    for s in range(SCALING["steps"] if steps is None else steps):
        ts = time.perf_counter()
        x, y = _scaling_batch(s)
        losses.append(step(x, y))
        times.append(time.perf_counter() - ts)
    return dict(name=cfg.name, params=count_parameters(model), steps=len(times),
                seconds=time.perf_counter() - t0, step_ms_median=_steady_ms(times),
                loss=float(np.mean(losses[-SCALING["loss_window"]:])))


def arithmetic_sequences(rng: np.random.RandomState, n: int) -> list[tuple[list[int], int]]:
    """The notebook's task: start in 1..14, step in 1..3; four terms as input, the fifth as target."""
    out = []
    for _ in range(n):
        start, step = int(rng.randint(1, 15)), int(rng.randint(1, 4))
        seq = [start + i * step for i in range(5)]
        out.append((seq[:4], seq[4]))
    return out


@torch.no_grad()
def arithmetic_accuracy(model: TorchGPT, tests: Sequence[tuple[list[int], int]]) -> float:
    model.eval()
    off, tol = EMERGENCE["offset"], EMERGENCE["tolerance"]
    correct = 0
    for inputs, target in tests:
        logits = model(torch.tensor([inputs]) + off)
        correct += abs(int(logits[0, -1].argmax().item()) - off - target) <= tol
    return correct / len(tests)


def train_emergence_model(cfg: ModelConfig, train: Sequence[tuple[list[int], int]],
                          tests: Sequence[tuple[list[int], int]], *, seed: int = 0,
                          steps: int | None = None, sdpa: bool = False) -> dict:
    """Train one sequence per step; ``steps`` caps the total number of steps (for quick checks)."""
    t0 = time.perf_counter()
    model = build_model(cfg, seed, sdpa)
    model.train()
    step = _make_step(model, _adamw(model, EMERGENCE["lr"], EMERGENCE["weight_decay"]),
                      EMERGENCE["clip"], _emergence_loss)
    off = EMERGENCE["offset"]
    times: list[float] = []
    epochs, last_epoch_loss = 0, float("nan")
    for epoch in range(EMERGENCE["epochs"]):
        epoch_losses = []
        for inputs, target in train:
            if steps is not None and len(times) >= steps:
                break
            ts = time.perf_counter()
            x, y = torch.tensor([inputs]) + off, torch.tensor([target + off])
            epoch_losses.append(step(x, y))
            times.append(time.perf_counter() - ts)
        if not epoch_losses:
            break
        epochs, last_epoch_loss = epoch + 1, float(np.mean(epoch_losses))
        if epoch > EMERGENCE["min_epoch"] and last_epoch_loss < EMERGENCE["stop_loss"]:
            break
        if steps is not None and len(times) >= steps:
            break
    accuracy = arithmetic_accuracy(model, tests)
    return dict(name=cfg.name, params=count_parameters(model), steps=len(times),
                seconds=time.perf_counter() - t0, step_ms_median=_steady_ms(times),
                accuracy=accuracy, epochs=epochs, final_epoch_loss=last_epoch_loss)


# ----- workloads ---------------------------------------------------------------------------------

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
        for _ in range(warmup):
            step(x, y)
        times = []
        for _ in range(iters):
            ts = time.perf_counter()
            step(x, y)
            times.append(time.perf_counter() - ts)
        ms = [1e3 * t for t in times]
        models.append(dict(name=cfg.name, params=count_parameters(model), steps=iters,
                           step_ms_median=statistics.median(ms), step_ms_min=min(ms),
                           step_ms_max=max(ms)))
        if log:
            log(f"  {cfg.name:<28} {models[-1]['params']:>9,} params  "
                f"median {models[-1]['step_ms_median']:7.2f} ms/step  "
                f"(min {min(ms):.2f}, max {max(ms):.2f}, {iters} steps)")
    return dict(_header(name), mode="steady-step", attention="sdpa" if sdpa else "manual",
                sum_step_ms_median=sum(m["step_ms_median"] for m in models), models=models)


# ----- command line ------------------------------------------------------------------------------

def _format_model(m: dict) -> str:
    result = (f"loss {m['loss']:.4f}" if "loss" in m
              else f"accuracy {m['accuracy']:.3f} after {m['epochs']} epochs")
    step_ms = "n/a" if m["step_ms_median"] is None else f"{m['step_ms_median']:.2f} ms/step"
    return (f"  {m['name']:<28} {m['params']:>9,} params  {m['steps']:>5} steps  "
            f"{m['seconds']:8.2f} s  {step_ms:>14}  {result}")


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
               "  python benchmarks/torch_baseline.py --steady-step notebook-scaling\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--workload", choices=WORKLOADS + ("both",), default=None,
                      help="run a notebook workload end to end (default: notebook-scaling)")
    what.add_argument("--steady-step", metavar="FAMILY", choices=WORKLOADS,
                      help="time only the steady-state training step of the family's five models "
                           "and report the sum of their median step times")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each workload R times and report the fastest (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="model-init and sequence seed (default 0)")
    parser.add_argument("--steps", type=int, default=None,
                        help="shorten training (scaling: steps per model; emergence: cap per model)")
    parser.add_argument("--iters", type=int, default=30,
                        help="timed steps per model in --steady-step mode (default 30)")
    parser.add_argument("--sdpa", action="store_true",
                        help="use torch's fused scaled_dot_product_attention instead of the "
                             "notebook-style explicit softmax attention")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default, all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = None if args.json else print

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
