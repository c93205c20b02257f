"""What a training run reads: a ``TrainData`` built from a corpus or from a synthetic task.

Both kinds give the compiled training loop the same thing: device arrays plus a pure
``sampler(arrays, key, step) -> (inputs_BT, targets_BT, weights_BT)`` that draws global step
``step``'s batch inside the loop, and fixed held-out sets ``(examples_M_T1, weights_M_T)`` for
validation and test. ``weights`` mark the target positions that count in the loss: all of them
for text, only the answer tokens for a task.

* Corpus: random windows of ``seq_len + 1`` tokens (``stream.sample_batch``); held-out sets are
  evenly spaced windows of the validation and test splits.
* Task: a fixed training set visited in epochs, shuffled per epoch from the data seed (or in
  order, as the notebook does); held-out sets are the task's test split.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.data.corpus import Corpus
from jaxscale.data.stream import eval_windows, sample_batch
from jaxscale.rng import fold, permutation


@dataclass(frozen=True)
class StreamSampler:
    """Random windows of a token stream (``arrays['tokens']``). A frozen dataclass, so equal
    samplers hash equal and the compiled training programs built on them are reused."""

    batch_size: int
    seq_len: int

    def __call__(self, arrays, key, step):
        inputs, targets = sample_batch(arrays["tokens"], key, step, self.batch_size, self.seq_len)
        return inputs, targets, None


@dataclass(frozen=True)
class ExampleSampler:
    """Epochs over a fixed set of ``n`` rows (``arrays['rows']``, ``arrays['weights']``),
    reshuffled every epoch from the data key (``rng.permutation(rng.fold(key, epoch))``), or in order.

    A batch of ``batch_size`` ≤ n consecutive items spans at most two epochs, so only the first
    and the last row's epochs are permuted (two sorts of n per step, not one per row)."""

    batch_size: int
    n: int
    shuffle: bool = True

    def __post_init__(self) -> None:
        if self.batch_size > self.n:
            raise ValueError(f"ExampleSampler: batch_size {self.batch_size} exceeds the {self.n} training items")

    def __call__(self, arrays, key, step):
        index = step * self.batch_size + jnp.arange(self.batch_size)
        epoch, pos = index // self.n, index % self.n
        if self.shuffle:
            first, last = (permutation(fold(key, e), self.n) for e in (epoch[0], epoch[-1]))
            pos = jnp.where(epoch == epoch[0], jnp.take(first, pos), jnp.take(last, pos))
        batch = jnp.take(arrays["rows"], pos, axis=0)
        return batch[:, :-1], batch[:, 1:], jnp.take(arrays["weights"], pos, axis=0)


@dataclass(frozen=True)
class TrainData:
    name: str
    fingerprint: str
    vocab_size: int
    seq_len: int
    batch_size: int
    arrays: dict = field(repr=False)
    sampler: Callable = field(repr=False)
    val: tuple = field(repr=False)
    test: tuple = field(repr=False)
    steps_per_epoch: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


def from_corpus(corpus: Corpus, *, seq_len: int, batch_size: int, eval_max_windows: int = 128,
                vocab_size: int | None = None) -> TrainData:
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("eval_max_windows", eval_max_windows)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"from_corpus: {name} must be a whole number >= 1, got {value!r}")
    corpus.check_fits(seq_len, vocab_size)
    sampler = StreamSampler(batch_size, seq_len)
    def held_out(split):
        w = eval_windows(corpus.split(split), seq_len, eval_max_windows)
        return w, np.ones((w.shape[0], seq_len), np.float32)

    return TrainData(corpus.name, corpus.fingerprint, corpus.vocab_size, seq_len, batch_size,
                     {"tokens": jax.device_put(corpus.train)}, sampler, held_out("val"), held_out("test"),
                     info={"name": corpus.name, "fingerprint": corpus.fingerprint, "kind": "corpus"})


def task_arrays(split) -> tuple[np.ndarray, np.ndarray]:
    """(rows [N, T], target weights [N, T-1]) of a task split: inputs are rows[:, :-1]."""
    from jaxscale.data.tasks import loss_mask

    return np.asarray(split.tokens_NT, np.int32), np.asarray(loss_mask(split), np.float32)[:, :-1]


def from_task(task, *, batch_size: int, shuffle: bool = True, val_fraction: float = 0.1) -> TrainData:
    """Train on ``task.train``; validation is a held-back ``val_fraction`` of the training items
    (never test items, and never trained on: repeats of them are dropped from training), test is
    ``task.test``. ``val_fraction=0`` trains on every training item
    and validates on the test split (the notebook preset, which has no validation split)."""
    import hashlib

    rows, weights = task_arrays(task.train)
    n_val = max(1, int(round(val_fraction * rows.shape[0]))) if val_fraction > 0 else 0
    test = task_arrays(task.test)
    val = (rows[-n_val:], weights[-n_val:]) if n_val else test
    # Tasks that draw training items with replacement (sparse parity, induction) repeat rows: a
    # repeat of a held-back row would train on a validation item, so every copy stays out.
    train_N = np.ones(rows.shape[0], bool)
    if n_val:
        train_N[-n_val:] = False
        held_keys = {r.tobytes() for r in np.ascontiguousarray(val[0])}
        train_N &= np.array([r.tobytes() not in held_keys for r in np.ascontiguousarray(rows)], bool)
    n = int(train_N.sum())
    if n < batch_size:
        repeats = rows.shape[0] - n_val - n
        held = (f" ({rows.shape[0]} less {n_val} held back for validation"
                + (f" and {repeats} repeats of those" if repeats else "") + ")") if n_val else ""
        raise ValueError(f"task {task.name!r}: {n} training items{held}, fewer than batch_size {batch_size}")
    train_rows, train_w = rows[train_N], weights[train_N]
    sampler = ExampleSampler(batch_size, n, shuffle)

    digest = hashlib.sha256(np.ascontiguousarray(rows).tobytes() + np.ascontiguousarray(test[0]).tobytes())
    return TrainData(task.name, digest.hexdigest(), task.vocab_size, rows.shape[1] - 1, batch_size,
                     jax.device_put({"rows": train_rows, "weights": train_w}), sampler, val, test,
                     steps_per_epoch=max(1, n // batch_size),
                     info={"name": task.name, "fingerprint": digest.hexdigest(), "kind": "task",
                           "train_items": n, "val_items": int(val[0].shape[0]), "test_items": int(test[0].shape[0])})
