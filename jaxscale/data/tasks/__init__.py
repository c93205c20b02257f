"""Synthetic tasks for emergence studies, generated from a seed, with disjoint train/test splits.

Every task returns a :class:`Task` whose splits share one layout (:class:`TaskSplit`): fixed-length
int32 token rows ``[prompt][answer][pad]`` for a causal LM, the answer's start and length per row,
and, where it applies, the numeric answer and a subtask label. :func:`loss_mask` gives the
training mask over target positions. :func:`make_task` builds a task by name:

==========================  ======================================================================
``notebook-arithmetic``     the notebook's sequences, as they are (test repeats train: its flaw)
``arithmetic``              sequences with held-out (start, step) pairs and digit answers
``addition``                ``a+b=`` → digits of the sum; ``n_digits``, ``reverse``
``sparse-parity``           multitask sparse parity (Michaud et al. 2023), per-subtask labels
``induction``               in-context copying of a random sequence
``modular-addition``        ``a+b=`` → (a+b) mod p; ``train_fraction`` (grokking)
==========================  ======================================================================
"""

from __future__ import annotations

from typing import Callable

from jaxscale.data.tasks.addition import addition
from jaxscale.data.tasks.arithmetic import arithmetic, notebook_arithmetic
from jaxscale.data.tasks.base import (
    DIGIT_TOKENS, NumberCodec, Task, TaskSplit, check_disjoint, count_overlap, loss_mask,
)
from jaxscale.data.tasks.induction import induction
from jaxscale.data.tasks.modular import modular_addition
from jaxscale.data.tasks.parity import parity_features, sparse_parity, zipf_probs

__all__ = [
    "Task", "TaskSplit", "NumberCodec", "DIGIT_TOKENS", "loss_mask", "count_overlap",
    "check_disjoint", "make_task", "TASKS", "task_names", "notebook_arithmetic", "arithmetic",
    "addition", "sparse_parity", "parity_features", "zipf_probs", "induction",
    "modular_addition",
]

TASKS: dict[str, Callable[..., Task]] = {
    "notebook-arithmetic": notebook_arithmetic,
    "arithmetic": arithmetic,
    "addition": addition,
    "sparse-parity": sparse_parity,
    "induction": induction,
    "modular-addition": modular_addition,
}


def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def make_task(name: str, seed: int = 0, **kwargs) -> Task:
    """Build the task called ``name`` from ``seed``; ``kwargs`` are that task's knobs."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](seed=seed, **kwargs)
