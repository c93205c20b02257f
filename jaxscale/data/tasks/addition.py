"""Multi-digit addition: ``a + b =`` → the digits of the sum.

Operands are uniform ``n_digits``-digit numbers (leading zeros allowed, written zero-padded), the
sum is written with ``n_digits + 1`` digits, most significant first or, with ``reverse=True``,
least significant first (the order in which carries are computed; Lee et al. 2023 find it learns
with far fewer samples). Every answer has ``n_digits + 1`` tokens, so the digit count is the
knob L of the p^L mechanism. Test (a, b) pairs never occur in training (ordered pairs: ``b+a`` may
be a training item when ``a+b`` is a test item, as in the literature).
Row: ``a_1 … a_n + b_1 … b_n = s_1 … s_{n+1}`` (T = 3n + 3), tokens from ``DIGIT_TOKENS``.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxscale.data.tasks.base import (
    DIGIT_TOKENS, DIGIT_VOCAB, NumberCodec, Task, TaskSplit, check_bool, check_positive_int, digits_of,
    disjoint_keys, tolerance_window,
)

__all__ = ["addition", "addition_chance"]

MAX_DIGITS = 9  # keys a·10^n + b must fit in int64


def _addition_split(a_N, b_N, n_digits: int, reverse: bool) -> TaskSplit:
    n = a_N.shape[0]
    sum_N = a_N + b_N
    tokens_NT = np.concatenate([
        digits_of(a_N, n_digits), np.full((n, 1), DIGIT_TOKENS["+"]),
        digits_of(b_N, n_digits), np.full((n, 1), DIGIT_TOKENS["="]),
        digits_of(sum_N, n_digits + 1, reverse=reverse)], axis=1)
    return TaskSplit(
        name="addition", tokens_NT=tokens_NT, answer_start_N=np.full(n, 2 * n_digits + 2),
        answer_len_N=np.full(n, n_digits + 1), vocab_size=DIGIT_VOCAB,
        pad_id=DIGIT_TOKENS["<pad>"], target_value_N=sum_N,
        codec=NumberCodec("digits", reversed=reverse))


def addition_chance(n_digits: int, tolerance: float = 2.0) -> dict[str, float]:
    """Chance levels of ``n_digits``-digit addition, in closed form (B = 10^n_digits).

    The answers are not uniform: a + b with a, b uniform in [0, B) is triangular on
    [0, 2B − 2], the sum s = B − 1 being the most common (B of the B² pairs). The best constant
    guess therefore scores

    * exact match 1/B = 10^−n_digits (not 10^−(n_digits+1), the uniform guess over the
      n_digits + 1 answer digits, which would understate the floor tenfold);
    * per-token accuracy (n_digits/10 + (B + 1)/(2B)) / (n_digits + 1): each of the n_digits
      low digits of the sum is exactly uniform (a's digit there is uniform and independent of
      the rest), while the leading digit is the carry, 0 in (B + 1)/(2B) of the pairs
      (B(B − 1)/2 pairs carry);
    * ±tolerance match Σ_{|j| ≤ w} (B − |j|)/B² with w = floor(tolerance), the window centred on
      the mode, which is best for a symmetric unimodal distribution.

    Test pairs are a uniform draw of the B² pairs, so these are the expected test scores; the
    digit order (``reverse``) changes none of them.
    """
    base = 10 ** n_digits
    w = tolerance_window(tolerance, base)  # -1: matches nothing (NaN, negative)
    m = min(w, base - 1)
    within = 0.0 if w < 0 else (base + 2 * (m * base - m * (m + 1) // 2)) / base ** 2
    token = (n_digits / 10 + (base + 1) / (2 * base)) / (n_digits + 1)
    return {"exact_match": 1.0 / base, "tolerance_match": within, "token_accuracy": token}


def addition(seed: int = 0, n_digits: int = 3, reverse: bool = False, n_train: int = 20_000,
             n_test: int = 1000) -> Task:
    """``n_digits``-digit addition with a held-out test set of (a, b) pairs."""
    n_digits = check_positive_int("n_digits", n_digits)
    reverse = check_bool("reverse", reverse)
    if n_digits > MAX_DIGITS:
        raise ValueError(f"n_digits must be <= {MAX_DIGITS}, got {n_digits}")
    n_train = check_positive_int("n_train", n_train)
    n_test = check_positive_int("n_test", n_test)
    base = 10 ** n_digits
    rng = np.random.default_rng(seed)
    train_keys, test_keys = disjoint_keys(rng, base * base, n_train, n_test)
    split = lambda k: _addition_split(k // base, k % base, n_digits, reverse)  # noqa: E731
    return Task(
        name="addition", vocab_size=DIGIT_VOCAB, seq_len=3 * n_digits + 3,
        train=split(train_keys), test=split(test_keys), tokens=dict(DIGIT_TOKENS),
        description=f"{n_digits}-digit a+b= -> {n_digits + 1}-digit sum "
                    f"({'reversed, least significant first' if reverse else 'plain'})",
        params=dict(seed=seed, n_digits=n_digits, reverse=reverse, n_train=n_train,
                    n_test=n_test),
        chance_fn=functools.partial(addition_chance, n_digits))
