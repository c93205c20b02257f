"""The notebook's two training loops, eager PyTorch, one model at a time.

Split out of ``benchmarks/torch_baseline.py`` (which re-exports every name here): the
notebook's settings, data and optimiser steps for ``notebook-scaling`` and
``notebook-emergence``, each timed per step. It is imported by that script, which puts this
folder and the repository on ``sys.path`` first.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jaxscale.config import ModelConfig

from _torch_model import TorchGPT, build_model, count_parameters

WARMUP_STEPS = 5          # steps excluded from the steady-state median

# The notebook's settings.
SCALING = dict(steps=40, batch=4, seq_len=24, vocab=500, lr=3e-4, weight_decay=0.01,
               clip=1.0, loss_window=10)
EMERGENCE = dict(train_sequences=300, test_sequences=100, epochs=20, lr=1e-3, weight_decay=0.01,
                 clip=1.0, offset=10, tolerance=2, min_epoch=5, stop_loss=0.1)


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
