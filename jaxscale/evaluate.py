"""Per-example evaluation of a causal LM on a task split, kept so every metric can be recomputed.

The model enters only as ``logits_fn(tokens_BT) -> logits_BTV``, a pure jnp function (a closure
over parameters, a vmapped stack member, or a hand-made oracle in tests), so this module does not
depend on the model. For each example it records:

* the **greedy answer**: ``answer_len`` tokens decoded one at a time, each from the logits at the
  previous position, with the gold answer hidden (replaced by the pad token) so a non-causal
  ``logits_fn`` cannot peek. A ``logits_fn`` marked ``causal = True`` (a GPT's: position t sees
  tokens ≤ t only) takes its first answer token from the teacher-forced pass, whose logits there
  see only the prompt, so a one-token answer needs one forward pass, not two (half the program
  to compile and run: the notebook's arithmetic task);
* the **teacher-forced** log-probability of each gold answer token given the gold prefix, and
  whether it was the argmax (per-token correctness). Greedy exact match equals "every answer
  token teacher-forced correct" (ties aside), which the tests use as a consistency check;
* for one-token answers, the full probability vector (for the Brier score).

Shapes are fixed (rows padded to a multiple of ``batch_size``, the decoding loop runs the
longest answer length with per-row masks), so one compiled program serves the whole split.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.compile_mode import run_few_times_options, unoptimised_pays
from jaxscale.data.tasks.base import TaskSplit

__all__ = ["PerExampleOutputs", "evaluate", "load_outputs"]

LogitsFn = Callable[[jax.Array], jax.Array]



@dataclasses.dataclass(frozen=True, eq=False)
class PerExampleOutputs:
    """What a model did on every example of a split. Arrays over N examples and A answer slots
    (A = longest answer); slots past an example's ``answer_len_N`` hold -1 / 0 / False.

    target_NA, pred_NA:   int32 gold and greedy answer tokens.
    token_logprob_NA:     float32 teacher-forced log p(gold token | gold prefix).
    token_correct_NA:     bool, the gold token was the teacher-forced argmax.
    answer_probs_NV:      float32 next-token distribution at the answer (one-token answers only).
    target_value_N, pred_value_N: float64 numbers (where the task writes numbers; NaN = not a
                          number).
    subtask_N:            int32 subtask labels (sparse parity), or None.
    """

    task: str
    vocab_size: int
    answer_len_N: np.ndarray
    target_NA: np.ndarray
    pred_NA: np.ndarray
    token_logprob_NA: np.ndarray
    token_correct_NA: np.ndarray
    answer_probs_NV: np.ndarray | None = None
    target_value_N: np.ndarray | None = None
    pred_value_N: np.ndarray | None = None
    subtask_N: np.ndarray | None = None

    @property
    def num_examples(self) -> int:
        return int(self.answer_len_N.shape[0])

    @property
    def inside_NA(self) -> np.ndarray:
        """bool [N, A]: which answer slots are real tokens."""
        a = self.target_NA.shape[1]
        return np.arange(a)[None, :] < self.answer_len_N[:, None]

    def select(self, index) -> "PerExampleOutputs":
        """The examples at ``index`` (any numpy index), e.g. one subtask's."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                fields[name] = value[index]
        return PerExampleOutputs(**fields)

    def save(self, path: str | os.PathLike) -> None:
        """Write every array to one ``.npz`` (atomically: temporary file, then rename)."""
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        path = os.fspath(path)
        tmp = path + ".tmp.npz"
        np.savez_compressed(tmp, task=np.array(self.task), vocab_size=np.array(self.vocab_size),
                            **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PerExampleOutputs":
        return load_outputs(path)


def load_outputs(path: str | os.PathLike) -> PerExampleOutputs:
    """Read outputs written by :meth:`PerExampleOutputs.save`."""
    with np.load(path, allow_pickle=False) as data:
        kwargs = {name: data[name] for name in data.files}
    kwargs["task"] = str(kwargs["task"])
    kwargs["vocab_size"] = int(kwargs["vocab_size"])
    return PerExampleOutputs(**kwargs)


def _eval_batch(logits_fn: LogitsFn, tokens_BT, start_B, len_B, *, pad_id: int, n_answer: int,
                causal: bool = False):
    """Teacher-forced scores and the greedy answer for one batch (fixed shapes, jit-able).
    ``causal``: ``logits_fn`` is causal, so the first answer token is decoded from the
    teacher-forced logits (see the module docstring)."""
    b, t = tokens_BT.shape
    j_A = jnp.arange(n_answer)
    # position t predicts token t+1: answer token j is predicted at start + j - 1
    src_BA = jnp.minimum(start_B[:, None] + j_A[None, :] - 1, t - 2)
    dst_BA = src_BA + 1
    inside_BA = j_A[None, :] < len_B[:, None]

    logits_BTV = logits_fn(tokens_BT).astype(jnp.float32)
    logp_BTV = jax.nn.log_softmax(logits_BTV, axis=-1)
    logp_BAV = jnp.take_along_axis(logp_BTV, src_BA[:, :, None], axis=1)
    gold_BA = jnp.take_along_axis(tokens_BT, dst_BA, axis=1)
    tok_logp_BA = jnp.take_along_axis(logp_BAV, gold_BA[:, :, None], axis=2)[:, :, 0]
    correct_BA = jnp.argmax(logp_BAV, axis=-1) == gold_BA
    probs_BV = jnp.exp(logp_BAV[:, 0, :])

    # greedy decoding with the gold answer hidden
    t_T = jnp.arange(t)
    hidden_BT = (t_T[None, :] >= start_B[:, None]) & (
        t_T[None, :] < (start_B + len_B)[:, None])
    masked_BT = jnp.where(hidden_BT, pad_id, tokens_BT)
    rows_B = jnp.arange(b)

    def put(j, toks_BT, logits_BTV):  # the argmax at answer slot j's source position, written in
        src_B = jnp.minimum(start_B + j - 1, t - 2)
        logits_BV = jnp.take_along_axis(logits_BTV, src_B[:, None, None], axis=1)[:, 0]
        next_B = jnp.argmax(logits_BV, axis=-1).astype(toks_BT.dtype)
        keep_B = toks_BT[rows_B, src_B + 1]
        return toks_BT.at[rows_B, src_B + 1].set(jnp.where(j < len_B, next_B, keep_B))

    first = 0
    if causal:  # slot 0's logits see only the prompt, which masking leaves as it is
        masked_BT, first = put(0, masked_BT, logits_BTV), 1
    decoded_BT = masked_BT if first == n_answer else jax.lax.fori_loop(
        first, n_answer, lambda j, toks_BT: put(j, toks_BT, logits_fn(toks_BT)), masked_BT)
    pred_BA = jnp.take_along_axis(decoded_BT, dst_BA, axis=1)
    return dict(
        pred_NA=jnp.where(inside_BA, pred_BA, -1),
        target_NA=jnp.where(inside_BA, gold_BA, -1),
        token_logprob_NA=jnp.where(inside_BA, tok_logp_BA, 0.0),
        token_correct_NA=correct_BA & inside_BA,
        answer_probs_NV=probs_BV,
    )


def _is_causal(logits_fn) -> bool:
    """Whether ``logits_fn`` declares itself causal (``logits_fn.causal = True``)."""
    return getattr(logits_fn, "causal", False) is True


_JITTED: dict = {}


def _batch_fn(logits_fn, pad_id: int, n_answer: int, jit: bool, with_params: bool, flops: float | None = None):
    """The per-batch program. With ``params``, the parameters are *arguments* of one compiled
    program per (``logits_fn``, task shape), cached here, so models of one config share a compile
    and their weights are never baked in as constants. ``flops``: the whole evaluation's work, if
    known (a small one is compiled unoptimised on a CPU: ``compile_mode.unoptimised_pays``)."""
    options = run_few_times_options(flops)
    causal = _is_causal(logits_fn)
    if not with_params:
        fn = lambda tok, s, l: _eval_batch(  # noqa: E731
            logits_fn, tok, s, l, pad_id=pad_id, n_answer=n_answer, causal=causal)
        return jax.jit(fn, compiler_options=options) if jit else fn
    unoptimised = unoptimised_pays(flops)
    key = (logits_fn, pad_id, n_answer, unoptimised, causal)
    if key not in _JITTED:
        def fn(params, tok, s, l):
            return _eval_batch(lambda t: logits_fn(params, t), tok, s, l, pad_id=pad_id, n_answer=n_answer,
                               causal=causal)
        _JITTED[key] = jax.jit(fn, compiler_options=options)
        program_key = getattr(logits_fn, "program_key", None)  # stable: the program may be kept on disk
        if program_key is not None:
            from jaxscale import program_cache

            _JITTED[key] = program_cache.cached(_JITTED[key], "task_eval",
                                                (program_key, pad_id, n_answer, unoptimised, causal))
    return _JITTED[key]


def evaluate(logits_fn: LogitsFn, split: TaskSplit, *, batch_size: int = 256,
             jit: bool = True, params=None) -> PerExampleOutputs:
    """Evaluate ``logits_fn`` on every example of ``split``; see the module docstring.

    ``logits_fn`` maps int32 [B, T] tokens to [B, T, V] logits (V ≥ the split's vocabulary); with
    ``params`` it is ``logits_fn(params, tokens)``, a stable (hashable) function whose compiled
    program is reused across calls (the way to evaluate many models of one config). The split is
    cut into batches of ``batch_size`` rows (the last one padded by repeating rows, whose results
    are dropped), so the function is traced once. If ``logits_fn`` has a
    ``forward_flops_per_token`` attribute, a small evaluation is compiled without LLVM's
    optimisations on a CPU (``compile_mode.unoptimised_pays``): it runs once, so the compile is
    most of its cost.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    n = split.num_examples
    if n == 0:
        raise ValueError(f"split {split.name!r} has no examples")
    n_answer = split.max_answer_len
    bsz = min(batch_size, n)
    n_pad = -n % bsz
    per_token = getattr(logits_fn, "forward_flops_per_token", None)  # a hint, where the model is known
    passes = 1 + n_answer - _is_causal(logits_fn)  # teacher-forced + greedy
    flops = None if per_token is None else per_token * (n + n_pad) * split.tokens_NT.shape[1] * passes
    fn = _batch_fn(logits_fn, split.pad_id, n_answer, jit, params is not None, flops)
    if params is not None:
        fn = functools.partial(fn, jax.device_put(params))
    take = np.concatenate([np.arange(n), np.full(n_pad, n - 1)])
    tokens_NT, start_N, len_N = (split.tokens_NT[take], split.answer_start_N[take],
                                 split.answer_len_N[take])
    parts: dict[str, list[np.ndarray]] = {}
    for lo in range(0, n + n_pad, bsz):
        out = fn(*jax.device_put((tokens_NT[lo:lo + bsz], start_N[lo:lo + bsz], len_N[lo:lo + bsz])))
        for key, value in out.items():
            parts.setdefault(key, []).append(np.asarray(value))
    res = {k: np.concatenate(v)[:n] for k, v in parts.items()}

    pred_value_N = None
    if split.codec is not None:  # slots past an answer's length are ignored by decode
        pred_value_N = split.codec.decode(np.maximum(res["pred_NA"], 0), split.answer_len_N)
    return PerExampleOutputs(
        task=split.name, vocab_size=int(split.vocab_size),
        answer_len_N=split.answer_len_N.copy(),
        target_NA=res["target_NA"].astype(np.int32), pred_NA=res["pred_NA"].astype(np.int32),
        token_logprob_NA=res["token_logprob_NA"].astype(np.float32),
        token_correct_NA=res["token_correct_NA"].astype(bool),
        answer_probs_NV=res["answer_probs_NV"].astype(np.float32) if n_answer == 1 else None,
        target_value_N=split.target_value_N, pred_value_N=pred_value_N,
        subtask_N=split.subtask_N)
