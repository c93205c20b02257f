"""The notebook's own workloads as named presets, so users can compare like with like.

* ``notebook-scaling``: its five sizes on i.i.d. random tokens (vocab 500; the loss floor is
  ln 500 ≈ 6.21, so no scaling law can be learned from it), batch 4 × 24, 40 steps, AdamW at a
  constant 3e-4 with weight decay 0.01 on every parameter and PyTorch's β₂ 0.999, gradient clip
  1.0; the reported loss is the mean of the last 10 steps (the row's ``train_loss``).
* ``notebook-emergence``: its five sizes on its arithmetic-sequence task (300 training sequences
  of 4 terms → the 5th; token = number + 10; vocab 100), one sequence per optimiser step in
  order, AdamW at a constant 1e-3 (wd 0.01), up to 20 epochs with its early stop (after epoch
  index 5, stop once an epoch's mean loss is below 0.1), scored by its ±2 tolerance accuracy on
  100 test sequences (drawn from the same 42 (start, step) pairs as training: the notebook's flaw,
  kept for comparison). The notebook has no validation split, so ``val_loss`` is the test loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from jaxscale.config import family_configs
from jaxscale.runner import ModelSpec, RunSettings
from jaxscale.train import Budget, OptimConfig

PRESETS = ("notebook-scaling", "notebook-emergence")


@dataclass(frozen=True)
class Preset:
    name: str
    specs: list
    data: object
    settings: RunSettings
    row_hook: Callable | None = None


def _torch_adamw(lr: float) -> OptimConfig:
    """PyTorch AdamW defaults at a constant learning rate, as the notebook uses them."""
    return OptimConfig(lr=lr, weight_decay=0.01, beta1=0.9, beta2=0.999, eps=1e-8, clip_norm=1.0,
                       warmup_frac=0.0, min_lr_ratio=1.0, decay_all=True)


def notebook_scaling(seed: int = 42) -> Preset:
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus

    cfgs = family_configs("notebook-scaling")
    data = from_corpus(random_tokens_corpus(500, 200_000, seed=seed), seq_len=24, batch_size=4,
                       eval_max_windows=64, vocab_size=500)
    specs = [ModelSpec(c, seed, _torch_adamw(3e-4), Budget("steps", 40)) for c in cfgs]
    return Preset("notebook-scaling", specs, data,
                  RunSettings(batch_size=4, seq_len=24, data_seed=seed, n_evals=1, steps_per_dispatch=40))


def notebook_emergence(seed: int = 42) -> Preset:
    from jaxscale.data.source import from_task
    from jaxscale.data.tasks import make_task

    task = make_task("notebook-arithmetic", seed=seed)
    data = from_task(task, batch_size=1, shuffle=False, val_fraction=0.0)
    epochs = 20
    specs = [ModelSpec(c, seed, _torch_adamw(1e-3), Budget("steps", epochs * data.steps_per_epoch))
             for c in family_configs("notebook-emergence")]
    settings = RunSettings(batch_size=1, data_seed=seed, n_evals=4, steps_per_dispatch=300, early_stop=(5, 0.1))
    return Preset("notebook-emergence", specs, data, settings, row_hook=task_metrics_hook(task))


def task_metrics_hook(task, tolerance: float = 2.0):
    """A sweep row hook that evaluates each trained model on the task's test split and records
    every metric (``row['metrics']``) with the per-example outputs' summary."""
    from jaxscale.emergence_study import evaluate_result

    def hook(row, spec, result, i):
        _, row["metrics"], _ = evaluate_result(task, spec.cfg, result, i, tolerance)
        row["task"] = task.name

    return hook


def make_preset(name: str, seed: int = 42) -> Preset:
    if name == "notebook-scaling":
        return notebook_scaling(seed)
    if name == "notebook-emergence":
        return notebook_emergence(seed)
    raise ValueError(f"preset {name!r} is unknown; presets: {list(PRESETS)}")
