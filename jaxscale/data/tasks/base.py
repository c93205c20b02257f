"""The common data layout of every synthetic task, and the helpers that every task shares.

A task item is one fixed-length token row for a causal language model:
``[prompt tokens …][answer tokens …][pad …]``. The model is trained (and scored) only on the
answer: position ``t`` predicts token ``t + 1``, so the loss mask is 1 at the positions *before*
each answer token (:func:`loss_mask`). Everything the evaluation and the metrics need travels in
the :class:`TaskSplit` itself, so evaluation never needs to know which task produced a split.

Numbers written as tokens are described by a :class:`NumberCodec`, which lets the evaluation turn
a greedy answer back into a number (the notebook's ±2 tolerance match needs that).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Callable, Mapping

import numpy as np

__all__ = [
    "NumberCodec", "TaskSplit", "Task", "loss_mask", "count_overlap", "check_disjoint",
    "disjoint_keys", "digits_of", "check_positive_int", "check_bool", "DIGIT_TOKENS", "DIGIT_VOCAB",
    "CHANCE_METRICS", "integer_answer_chance", "tolerance_window",
]

# The small vocabulary shared by the digit tasks (fixed arithmetic sequences, addition):
# digits 0-9 are tokens 0-9, then the operator and separator tokens and a pad.
DIGIT_TOKENS: dict[str, int] = {**{str(d): d for d in range(10)},
                                "+": 10, "=": 11, ",": 12, "<pad>": 13}
DIGIT_VOCAB = 14

# The proportions whose chance level a task states (``Task.chance_levels``): the ones the
# emergence report fits a sigmoid to, whose floor is that level.
CHANCE_METRICS = ("exact_match", "tolerance_match", "token_accuracy")


def check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    """Validate an integer knob; the error names the argument and its bad value."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or int(value) != value or value < minimum):  # a string ("abc" from --task-arg) or NaN too
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """Validate a yes/no knob: ``--task-arg reverse=maybe`` arrives as the string "maybe", which
    Python would read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class NumberCodec:
    """How a number is written as answer tokens.

    ``kind="offset"``: one token, ``token = number + offset`` (the notebook's scheme); with
    ``n_values``, only the numbers ``0 .. n_values-1`` are written this way, and any other token
    (an operator, a separator) decodes to NaN, so that it never counts as a near miss.
    ``kind="digits"``: one token per decimal digit, digit ``d`` written as token ``digit0 + d``,
    zero-padded to the answer length, most significant digit first unless ``reversed``.
    """

    kind: str
    offset: int = 0
    digit0: int = 0
    reversed: bool = False
    n_values: int | None = None

    def __post_init__(self):
        if self.kind not in ("offset", "digits"):
            raise ValueError(f"kind must be 'offset' or 'digits', got {self.kind!r}")
        if self.n_values is not None and (self.kind != "offset" or self.n_values < 1):
            raise ValueError(f"n_values must be >= 1 and only with kind 'offset', got {self.n_values!r} "
                             f"with kind {self.kind!r}")

    def decode(self, tokens_NA: np.ndarray, length_N: np.ndarray) -> np.ndarray:
        """Numbers written by ``tokens_NA`` (first ``length_N`` tokens of each row) as float64;
        NaN where a token is not a digit of this codec (a model may emit any token)."""
        tokens_NA = np.asarray(tokens_NA, np.int64)
        length_N = np.asarray(length_N, np.int64)
        if self.kind == "offset":
            value_N = (tokens_NA[:, 0] - self.offset).astype(np.float64)
            if self.n_values is None:
                return value_N
            return np.where((value_N >= 0) & (value_N < self.n_values), value_N, np.nan)
        n, a = tokens_NA.shape
        digits_NA = tokens_NA - self.digit0
        valid_NA = (digits_NA >= 0) & (digits_NA <= 9)
        inside_NA = np.arange(a)[None, :] < length_N[:, None]
        if self.reversed:  # least significant first: position i has weight 10^i
            power_NA = np.broadcast_to(np.arange(a)[None, :], (n, a))
        else:  # most significant first: position i has weight 10^(L-1-i)
            power_NA = length_N[:, None] - 1 - np.arange(a)[None, :]
        weight_NA = np.where(inside_NA, 10.0 ** np.maximum(power_NA, 0), 0.0)
        value_N = np.sum(np.where(inside_NA, digits_NA, 0) * weight_NA, axis=1)
        ok_N = np.all(valid_NA | ~inside_NA, axis=1)
        return np.where(ok_N, value_N, np.nan)


@dataclasses.dataclass(frozen=True, eq=False)
class TaskSplit:
    """One split (train or test) of a task, as fixed-shape arrays.

    tokens_NT:       int32 [N, T], prompt then answer then ``pad_id``.
    answer_start_N:  int32 [N], index of the first answer token (>= 1: a prompt is never empty).
    answer_len_N:    int32 [N], number of answer tokens (>= 1).
    target_value_N:  float64 [N] numeric answer, or None when the answer is not a number.
    subtask_N:       int32 [N] subtask label (sparse parity), or None.
    codec:           how numbers are written (for decoding greedy answers), or None.
    """

    name: str
    tokens_NT: np.ndarray
    answer_start_N: np.ndarray
    answer_len_N: np.ndarray
    vocab_size: int
    pad_id: int
    target_value_N: np.ndarray | None = None
    subtask_N: np.ndarray | None = None
    codec: NumberCodec | None = None

    def __post_init__(self):
        tokens_NT = np.asarray(self.tokens_NT, np.int32)
        start_N = np.asarray(self.answer_start_N, np.int32)
        len_N = np.asarray(self.answer_len_N, np.int32)
        if tokens_NT.ndim != 2:
            raise ValueError(f"tokens_NT must be 2-D [N, T], got shape {tokens_NT.shape}")
        n, t = tokens_NT.shape
        if start_N.shape != (n,) or len_N.shape != (n,):
            raise ValueError(f"answer_start_N and answer_len_N must have shape ({n},), got "
                             f"{start_N.shape} and {len_N.shape}")
        if n and (start_N.min() < 1 or len_N.min() < 1 or (start_N + len_N).max() > t):
            raise ValueError("answers must lie inside the rows after a non-empty prompt "
                             "(1 <= answer_start, answer_start + answer_len <= T)")
        if n and (tokens_NT.min() < 0 or tokens_NT.max() >= self.vocab_size):
            raise ValueError(f"tokens must lie in [0, vocab_size={self.vocab_size})")
        object.__setattr__(self, "tokens_NT", tokens_NT)
        object.__setattr__(self, "answer_start_N", start_N)
        object.__setattr__(self, "answer_len_N", len_N)
        if self.target_value_N is not None:
            object.__setattr__(self, "target_value_N", np.asarray(self.target_value_N, np.float64))
        if self.subtask_N is not None:
            object.__setattr__(self, "subtask_N", np.asarray(self.subtask_N, np.int32))

    @property
    def num_examples(self) -> int:
        return int(self.tokens_NT.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens_NT.shape[1])

    @property
    def max_answer_len(self) -> int:
        return int(self.answer_len_N.max()) if self.num_examples else 0

    def answers_NA(self) -> np.ndarray:
        """Gold answer tokens [N, A] (A = longest answer), -1 beyond each answer's length."""
        a = self.max_answer_len
        idx_NA = self.answer_start_N[:, None] + np.arange(a)[None, :]
        inside_NA = np.arange(a)[None, :] < self.answer_len_N[:, None]
        gathered = np.take_along_axis(self.tokens_NT, np.minimum(idx_NA, self.seq_len - 1), 1)
        return np.where(inside_NA, gathered, -1).astype(np.int32)

    def take(self, index) -> "TaskSplit":
        """The examples at ``index`` (any numpy index), as a new split."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return dataclasses.replace(
            self, tokens_NT=self.tokens_NT[index], answer_start_N=self.answer_start_N[index],
            answer_len_N=self.answer_len_N[index], target_value_N=pick(self.target_value_N),
            subtask_N=pick(self.subtask_N))


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A named task: its vocabulary, row length, train and test splits, and a token legend.

    ``subtask_probs`` is the training distribution over subtasks (sparse parity) so that a
    population mean can be formed from a test set that is balanced over subtasks.
    ``overlap_by_design`` is True only for the notebook's task, whose test set repeats training
    items (its documented flaw, kept for comparison).
    ``chance_fn(tolerance)`` gives the task's chance level of each metric in ``CHANCE_METRICS``
    (read it through :meth:`chance_levels`); None where the task cannot say.
    """

    name: str
    vocab_size: int
    seq_len: int
    train: TaskSplit
    test: TaskSplit
    tokens: Mapping[str, int]
    description: str
    params: Mapping[str, object] = dataclasses.field(default_factory=dict)
    subtask_probs: np.ndarray | None = None
    overlap_by_design: bool = False
    chance_fn: Callable[[float], Mapping[str, float]] | None = None

    def chance_levels(self, tolerance: float = 2.0) -> dict[str, float]:
        """The score of the best *constant* answer, per metric of ``CHANCE_METRICS``: what a
        model that ignores the prompt reaches by learning only which answers are common.

        It is the floor of the emergence fits (a sigmoid held at 0 reads a flat curve at chance
        as a rise from 0: sparse parity's one-bit answer scores 1/2 by guessing) and the level a
        study's threshold must lie above. Why the best constant guess and not a uniform guess
        over the answer alphabet: where answers are not uniform (the sum of two numbers is
        triangular) a model learns the common answers long before the task, so only the best
        constant is an honest floor; where they are uniform the two agree.

        Each task states it for the *population* its splits are drawn from (every split here is a
        uniform draw of items from it, so this is the expected test score of the best constant
        guess), in closed form or by an exact count, not from the training split: the largest
        answer count in a finite sample overstates the mode's frequency (a maximum of noisy
        counts). ``tolerance`` is the tolerance match's ±tolerance. A metric a task does not
        state, or a task without ``chance_fn``, reads 0.
        """
        levels = dict.fromkeys(CHANCE_METRICS, 0.0)
        if self.chance_fn is not None:
            levels.update({k: float(v) for k, v in self.chance_fn(tolerance).items()})
        return levels


def loss_mask(split: TaskSplit) -> np.ndarray:
    """float32 [N, T] mask over *target* positions: 1 at position t iff token t+1 is an answer token.

    A causal LM's logits at position t predict token t+1, so the answer tokens at positions
    ``start … start+len-1`` are predicted from positions ``start-1 … start+len-2``. The last column
    is always 0 (it predicts nothing inside the row).
    """
    t_T = np.arange(split.seq_len)
    first_N = split.answer_start_N - 1
    mask_NT = (t_T[None, :] >= first_N[:, None]) & (
        t_T[None, :] < (first_N + split.answer_len_N)[:, None])
    return mask_NT.astype(np.float32)


def _row_keys(split: TaskSplit) -> set[bytes]:
    """Each row's identity: its tokens up to the end of its answer (padding ignored)."""
    ends_N = split.answer_start_N + split.answer_len_N
    return {row[:end].tobytes() for row, end in zip(split.tokens_NT, ends_N)}


def count_overlap(train: TaskSplit, test: TaskSplit) -> int:
    """How many test rows (prompt and answer) also occur in the training split."""
    train_keys = _row_keys(train)
    ends_N = test.answer_start_N + test.answer_len_N
    return sum(row[:end].tobytes() in train_keys for row, end in zip(test.tokens_NT, ends_N))


def check_disjoint(task: Task) -> None:
    """Raise ValueError when a test item of ``task`` also occurs in its training split."""
    n = count_overlap(task.train, task.test)
    if n:
        raise ValueError(f"task {task.name!r}: {n} of {task.test.num_examples} test items "
                         "also occur in the training split")


def disjoint_keys(rng: np.random.Generator, space: int, n_train: int, n_test: int,
                  max_enumerate: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Distinct integer item keys in ``[0, space)`` for test and train, the two sets disjoint.

    Small spaces are permuted outright; large ones are sampled with replacement and de-duplicated
    (rejection), which is exact and cheap while ``n_train + n_test`` is far below ``space``.
    Train may come back shorter than ``n_train`` only when the space is exhausted.
    """
    if n_test >= space:
        raise ValueError(f"n_test={n_test} leaves no items for training (only {space} exist)")
    if space <= max_enumerate:
        perm = rng.permutation(space)
        return perm[n_test:n_test + n_train], perm[:n_test]
    need = n_train + n_test
    keys = np.unique(rng.integers(0, space, size=int(need * 1.2) + 16, dtype=np.int64))
    while keys.size < need:
        more = rng.integers(0, space, size=need, dtype=np.int64)
        keys = np.unique(np.concatenate([keys, more]))
    keys = rng.permutation(keys)[:need]
    return keys[n_test:], keys[:n_test]


def digits_of(values_N: np.ndarray, width: int, reverse: bool = False) -> np.ndarray:
    """Decimal digits [N, width] of non-negative integers, zero-padded, most significant first
    (least significant first when ``reverse``)."""
    values_N = np.asarray(values_N, np.int64)
    if values_N.size and (values_N.min() < 0 or values_N.max() >= 10 ** width):
        raise ValueError(f"values must lie in [0, 10**{width}) to be written with {width} digits")
    power_W = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits_NW = (values_N[:, None] // power_W[None, :]) % 10
    return digits_NW[:, ::-1] if reverse else digits_NW


def tolerance_window(tolerance: float, span: int) -> int:
    """How many integers either side of a guess a ±``tolerance`` match accepts, at most ``span``
    (the answers' range: a wider window accepts them all); -1 where it accepts nothing. As the
    metric scores it (``metrics.tolerance_match``: |d| <= tolerance): a NaN or negative
    tolerance (-inf included) matches nothing, +inf or a huge one everything (clamped, so no
    integer overflow downstream)."""
    if math.isnan(tolerance) or tolerance < 0:
        return -1
    return span if tolerance >= span else math.floor(tolerance)


def integer_answer_chance(values_V, weights_V, tolerance: float, *, width: int | None = None,
                          guesses: tuple[int, int] | None = None) -> dict[str, float]:
    """Chance levels of a task whose answer is an integer, from the answer's distribution.

    ``values_V`` are the integer answers and ``weights_V`` their probabilities (or counts; they
    are normalised). The best constant guess g scores:

    * exact match: the largest probability (the mode's frequency);
    * tolerance match: the most probability in a window |v − g| ≤ tolerance, over the guesses
      the codec can write (``guesses``, inclusive; default: any integer); a predicted number is
      an integer, so the window holds floor(tolerance) values on each side;
    * per-token accuracy: with ``width`` (answers written as ``width`` decimal digits) the mean
      over positions of the most frequent digit's share at that position (each position's
      guess is chosen alone, and every answer has ``width`` tokens); without it the answer is
      one token, so the same as exact match. The digit order does not change the mean.
    """
    values_V = np.asarray(values_V, np.int64).reshape(-1)
    weights_V = np.asarray(weights_V, np.float64).reshape(-1)
    if values_V.shape != weights_V.shape or values_V.size == 0 or np.any(weights_V < 0):
        raise ValueError("values and weights must be non-empty, of one length, weights >= 0")
    lo, hi = int(values_V.min()), int(values_V.max())
    w_D = np.bincount(values_V - lo, weights=weights_V, minlength=hi - lo + 1)
    total = w_D.sum()  # normalised at the end: exact ratios of counts, without round-off
    if not total > 0:
        raise ValueError("weights must not all be 0")
    exact = float(w_D.max() / total)
    # a NaN tolerance matches nothing (|d| <= nan is false), an infinite one everything
    w = tolerance_window(tolerance, hi - lo)
    if w < 0:
        within = 0.0
    else:
        g_lo, g_hi = (lo - w, hi + w) if guesses is None else guesses
        g_lo, g_hi = max(g_lo, lo - w), min(g_hi, hi + w)
        cum = np.concatenate([[0.0], np.cumsum(w_D)])
        g_G = np.arange(g_lo, g_hi + 1)
        a_G = np.clip(g_G - w - lo, 0, w_D.size)
        b_G = np.clip(g_G + w - lo + 1, 0, w_D.size)
        within = float(np.max(cum[b_G] - cum[a_G]) / total) if g_G.size else 0.0
    token = exact
    if width is not None:
        v_D = np.arange(lo, hi + 1)
        shares = [np.bincount((v_D // 10 ** i) % 10, weights=w_D, minlength=10).max()
                  for i in range(width)]
        token = float(np.sum(shares) / (width * total))
    return {"exact_match": exact, "tolerance_match": min(within, 1.0), "token_accuracy": token}
