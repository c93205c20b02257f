"""Multitask sparse parity (Michaud et al. 2023, the "quantization model" of neural scaling).

Each item picks a subtask i (with Zipfian probability p_i ∝ (i+1)^-(alpha+1)) and ``n_bits``
uniform random bits; its label is the parity of the bits in subtask i's own fixed random
``k``-subset. A model learns subtasks in order of frequency, each one switching on sharply, while
the mean loss over the Zipfian mix follows a power law with exponent ``alpha``. The published
setting (500 subtasks, 100 bits, an MLP, batch 20,000 for 200k steps) is GPU-scale; the defaults
here are the CPU shrink the emergence notes suggest (16 subtasks, 24 bits, k = 3).

Row ``TASK_i b_1 … b_n = y``: bits are tokens 0/1, ``=`` is 2, subtask i's code is token 3 + i; the
answer is one token (0 or 1). The **test set is balanced over subtasks** (``n_test_per_subtask``
items each), so every subtask's accuracy carries an interval; ``Task.subtask_probs`` gives the
training mix for a population mean. Test items (subtask, bits) never occur in training.
:func:`parity_features` turns a split into the one-hot-code-plus-bits vectors of the original MLP.
"""

from __future__ import annotations

import numpy as np

from jaxscale.data.tasks.base import Task, TaskSplit, check_positive_int

__all__ = ["sparse_parity", "parity_features", "zipf_probs", "parity_chance"]

BIT0, BIT1, EQUALS, CODE0 = 0, 1, 2, 3


def zipf_probs(n_tasks: int, alpha: float) -> np.ndarray:
    """Subtask frequencies p_i ∝ (i + 1)^-(alpha + 1), i = 0 … n_tasks-1."""
    w = np.arange(1, n_tasks + 1, dtype=np.float64) ** -(alpha + 1.0)
    return w / w.sum()


def _split(task_N, bits_NB, subsets_TK, n_tasks: int) -> TaskSplit:
    n, n_bits = bits_NB.shape
    picked_NK = np.take_along_axis(bits_NB, subsets_TK[task_N], axis=1)
    label_N = picked_NK.sum(axis=1) % 2
    tokens_NT = np.concatenate([
        (CODE0 + task_N)[:, None], bits_NB, np.full((n, 1), EQUALS), label_N[:, None]], axis=1)
    return TaskSplit(
        name="sparse-parity", tokens_NT=tokens_NT, answer_start_N=np.full(n, n_bits + 2),
        answer_len_N=np.ones(n), vocab_size=CODE0 + n_tasks, pad_id=EQUALS,
        target_value_N=label_N, subtask_N=task_N)


def parity_chance(tolerance: float = 2.0) -> dict[str, float]:
    """Chance levels of sparse parity: 1/2 for exact match and per-token accuracy.

    The answer is one bit, the parity of k >= 1 uniform random bits, which is itself exactly
    uniform in every subtask (flip one of the k bits and the parity flips), so every constant
    guess scores (1/2)^answer_len = 1/2, and the subtask-balanced test set changes nothing.
    Answers are not numbers to the evaluation (no codec), so there is no tolerance match.
    """
    return {"exact_match": 0.5, "token_accuracy": 0.5}


def _keys(task_N, bits_NB) -> np.ndarray:
    weights_B = 2 ** np.arange(bits_NB.shape[1], dtype=np.int64)
    return (task_N.astype(np.int64) << bits_NB.shape[1]) | (bits_NB @ weights_B)


def sparse_parity(seed: int = 0, n_tasks: int = 16, n_bits: int = 24, k: int = 3,
                  alpha: float = 0.4, n_train: int = 50_000,
                  n_test_per_subtask: int = 100) -> Task:
    """Multitask sparse parity with Zipfian subtask frequencies and a balanced test set."""
    n_tasks = check_positive_int("n_tasks", n_tasks)
    n_bits = check_positive_int("n_bits", n_bits)
    k = check_positive_int("k", k)
    n_train = check_positive_int("n_train", n_train)
    n_test_per_subtask = check_positive_int("n_test_per_subtask", n_test_per_subtask)
    if k > n_bits:
        raise ValueError(f"k={k} must be <= n_bits={n_bits}")
    if n_bits > 40:
        raise ValueError(f"n_bits must be <= 40 (item keys are int64), got {n_bits}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    rng = np.random.default_rng(seed)
    subsets_TK = np.stack([rng.choice(n_bits, size=k, replace=False) for _ in range(n_tasks)])
    probs = zipf_probs(n_tasks, alpha)

    test_task_N = np.repeat(np.arange(n_tasks), n_test_per_subtask)
    test_bits_NB = rng.integers(0, 2, size=(test_task_N.size, n_bits))
    test_keys, first = np.unique(_keys(test_task_N, test_bits_NB), return_index=True)
    test_task_N, test_bits_NB = test_task_N[np.sort(first)], test_bits_NB[np.sort(first)]

    train_task_N = rng.choice(n_tasks, size=n_train, p=probs)
    train_bits_NB = rng.integers(0, 2, size=(n_train, n_bits))
    keep = ~np.isin(_keys(train_task_N, train_bits_NB), test_keys)

    return Task(
        name="sparse-parity", vocab_size=CODE0 + n_tasks, seq_len=n_bits + 3,
        train=_split(train_task_N[keep], train_bits_NB[keep], subsets_TK, n_tasks),
        test=_split(test_task_N, test_bits_NB, subsets_TK, n_tasks),
        tokens={"0": BIT0, "1": BIT1, "=": EQUALS, "task code i": CODE0},
        description=f"{n_tasks} subtasks, parity of k={k} of {n_bits} bits, "
                    f"Zipf exponent {alpha + 1:.2f}; test balanced over subtasks",
        params=dict(seed=seed, n_tasks=n_tasks, n_bits=n_bits, k=k, alpha=alpha,
                    n_train=n_train, n_test_per_subtask=n_test_per_subtask,
                    subsets=subsets_TK.tolist()),
        subtask_probs=probs, chance_fn=parity_chance)


def parity_features(split: TaskSplit, n_tasks: int) -> np.ndarray:
    """float32 [N, n_tasks + n_bits]: one-hot subtask code then the bits (an MLP's input)."""
    n_bits = split.seq_len - 3
    code_N = split.tokens_NT[:, 0] - CODE0
    onehot_NT = np.eye(n_tasks, dtype=np.float32)[code_N]
    return np.concatenate([onehot_NT, split.tokens_NT[:, 1:1 + n_bits].astype(np.float32)], 1)
