"""Modular addition (the grokking task of Power et al. 2022 and Nanda et al. 2023).

Row ``a + b =`` → ``(a + b) mod p``: numbers are tokens ``0 … p-1``, then ``+`` (p) and ``=``
(p + 1); the answer is one token. All p² ordered pairs are split once: a fraction
``train_fraction`` trains, the rest is the test set. Its transition is over training steps and
the data fraction, not model size, which is why the emergence analysis takes any scale axis.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxscale.data.tasks.base import (
    NumberCodec, Task, TaskSplit, check_positive_int, integer_answer_chance,
)

__all__ = ["modular_addition", "modular_chance"]


def modular_chance(p: int, tolerance: float = 2.0) -> dict[str, float]:
    """Chance levels of modular addition: 1/p for exact match and per-token accuracy (one token),
    min(2·floor(tolerance) + 1, p)/p for the ±tolerance match.

    Over all p² pairs every residue c is the answer of exactly p pairs (b = c − a for each a),
    so answers are exactly uniform over 0 … p−1 and each split, a uniform draw of pairs, has
    expected score 1/p for every constant guess. The window of a tolerance match is not
    modular (|predicted − c| ≤ tolerance on the integers), and a guess must be a number the
    codec decodes (0 … p−1).
    """
    return integer_answer_chance(np.arange(p), np.ones(p), tolerance, guesses=(0, p - 1))


def modular_addition(seed: int = 0, p: int = 97, train_fraction: float = 0.3) -> Task:
    """All pairs (a, b) ∈ [0, p)², ``train_fraction`` of them for training, the rest for test."""
    p = check_positive_int("p", p, minimum=2)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
    plus, equals = p, p + 1
    rng = np.random.default_rng(seed)
    keys = rng.permutation(p * p)
    n_train = int(round(train_fraction * p * p))
    if n_train < 1 or n_train >= p * p:
        raise ValueError(f"train_fraction={train_fraction} leaves an empty split for p={p}")

    def split(k):
        a_N, b_N = k // p, k % p
        c_N = (a_N + b_N) % p
        n = k.shape[0]
        tokens_NT = np.stack([a_N, np.full(n, plus), b_N, np.full(n, equals), c_N], axis=1)
        return TaskSplit(
            name="modular-addition", tokens_NT=tokens_NT, answer_start_N=np.full(n, 4),
            answer_len_N=np.ones(n), vocab_size=p + 2, pad_id=equals, target_value_N=c_N,
            codec=NumberCodec("offset", offset=0, n_values=p))

    return Task(
        name="modular-addition", vocab_size=p + 2, seq_len=5,
        train=split(keys[:n_train]), test=split(keys[n_train:]),
        tokens={"number n": 0, "+": plus, "=": equals},
        description=f"a + b = (a+b) mod {p}; {train_fraction:.0%} of the {p * p} pairs train",
        params=dict(seed=seed, p=p, train_fraction=train_fraction),
        chance_fn=functools.partial(modular_chance, p))
