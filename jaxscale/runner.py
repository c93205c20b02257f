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
from jaxscale.data.stream import data_key, eval_windows
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

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_windows", "steps_per_dispatch", "n_evals"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"RunSettings.{name} must be a positive int, got {v!r}")
        for name in ("seq_len", "eval_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ValueError(f"RunSettings.{name} must be a positive int or None, got {v!r}")


def _boundaries(totals: Sequence[int], eval_every: int, chunk: int) -> list[int]:
    """Global steps at which to stop a dispatch: evaluation points, each model's end, and at
    most ``chunk`` steps apart."""
    end = max(totals)
    points = set(range(eval_every, end + 1, eval_every)) | set(totals)
    out, prev = [], 0
    for p in sorted(points):
        while p - prev > chunk:
            prev += chunk
            out.append(prev)
        out.append(p)
        prev = p
    return out


def train_group(specs: Sequence[ModelSpec], corpus: Corpus, settings: RunSettings = RunSettings(), *,
                mode: str = "stack", stack_id: str | None = None) -> list[dict]:
    """Train ``specs`` together (``mode='stack'``: one padded, vmapped program) or, for a single
    spec, ``mode='alone'`` (the unvmapped step at the true shape). Returns a ``GroupResult`` with
    one row per spec, in order."""
    if not specs:
        raise ValueError("train_group: no models given")
    if mode not in ("stack", "alone"):
        raise ValueError(f"mode must be 'stack' or 'alone', got {mode!r}")
    if mode == "alone" and len(specs) != 1:
        raise ValueError(f"mode 'alone' trains one model, got {len(specs)}")
    cfgs = [s.cfg for s in specs]
    env = envelope(cfgs) if mode == "stack" else cfgs[0]
    seq_len = settings.seq_len or env.max_seq_len
    if seq_len > env.max_seq_len:
        raise ValueError(f"seq_len {seq_len} exceeds the models' context {env.max_seq_len}")
    corpus.check_fits(seq_len, env.vocab_size)
    optims = {(s.optim.beta1, s.optim.beta2, s.optim.eps, s.optim.clip_norm, s.optim.min_lr_ratio) for s in specs}
    if len(optims) > 1:
        raise ValueError("models in one stack must share beta1, beta2, eps, clip_norm and min_lr_ratio "
                         "(learning rate, weight decay, warmup and budget may differ)")
    optim = specs[0].optim
    totals = [s.budget.steps(s.cfg, settings.batch_size, seq_len) for s in specs]
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

    chunk_len = min(settings.steps_per_dispatch, max(totals))
    chunk_fn = make_train_chunk(env, optim, settings.batch_size, seq_len, chunk_len, stacked=stacked)
    eval_fn = make_eval(env, stacked=stacked)
    tokens_N = jnp.asarray(corpus.train)
    key = data_key(settings.data_seed)
    val_w = jnp.asarray(eval_windows(corpus.val, seq_len, settings.eval_windows))
    test_w = jnp.asarray(eval_windows(corpus.test, seq_len, settings.eval_windows))

    k = len(specs)
    train_losses = np.full((max(totals), k), np.nan)
    val_points: list[list[tuple[int, float]]] = [[] for _ in range(k)]
    label = f"[{stack_id or mode}] {k} model{'s' if k > 1 else ''}"
    progress = Progress(label, max(totals), enabled=settings.progress)
    compile_s, step = None, 0
    tokens_per_step = settings.batch_size * seq_len
    t_train = time.perf_counter()
    for boundary in _boundaries(totals, eval_every, chunk_len):
        n = boundary - step
        t0 = time.perf_counter()
        state, losses = chunk_fn(state, hyper, dims, tokens_N, key, jnp.int32(step), jnp.int32(n))
        losses = np.asarray(losses)[:n].reshape(n, k)
        if compile_s is None:
            compile_s = time.perf_counter() - t0
            t_train = time.perf_counter()
        train_losses[step:boundary] = losses
        step = boundary
        due = [step <= tot and (step % eval_every == 0 or step == tot) for tot in totals]
        if any(due):
            vals = np.asarray(eval_fn(state.params, dims, val_w)).reshape(k)
            for i in range(k):
                if due[i]:
                    val_points[i].append((step, float(vals[i])))
        elapsed = max(time.perf_counter() - t_train, 1e-9)
        progress.update(step, tokens_per_step * k * step / elapsed if step > n else float("nan"),
                        [float(x) for x in losses[-1]])
    test = np.asarray(eval_fn(state.params, dims, test_w)).reshape(k)
    wall = time.perf_counter() - t_start
    steady = time.perf_counter() - t_train

    final = jax.device_get(state)
    rows = []
    stack_info = {"id": stack_id, "size": k, "envelope": env.to_dict() if stacked else None,
                  "padded_flops_util": padded_flops_utilisation(cfgs, seq_len) if stacked else 1.0,
                  "compile_seconds": compile_s, "steady_seconds": steady}
    for i, spec in enumerate(specs):
        get = (lambda x: x[i]) if stacked else (lambda x: x)
        rows.append(_row(spec, totals[i], train_losses[: totals[i], i], val_points[i], float(test[i]),
                         bool(get(final.diverged)), corpus, settings, seq_len, mode, stack_info, wall))
    return GroupResult(rows, final, tuple(cfgs), stacked)


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
         corpus: Corpus, settings: RunSettings, seq_len: int, mode: str, stack_info: dict, wall: float) -> dict:
    cfg = spec.cfg
    counts = cfg.param_counts()
    fpt = cfg.flops_per_token(seq_len=seq_len)
    tokens = steps * settings.batch_size * seq_len
    vals = dict(val_points)
    curve = []
    for s in range(steps):
        point = {"step": s + 1, "tokens": (s + 1) * settings.batch_size * seq_len,
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
        "seed": spec.seed, "data_seed": settings.data_seed, "lr": spec.optim.lr,
        "weight_decay": spec.optim.weight_decay, "optimizer": {"name": "adamw", **spec.optim.__dict__},
        "batch_size": settings.batch_size, "seq_len": seq_len, "steps": steps, "tokens": tokens,
        "tokens_per_param": tokens / counts.total, "budget": spec.budget.to_dict(),
        "flops": fpt.total * tokens,
        "train_loss": float(np.mean(last)) if last.size and not diverged else None,
        "val_loss": val_points[-1][1] if val_points and not diverged else None,
        "test_loss": test_loss if not diverged else None,
        "curve": curve, "diverged": diverged, "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint},
        "mode": mode, "stack": stack_info, "wall_seconds": wall, "versions": versions(), "device": device_info(),
    }
