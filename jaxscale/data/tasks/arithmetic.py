"""Arithmetic sequences: the notebook's task as it is, and a fixed version that can be learned.

``notebook-arithmetic`` reproduces the teaching notebook's emergence task for comparison: start
a ∈ [1, 14], step d ∈ [1, 3], the four terms a, a+d, a+2d, a+3d as tokens ``number + 10``
(vocabulary 100), and the fifth term as a one-token answer. Train and test are drawn
independently from the same 42 (a, d) pairs, so **the test set repeats the training set** (its
documented flaw: it measures memorisation); ``Task.overlap_by_design`` is True and
:func:`~jaxscale.data.tasks.base.count_overlap` is > 0 for it.

``arithmetic`` fixes that: wider ranges, every (a, d) pair is one item and the test pairs are held
out of training, and every number is written as fixed-width decimal digits, so the answer has
several tokens (the length that makes exact match sharp, Schaeffer et al. 2023).
Row: ``t1 , t2 , t3 , t4 = t5`` with each term as ``width`` digits (digit tokens, see
``DIGIT_TOKENS``).
"""

from __future__ import annotations

import functools

import numpy as np

from jaxscale.data.tasks.base import (
    DIGIT_TOKENS, DIGIT_VOCAB, NumberCodec, Task, TaskSplit, check_bool, check_positive_int, digits_of,
    disjoint_keys, integer_answer_chance,
)

__all__ = ["notebook_arithmetic", "arithmetic", "sequence_chance"]

NOTEBOOK_OFFSET = 10  # the notebook adds 10 to every number "to avoid special tokens"
NOTEBOOK_VOCAB = 100
N_TERMS = 4           # terms shown; the answer is the next one


def _fifth_term_counts(starts: range, steps: range) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of the fifth term start + 4·step over every (start, step) pair of the
    two ranges, counted exactly with one difference array (one range of values per step)."""
    lo, size = starts[0] + N_TERMS * steps[0], len(starts) + N_TERMS * (len(steps) - 1)
    diff = np.zeros(size + 1, np.int64)
    first_D = np.arange(len(steps)) * N_TERMS  # each step's range of fifth terms, from lo
    np.add.at(diff, first_D, 1)
    np.add.at(diff, first_D + len(starts), -1)
    return lo + np.arange(size), np.cumsum(diff)[:size]


def sequence_chance(starts: range, steps: range, tolerance: float = 2.0, *,
                    width: int | None = None, guesses: tuple[int, int] | None = None
                    ) -> dict[str, float]:
    """Chance levels of an arithmetic-sequence task whose items are the (start, step) pairs of
    ``starts`` × ``steps``, each equally likely, and whose answer is the fifth term.

    The fifth term start + 4·step is not uniform (middle values are reached by every step, the
    extremes by one), so the floor is the best constant guess's score, counted exactly over the
    pairs (``integer_answer_chance``): the notebook's 42 pairs give exact match 3/42 and ±2
    match 15/42 (guess 16, the 35.7% of its audit). Both tasks draw their test items uniformly
    from these pairs (the notebook with replacement, ``arithmetic`` holding pairs out at
    random), so these are the expected test scores. ``width``: answers written as that many
    digits (per-token accuracy per digit); ``guesses``: the numbers the codec can write.
    """
    values, counts = _fifth_term_counts(starts, steps)
    return integer_answer_chance(values, counts, tolerance, width=width, guesses=guesses)


def _notebook_split(rng: np.random.Generator, n: int) -> TaskSplit:
    start_N = rng.integers(1, 15, size=n)   # the notebook's randint(1, 15): 1..14
    step_N = rng.integers(1, 4, size=n)     # randint(1, 4): 1..3
    terms_NK = start_N[:, None] + np.arange(N_TERMS + 1)[None, :] * step_N[:, None]
    return TaskSplit(
        name="notebook-arithmetic", tokens_NT=terms_NK + NOTEBOOK_OFFSET,
        answer_start_N=np.full(n, N_TERMS), answer_len_N=np.ones(n),
        vocab_size=NOTEBOOK_VOCAB, pad_id=0, target_value_N=terms_NK[:, -1],
        codec=NumberCodec("offset", offset=NOTEBOOK_OFFSET))


def notebook_arithmetic(seed: int = 0, n_train: int = 300, n_test: int = 100) -> Task:
    """The notebook's arithmetic-sequence task, flaw included (train and test overlap)."""
    n_train = check_positive_int("n_train", n_train)
    n_test = check_positive_int("n_test", n_test)
    rng = np.random.default_rng(seed)
    train, test = _notebook_split(rng, n_train), _notebook_split(rng, n_test)
    return Task(
        name="notebook-arithmetic", vocab_size=NOTEBOOK_VOCAB, seq_len=N_TERMS + 1,
        train=train, test=test, tokens={"number n": NOTEBOOK_OFFSET, "<pad>": 0},
        description="the notebook's task: 4 terms (start 1..14, step 1..3) -> 5th term, "
                    "token = number + 10; only 42 distinct items, test repeats train",
        params=dict(seed=seed, n_train=n_train, n_test=n_test), overlap_by_design=True,
        chance_fn=functools.partial(sequence_chance, range(1, 15), range(1, 4),
                                    guesses=(-NOTEBOOK_OFFSET, NOTEBOOK_VOCAB - 1 - NOTEBOOK_OFFSET)))


