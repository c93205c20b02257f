"""The host loop: train a group of models (one alone, or several as a stack) and make their rows.

A group shares one compiled program: the chunk of ``train.make_train_chunk`` runs many steps per
dispatch, chunk boundaries fall on evaluation points and on each model's last step, and every
model's validation loss is recorded at its evaluation points and at its end, its test loss at
its end. Result rows follow DESIGN.md §6.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.config import ModelConfig
from jaxscale.data.corpus import Corpus
from jaxscale.data.source import TrainData, from_corpus
from jaxscale.data.stream import data_key
from jaxscale.model import init_params
from jaxscale.progress import Progress
from jaxscale.provenance import device_info, versions
from jaxscale.stack import envelope, pad_params, padded_flops_utilisation, stack_dims, stack_trees, unpad_params
from jaxscale.train import Budget, Hyper, OptimConfig, init_states, make_eval, make_train_chunk

N_LAST_FOR_TRAIN_LOSS = 10


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: architecture, seed, optimiser settings and budget."""

    cfg: ModelConfig
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    budget: Budget = field(default_factory=lambda: Budget("steps", 100))

    @property
    def label(self) -> str:
        return f"{self.cfg.name} seed={self.seed} lr={self.optim.lr:g}"


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every model of a run. ``seq_len`` None = the model's context;
    ``eval_every`` None = about ``n_evals`` evaluations over the longest run."""

    batch_size: int = 16
    seq_len: int | None = None
    data_seed: int = 0
    eval_every: int | None = None
    n_evals: int = 10
    eval_windows: int = 128
    steps_per_dispatch: int = 100
    progress: bool = True
    early_stop: tuple[int, float] | None = None  # (after epoch index, mean-loss threshold)

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_windows", "steps_per_dispatch", "n_evals"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"RunSettings.{name} must be a positive int, got {v!r}")
        for name in ("seq_len", "eval_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ValueError(f"RunSettings.{name} must be a positive int or None, got {v!r}")


def _boundaries(totals: Sequence[int], eval_every: int, chunk: int, epoch_steps: int | None = None) -> list[int]:
    """Global steps at which to stop a dispatch: evaluation points, each model's end, epoch ends
    (when early stopping needs them), and at most ``chunk`` steps apart."""
    end = max(totals)
    points = set(range(eval_every, end + 1, eval_every)) | set(totals)
    if epoch_steps:
        points |= set(range(epoch_steps, end + 1, epoch_steps))
    out, prev = [], 0
    for p in sorted(points):
        while p - prev > chunk:
            prev += chunk
            out.append(prev)
        out.append(p)
        prev = p
    return out


def _epoch_mean_losses(train_losses: np.ndarray, start: int, end: int) -> np.ndarray:
    window = train_losses[start:end]
    counts = np.sum(np.isfinite(window), axis=0)
    sums = np.sum(np.where(np.isfinite(window), window, 0.0), axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def train_group(specs: Sequence[ModelSpec], data: TrainData | Corpus, settings: RunSettings = RunSettings(), *,
                mode: str = "stack", stack_id: str | None = None) -> "GroupResult":
    """Train ``specs`` together (``mode='stack'``: one padded, vmapped program) or, for a single
    spec, ``mode='alone'`` (the unvmapped step at the true shape) on ``data`` (a ``TrainData``,
    or a ``Corpus`` read with ``settings``' batch size and sequence length). Returns a
    ``GroupResult`` with one row per spec, in order."""
    if not specs:
        raise ValueError("train_group: no models given")
    if mode not in ("stack", "alone"):
        raise ValueError(f"mode must be 'stack' or 'alone', got {mode!r}")
    if mode == "alone" and len(specs) != 1:
        raise ValueError(f"mode 'alone' trains one model, got {len(specs)}")
    cfgs = [s.cfg for s in specs]
    env = envelope(cfgs) if mode == "stack" else cfgs[0]
    if isinstance(data, Corpus):
        seq_len = settings.seq_len or env.max_seq_len
        if seq_len > env.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds the models' context {env.max_seq_len}")
        data = from_corpus(data, seq_len=seq_len, batch_size=settings.batch_size,
                           eval_max_windows=settings.eval_windows, vocab_size=env.vocab_size)
    if data.seq_len > env.max_seq_len:
        raise ValueError(f"data {data.name!r} has sequences of {data.seq_len} tokens, longer than the "
                         f"models' context {env.max_seq_len}")
    if data.vocab_size > env.vocab_size:
        raise ValueError(f"data {data.name!r} has vocab {data.vocab_size} > the models' vocab_size {env.vocab_size}")
    optims = {(s.optim.beta1, s.optim.beta2, s.optim.eps, s.optim.clip_norm, s.optim.min_lr_ratio,
               s.optim.decay_all) for s in specs}
    if len(optims) > 1:
        raise ValueError("models in one stack must share beta1, beta2, eps, clip_norm, min_lr_ratio and "
                         "decay_all (learning rate, weight decay, warmup and budget may differ)")
    optim = specs[0].optim
    seq_len, batch = data.seq_len, data.batch_size
    totals = [s.budget.steps(s.cfg, batch, seq_len) for s in specs]
    eval_every = settings.eval_every or max(1, math.ceil(max(totals) / settings.n_evals))
    stacked = mode == "stack"
    t_start = time.perf_counter()

    params = [init_params(s.cfg, s.seed) for s in specs]
    if stacked:
        params = [pad_params(p, env) for p in params]
    hypers = [Hyper.make(s.optim, n) for s, n in zip(specs, totals)]
    if stacked:
        state = init_states(stack_trees(params), [s.seed for s in specs], optim, stacked=True)
        hyper, dims = stack_trees(hypers), stack_dims(cfgs)
    else:
        state = init_states(params[0], specs[0].seed, optim, stacked=False)
        hyper, dims = hypers[0], None
    hyper = jax.tree.map(jnp.asarray, hyper)

    chunk_len = min(settings.steps_per_dispatch, max(totals))
    chunk_fn = make_train_chunk(env, optim, data.sampler, chunk_len, stacked=stacked)
    eval_fn = make_eval(env, stacked=stacked)
    key = data_key(settings.data_seed)
    val_rows, val_weights = (jnp.asarray(a) for a in data.val)
    epoch_steps = data.steps_per_epoch if settings.early_stop else None

    k = len(specs)
    train_losses = np.full((max(totals), k), np.nan)
    val_points: list[list[tuple[int, float]]] = [[] for _ in range(k)]
    progress = Progress(f"[{stack_id or mode}] {k} model{'s' if k > 1 else ''}", max(totals),
                        enabled=settings.progress)
    compile_s, step = None, 0
    t_train = time.perf_counter()
    for boundary in _boundaries(totals, eval_every, chunk_len, epoch_steps):
        if step >= max(np.asarray(hyper.total_steps).reshape(-1)):
            break  # every model stopped early
        n = boundary - step
        t0 = time.perf_counter()
        state, losses = chunk_fn(state, hyper, dims, data.arrays, key, jnp.int32(step), jnp.int32(n))
        losses = np.asarray(losses)[:n].reshape(n, k)
        if compile_s is None:
            compile_s = time.perf_counter() - t0
            t_train = time.perf_counter()
        train_losses[step:boundary] = losses
        step = boundary
        ends = np.asarray(hyper.total_steps).reshape(k)
        due = [step <= end and (step % eval_every == 0 or step == end) for end in ends]
        if any(due):
            vals = np.asarray(eval_fn(state.params, dims, val_rows, val_weights)).reshape(k)
            for i in range(k):
                if due[i]:
                    val_points[i].append((step, float(vals[i])))
        if epoch_steps and step % epoch_steps == 0:
            hyper = _early_stop(hyper, train_losses, step, epoch_steps, settings.early_stop, k, val_points,
                                eval_fn, state, dims, val_rows, val_weights)
        elapsed = max(time.perf_counter() - t_train, 1e-9)
        progress.update(step, data.tokens_per_step * k * (step - n) / elapsed if step > n else float("nan"),
                        [float(x) for x in losses[-1]])
    test_rows, test_weights = (jnp.asarray(a) for a in data.test)
    test = np.asarray(eval_fn(state.params, dims, test_rows, test_weights)).reshape(k)
    wall = time.perf_counter() - t_start
    steady = time.perf_counter() - t_train

    final = jax.device_get(state)
    steps_taken = np.asarray(final.step).reshape(k)
    rows = []
    stack_info = {"id": stack_id, "size": k, "envelope": env.to_dict() if stacked else None,
                  "padded_flops_util": padded_flops_utilisation(cfgs, seq_len) if stacked else 1.0,
                  "compile_seconds": compile_s, "steady_seconds": steady}
    for i, spec in enumerate(specs):
        get = (lambda x: x[i]) if stacked else (lambda x: x)
        n_i = int(steps_taken[i]) if not bool(get(final.diverged)) else totals[i]
        rows.append(_row(spec, n_i, train_losses[: n_i, i], val_points[i], float(test[i]),
                         bool(get(final.diverged)), data, seq_len, mode, stack_info, wall, settings.data_seed))
    return GroupResult(rows, final, tuple(cfgs), stacked)


def _early_stop(hyper, train_losses, step, epoch_steps, rule, k, val_points, eval_fn, state, dims, vr, vw):
    """The notebook's rule: after epoch index > ``rule[0]``, a model whose mean training loss over
    the epoch is below ``rule[1]`` stops (its budget is cut to the steps it has taken)."""
    after_epoch, threshold = rule
    epoch = step // epoch_steps - 1
    if epoch <= after_epoch:
        return hyper
    means = _epoch_mean_losses(train_losses, step - epoch_steps, step)
    ends = np.asarray(hyper.total_steps).reshape(k).copy()
    stop = (means < threshold) & (ends > step)
    if not stop.any():
        return hyper
    vals = np.asarray(eval_fn(state.params, dims, vr, vw)).reshape(k)
    for i in np.nonzero(stop)[0]:
        ends[i] = step
        if not val_points[i] or val_points[i][-1][0] != step:
            val_points[i].append((step, float(vals[i])))
    new = jnp.asarray(ends.reshape(np.asarray(hyper.total_steps).shape), jnp.int32)
    return hyper._replace(total_steps=new)


@dataclass(frozen=True)
class GroupResult:
    """A trained group: its result rows and its final (host) state."""

    rows: list
    state: object
    cfgs: tuple
    stacked: bool

    def params(self, i: int) -> dict:
        """Model ``i``'s trained parameters at its true shape."""
        if not self.stacked:
            return self.state.params
        return unpad_params(jax.tree.map(lambda x: x[i], self.state.params), self.cfgs[i])


def _row(spec: ModelSpec, steps: int, losses: np.ndarray, val_points, test_loss: float, diverged: bool,
         data: TrainData, seq_len: int, mode: str, stack_info: dict, wall: float, data_seed: int) -> dict:
    cfg = spec.cfg
    counts = cfg.param_counts()
    fpt = cfg.flops_per_token(seq_len=seq_len)
    tokens = steps * data.batch_size * seq_len
    vals = dict(val_points)
    curve = []
    for s in range(steps):
        point = {"step": s + 1, "tokens": (s + 1) * data.batch_size * seq_len,
                 "train_loss": None if not math.isfinite(losses[s]) else float(losses[s])}
        if s + 1 in vals:
            point["val_loss"] = vals[s + 1]
        curve.append(point)
    finite = losses[np.isfinite(losses)]
    last = finite[-N_LAST_FOR_TRAIN_LOSS:] if finite.size else finite
    return {
        "run_id": uuid.uuid4().hex[:12], "name": cfg.name, "config": cfg.to_dict(),
        "params": counts.total, "embedding_params": counts.embedding,
        "non_embedding_params": counts.non_embedding,
        "flops_per_token": fpt.total,
        "flops_terms": {"non_embedding": fpt.non_embedding, "head": fpt.head, "attention": fpt.attention,
                        "causal": fpt.causal},
        "seed": spec.seed, "data_seed": data_seed, "lr": spec.optim.lr,
        "weight_decay": spec.optim.weight_decay, "optimizer": {"name": "adamw", **spec.optim.__dict__},
        "batch_size": data.batch_size, "seq_len": seq_len, "steps": steps, "tokens": tokens,
        "tokens_per_param": tokens / counts.total, "budget": spec.budget.to_dict(),
        "flops": fpt.total * tokens,
        "train_loss": float(np.mean(last)) if last.size and not diverged else None,
        "val_loss": val_points[-1][1] if val_points and not diverged else None,
        "test_loss": test_loss if not diverged else None,
        "curve": curve, "diverged": diverged, "corpus": data.info,
        "mode": mode, "stack": stack_info, "wall_seconds": wall, "versions": versions(), "device": device_info(),
    }
