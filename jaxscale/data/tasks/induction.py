"""In-context copying (induction): a random token sequence, a separator, then the same sequence.

Row ``x_1 … x_m SEP x_1 … x_m``; the answer is the second copy (m tokens). The symbols of one row
are distinct (drawn without replacement), so every answer token is determined by finding the
previous occurrence of the current token and copying its successor: the induction-head
mechanism (Olsson et al. 2022), which a one-layer attention model cannot form and two layers
can. Symbols are tokens ``0 … n_symbols-1``; ``SEP`` is ``n_symbols``. Test rows never occur in
training (rows are compared whole).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from jaxscale.data.tasks.base import Task, TaskSplit, check_positive_int

__all__ = ["induction", "induction_chance"]


def induction_chance(n_symbols: int, copy_len: int, tolerance: float = 2.0) -> dict[str, float]:
    """Chance levels of in-context copying: 1/n_symbols per token, 1/(n_symbols)_copy_len (the
    falling factorial n·(n−1)···(n−m+1)) for exact match.

    A row's copy is a uniformly random arrangement of ``copy_len`` distinct symbols, so every
    position is uniform over the ``n_symbols`` symbols (not over the vocabulary, which has the
    separator too) and every arrangement of distinct symbols has the same probability; a
    constant answer with a repeated symbol never matches. Answers are not numbers (no
    tolerance match).
    """
    return {"exact_match": 1.0 / math.perm(n_symbols, copy_len), "token_accuracy": 1.0 / n_symbols}


def _distinct_rows(rng: np.random.Generator, n: int, n_symbols: int, m: int) -> np.ndarray:
    """n rows of m distinct symbols each (a random prefix of a permutation per row)."""
    return np.argsort(rng.random((n, n_symbols)), axis=1)[:, :m]


def induction(seed: int = 0, n_symbols: int = 32, copy_len: int = 10, n_train: int = 20_000,
              n_test: int = 1000) -> Task:
    """In-context copying of ``copy_len`` distinct symbols out of ``n_symbols``."""
    n_symbols = check_positive_int("n_symbols", n_symbols, minimum=2)
    copy_len = check_positive_int("copy_len", copy_len)
    n_train = check_positive_int("n_train", n_train)
    n_test = check_positive_int("n_test", n_test)
    if copy_len > n_symbols:
        raise ValueError(f"copy_len={copy_len} must be <= n_symbols={n_symbols} "
                         "(symbols in a row are distinct)")
    sep = n_symbols
    rng = np.random.default_rng(seed)
    test_MK = np.unique(_distinct_rows(rng, n_test, n_symbols, copy_len), axis=0)
    test_keys = {r.tobytes() for r in test_MK}
    train_MK = _distinct_rows(rng, n_train, n_symbols, copy_len)
    keep = np.array([r.tobytes() not in test_keys for r in train_MK], bool)
    train_MK = train_MK[keep]

    def split(seq_NK):
        n = seq_NK.shape[0]
        tokens_NT = np.concatenate([seq_NK, np.full((n, 1), sep), seq_NK], axis=1)
        return TaskSplit(
            name="induction", tokens_NT=tokens_NT, answer_start_N=np.full(n, copy_len + 1),
            answer_len_N=np.full(n, copy_len), vocab_size=n_symbols + 1, pad_id=sep)

    return Task(
        name="induction", vocab_size=n_symbols + 1, seq_len=2 * copy_len + 1,
        train=split(train_MK), test=split(rng.permutation(test_MK)),
        tokens={"symbol s": 0, "SEP": sep},
        description=f"copy {copy_len} distinct symbols (of {n_symbols}) after a separator",
        params=dict(seed=seed, n_symbols=n_symbols, copy_len=copy_len, n_train=n_train,
                    n_test=n_test),
        chance_fn=functools.partial(induction_chance, n_symbols, copy_len))