def _arithmetic_split(start_N, step_N, width: int, reverse: bool) -> TaskSplit:
    n = start_N.shape[0]
    terms_NK = start_N[:, None] + np.arange(N_TERMS + 1)[None, :] * step_N[:, None]
    prompt_digits = [digits_of(terms_NK[:, i], width) for i in range(N_TERMS)]
    sep_N1 = np.full((n, 1), DIGIT_TOKENS[","])
    pieces = []
    for i, d_NW in enumerate(prompt_digits):
        pieces.append(d_NW)
        pieces.append(sep_N1 if i < N_TERMS - 1 else np.full((n, 1), DIGIT_TOKENS["="]))
    pieces.append(digits_of(terms_NK[:, -1], width, reverse=reverse))
    tokens_NT = np.concatenate(pieces, axis=1)
    start = N_TERMS * (width + 1)
    return TaskSplit(
        name="arithmetic", tokens_NT=tokens_NT, answer_start_N=np.full(n, start),
        answer_len_N=np.full(n, width), vocab_size=DIGIT_VOCAB, pad_id=DIGIT_TOKENS["<pad>"],
        target_value_N=terms_NK[:, -1], codec=NumberCodec("digits", reversed=reverse))


def arithmetic(seed: int = 0, max_start: int = 400, max_step: int = 24, n_test: int = 1000,
               n_train: int | None = None, reverse: bool = False) -> Task:
    """Arithmetic sequences with held-out (start, step) pairs and multi-digit answers.

    start ∈ [0, max_start), step ∈ [1, max_step]; each pair is one item. ``n_test`` pairs are held
    out; training uses the remaining pairs (all of them unless ``n_train`` is given). Numbers are
    written with as many digits as the largest fifth term needs (3 with the defaults).
    """
    max_start = check_positive_int("max_start", max_start)
    reverse = check_bool("reverse", reverse)
    max_step = check_positive_int("max_step", max_step)
    n_test = check_positive_int("n_test", n_test)
    space = max_start * max_step
    if n_train is None:
        n_train = space - n_test
    n_train = check_positive_int("n_train", n_train)
    rng = np.random.default_rng(seed)
    train_keys, test_keys = disjoint_keys(rng, space, n_train, n_test)
    width = len(str(max_start - 1 + N_TERMS * max_step))

    def split(keys):
        return _arithmetic_split(keys // max_step, keys % max_step + 1, width, reverse)

    return Task(
        name="arithmetic", vocab_size=DIGIT_VOCAB, seq_len=N_TERMS * (width + 1) + width,
        train=split(train_keys), test=split(test_keys), tokens=dict(DIGIT_TOKENS),
        description=f"4 terms (start 0..{max_start - 1}, step 1..{max_step}) as {width}-digit "
                    f"numbers -> 5th term ({'reversed' if reverse else 'plain'} digits); "
                    "test (start, step) pairs held out of training",
        params=dict(seed=seed, max_start=max_start, max_step=max_step, n_test=n_test,
                    n_train=n_train, reverse=reverse, width=width),
        chance_fn=functools.partial(sequence_chance, range(max_start), range(1, max_step + 1),
                                    width=width, guesses=(0, 10 ** width - 1)))
