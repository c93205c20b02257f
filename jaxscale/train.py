"""The pure train step, the learning-rate schedule, budgets and evaluation.

One model's step is a pure function ``flat_step(flat_state, hyper, inputs, targets) -> (flat_state,
metrics)`` that *returns* the new state; the training loop carries the parameters and Adam
moments as flat vectors (``flat.py``), and ``train_step`` is the same step on the named-tree
``TrainState``. A stack of models is the same function under
``jax.vmap`` (``stack.py``); a model alone is that function at its true shape. Everything that
distinguishes models (learning rate, weight decay, schedule length, step budget, seed) lives in
the per-model ``Hyper`` and ``TrainState`` arrays, and every reduction (loss, gradient norm,
clipping, the finite check) is over one model's arrays only, so no model can change another's
numbers.

Optimiser: AdamW with decoupled weight decay: the arithmetic of optax's ``clip_by_global_norm`` and
``scale_by_adam`` (``make_tx``, which also gives the optimiser state's structure), written out
over the flat vector, followed by ``p ← p − lr_t·(adam_t + wd·p)`` on the decayed parameters
(matrices and embeddings; not biases or LayerNorm gains), where lr_t follows linear warmup then
cosine decay to ``min_lr_ratio``·peak over exactly the run's own steps. Defaults suited to small
transformers: β₁ 0.9, β₂ 0.95, ε 1e-8, weight decay 0.1, clip 1.0, warmup 10% of the steps.

A model whose loss or gradient norm turns non-finite is marked ``diverged`` and frozen; a model
whose step budget is spent is frozen too (its state no longer changes while others train on).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxscale.compile_mode import compiler_options, run_few_times_options, unoptimised_pays
from jaxscale.config import ModelConfig
from jaxscale.flat import (FlatLayout, decay_mask, layout_from_shapes, layout_of, ravel, ravel_host, split_host,
                           split_leaves, unravel)
from jaxscale.model import DECAYED, ModelDims, cross_entropy, forward, layer_unroll, param_shapes, remat_policy
from jaxscale.rng import fold, host_dropout_keys

PARAMS_BASES = ("total", "non_embedding")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW + schedule settings. ``lr`` is the peak learning rate."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip_norm: float = 1.0
    warmup_frac: float = 0.1
    min_lr_ratio: float = 0.1
    decay_all: bool = False  # decay biases and LayerNorm gains too (PyTorch's AdamW default)

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0,
            "beta1": 0 <= self.beta1 < 1, "beta2": 0 <= self.beta2 < 1, "eps": self.eps > 0,
            "clip_norm": self.clip_norm > 0, "warmup_frac": 0 <= self.warmup_frac < 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
                raise ValueError(f"OptimConfig.{name} has a bad value {value!r}")

    def warmup_steps(self, total_steps: int) -> int:
        return int(round(self.warmup_frac * total_steps))


@dataclass(frozen=True)
class Budget:
    """A training budget: ``steps``, ``tokens``, or ``tokens_per_param`` (× the parameter count on
    ``params_basis``: ``total`` or ``non_embedding``)."""

    kind: str
    value: float
    params_basis: str = "total"

    def __post_init__(self) -> None:
        if self.kind not in ("steps", "tokens", "tokens_per_param"):
            raise ValueError(f"Budget.kind must be 'steps', 'tokens' or 'tokens_per_param', got {self.kind!r}")
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value) or self.value <= 0:
            raise ValueError(f"Budget.value ({self.kind}) must be a positive number, got {self.value!r}")
        if self.params_basis not in PARAMS_BASES:
            raise ValueError(f"Budget.params_basis must be one of {PARAMS_BASES}, got {self.params_basis!r}")

    def steps(self, cfg: ModelConfig, batch_size: int, seq_len: int) -> int:
        tokens_per_step = batch_size * seq_len
        if self.kind == "steps":
            return max(1, int(round(self.value)))
        if self.kind == "tokens":
            return max(1, math.ceil(self.value / tokens_per_step))
        counts = cfg.param_counts()
        n = counts.total if self.params_basis == "total" else counts.non_embedding
        return max(1, math.ceil(self.value * n / tokens_per_step))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value, "params_basis": self.params_basis}


def program_optim(optim: OptimConfig) -> OptimConfig:
    """``optim`` with the settings that are per-model data (``Hyper``: peak learning rate, weight
    decay, warmup) set to the defaults: the part a compiled training program depends on. Programs
    are made and cached under it, so that models differing only in those settings (a
    learning-rate grid trained one after another, a later sweep with other rates) share one
    compiled program instead of compiling an identical one each."""
    d = OptimConfig()
    return dataclasses.replace(optim, lr=d.lr, weight_decay=d.weight_decay, warmup_frac=d.warmup_frac)


def program_config(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` without its label: its name set to the one every program is made under
    (``program_cache.unlabelled``). No program reads the name, so models of one shape under other
    names (a family's size and the same shape given by explicit sizes, two families whose sizes
    coincide) share one compiled program instead of compiling an identical one each."""
    from jaxscale.program_cache import unlabelled

    return unlabelled(cfg)


class Hyper(NamedTuple):
    """Per-model hyperparameters, as arrays so that a stack carries one of each per model."""

    lr: jax.Array
    weight_decay: jax.Array
    total_steps: jax.Array
    warmup_steps: jax.Array

    @classmethod
    def make(cls, optim: OptimConfig, total_steps: int) -> "Hyper":
        # host scalars: stacked on the host and sent with one device_put (jnp scalars compile a
        # conversion program each)
        return cls(np.float32(optim.lr), np.float32(optim.weight_decay), np.int32(total_steps),
                   np.int32(optim.warmup_steps(total_steps)))


class TrainState(NamedTuple):
    params: dict
    opt_state: Any
    step: jax.Array       # this model's own optimiser steps taken
    diverged: jax.Array   # bool: a non-finite loss or gradient was seen; frozen since
    key: jax.Array        # the model's dropout key (from its seed)


def make_tx(optim: OptimConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(optim.clip_norm),
                       optax.scale_by_adam(b1=optim.beta1, b2=optim.beta2, eps=optim.eps))


def init_state(params: dict, seed: int | jax.Array, optim: OptimConfig) -> TrainState:
    """A fresh state (jittable; ``seed`` may be traced). The dropout key derives from the seed."""
    return TrainState(params, make_tx(optim).init(params), jnp.int32(0), jnp.bool_(False),
                      jax.random.fold_in(jax.random.PRNGKey(seed), 1))


def init_states(params, seeds, optim: OptimConfig, *, stacked: bool, host: bool = False) -> TrainState:
    """``init_state`` for a stack (over the leading model axis of ``params`` and ``seeds`` [K])
    or one model, as fresh device arrays (the training program takes them over: donated), or
    host numpy arrays if ``host``.

    Built on the host (zeros for the moments, the dropout key from ``rng.host_dropout_keys``) and
    sent with one transfer: on the device it was a compiled program per model size, 0.5 s of a
    cold CPU run's compile each. The program remains for a PRNG implementation other than
    JAX's default."""
    seeds = np.asarray(seeds, np.int32) if stacked else np.int32(seeds)
    keys = host_dropout_keys(seeds)
    if keys is None:
        # a few elementwise passes over the parameters (the moments' zeros, the copy)
        unoptimised = unoptimised_pays(4 * sum(np.size(x) for x in jax.tree.leaves(params)))
        state = _init_program(optim, stacked, unoptimised)(params, seeds)
        return jax.device_get(state) if host else state
    params = jax.tree.map(lambda x: np.array(x, np.float32), params)  # a private copy: it is donated
    init = jax.vmap(make_tx(optim).init) if stacked else make_tx(optim).init
    opt_state = jax.tree.map(lambda sd: np.zeros(sd.shape, sd.dtype), jax.eval_shape(init, params))
    zeros = np.zeros(seeds.shape, np.int32)
    state = TrainState(params, opt_state, zeros, zeros.astype(bool), keys.astype(np.uint32))
    return state if host else jax.device_put(state)


@functools.lru_cache(maxsize=64)
def _init_program(optim: OptimConfig, stacked: bool, unoptimised: bool = False):
    from jaxscale import program_cache

    fn = jax.vmap(lambda p, s: init_state(p, s, optim)) if stacked else (lambda p, s: init_state(p, s, optim))
    options = run_few_times_options(0.0 if unoptimised else None)
    return program_cache.cached(jax.jit(fn, compiler_options=options), "init_state", (optim, stacked, unoptimised))


def lr_at(step: jax.Array, hyper: Hyper, min_lr_ratio: float) -> jax.Array:
    """Linear warmup over ``warmup_steps``, then cosine from peak to ``min_lr_ratio``·peak at the
    model's last step."""
    t = step.astype(jnp.float32)
    warm = hyper.warmup_steps.astype(jnp.float32)
    total = hyper.total_steps.astype(jnp.float32)
    warm_lr = hyper.lr * (t + 1.0) / jnp.maximum(warm, 1.0)
    progress = jnp.clip((t - warm) / jnp.maximum(total - warm - 1.0, 1.0), 0.0, 1.0)
    cos_lr = hyper.lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + jnp.cos(jnp.pi * progress)))
    return jnp.where(t < warm, warm_lr, cos_lr)


class FlatState(NamedTuple):
    """A ``TrainState`` with the parameters and Adam moments as flat vectors (``flat.py``): what
    the compiled training loop carries from step to step."""

    params_P: jax.Array
    mu_P: jax.Array
    nu_P: jax.Array
    count: jax.Array      # Adam's step count (optax's ``ScaleByAdamState.count``)
    step: jax.Array
    diverged: jax.Array
    key: jax.Array


def to_flat(state: TrainState, layout: FlatLayout) -> FlatState:
    """One model's state as flat vectors (inside ``jax.vmap`` for a stack)."""
    adam = state.opt_state[1]
    return FlatState(ravel(layout, state.params), ravel(layout, adam.mu), ravel(layout, adam.nu), adam.count,
                     state.step, state.diverged, state.key)


def from_flat(fs: FlatState, layout: FlatLayout, like: TrainState) -> TrainState:
    """The named-tree state back from flat vectors; ``like`` gives the optimiser state's structure."""
    adam = like.opt_state[1]._replace(count=fs.count, mu=split_leaves(layout, fs.mu_P), nu=split_leaves(layout, fs.nu_P))
    opt_state = (like.opt_state[0], adam) + tuple(like.opt_state[2:])
    return TrainState(split_leaves(layout, fs.params_P), opt_state, fs.step, fs.diverged, fs.key)


def state_layout(state: TrainState, optim: OptimConfig, *, stacked: bool) -> FlatLayout:
    return layout_of(state.params, DECAYED, decay_all=optim.decay_all, batch_dims=int(stacked))


@functools.lru_cache(maxsize=256)
def layout_for(cfg: ModelConfig, decay_all: bool) -> FlatLayout:
    """The flat layout of one model of ``cfg`` (a stack's: of its envelope, each model's row)."""
    return layout_from_shapes(param_shapes(cfg), DECAYED, decay_all=decay_all)


def flat_state_host(state: TrainState, layout: FlatLayout) -> FlatState:
    """A (host) state as the flat vectors the training program carries, made on the host: [P],
    or [K, P] for a stack (its leaves' leading model axis is kept)."""
    adam = state.opt_state[1]
    return FlatState(ravel_host(layout, state.params), ravel_host(layout, adam.mu), ravel_host(layout, adam.nu),
                     np.asarray(adam.count), np.asarray(state.step), np.asarray(state.diverged),
                     np.asarray(state.key))


def tree_state_host(fs: FlatState, layout: FlatLayout, optim: OptimConfig) -> TrainState:
    """The named-tree state of host flat vectors (``flat_state_host``'s inverse; numpy views)."""
    params = split_host(layout, fs.params_P)
    like = jax.eval_shape(make_tx(optim).init, params)  # the optimiser state's structure only
    adam = like[1]._replace(count=np.asarray(fs.count), mu=split_host(layout, fs.mu_P),
                            nu=split_host(layout, fs.nu_P))
    return TrainState(params, (like[0], adam) + tuple(like[2:]), np.asarray(fs.step), np.asarray(fs.diverged),
                      np.asarray(fs.key))


def flat_step(fs: FlatState, hyper: Hyper, inputs_BT: jax.Array, targets_BT: jax.Array,
              weights_BT: jax.Array | None = None, *, cfg: ModelConfig, optim: OptimConfig, layout: FlatLayout,
              dims: ModelDims | None = None, remat: str | None = None,
              unroll: int | None = None) -> tuple[FlatState, dict]:
    """One AdamW step of one model on its flat state. Frozen (state unchanged) once diverged or out
    of budget. ``weights`` select the target positions in the loss (None: all).

    The arithmetic is optax's ``clip_by_global_norm`` then ``scale_by_adam`` (``make_tx``), written
    out over the flat vector so that each update is one fused loop over it (tests check it
    against optax; scalar factors are multiplied where optax divides, so results agree to
    rounding)."""
    def loss_fn(params_P):
        key = fold(fs.key, fs.step) if cfg.dropout > 0 else None
        logits = forward(unravel(layout, params_P), inputs_BT, cfg, dims=dims, dropout_key=key, remat=remat,
                         unroll=unroll)
        return cross_entropy(logits, targets_BT, weights_BT)

    loss, g_P = jax.value_and_grad(loss_fn)(fs.params_P)
    grad_norm = jnp.sqrt(jnp.sum(g_P * g_P))
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    active = (fs.step < hyper.total_steps) & ~fs.diverged
    update = active & finite
    keep = lambda new, old: jnp.where(update, new, old)
    # Scalars first (clip factor, bias corrections), then one multiply per element: a divide per
    # element in each of the loops below, and the clipped gradient kept in memory, cost more.
    g_P = g_P * jnp.where(grad_norm < optim.clip_norm, 1.0, optim.clip_norm / grad_norm)
    count = optax.safe_increment(fs.count)
    mu_P = keep((1 - optim.beta1) * g_P + optim.beta1 * fs.mu_P, fs.mu_P)
    nu_P = keep((1 - optim.beta2) * (g_P * g_P) + optim.beta2 * fs.nu_P, fs.nu_P)
    if jax.default_backend() == "cpu":
        # On a CPU, write the new moments (in place) before the parameter update reads them.
        # Without the barrier XLA's CPU backend, which has no multi-output fusion, recomputes them
        # inside the parameter loop from the old moments, which must then be copied before the
        # moment loops overwrite them: two more passes over [P] per step. Measured (in-process,
        # interleaved, with the scalar factors above): notebook-emergence large alone 3.02 -> 2.61
        # ms per step, medium 1.75 -> 1.52 ms, its five-model stack 16.4 -> 13.0 ms. A GPU fuses
        # the three updates into one kernel, which the barrier would split.
        mu_P, nu_P = jax.lax.optimization_barrier((mu_P, nu_P))
    mu_hat = mu_P * (1 / (1 - optim.beta1 ** count)).astype(mu_P.dtype)
    nu_hat = nu_P * (1 / (1 - optim.beta2 ** count)).astype(nu_P.dtype)
    direction = mu_hat / (jnp.sqrt(nu_hat) + optim.eps)
    lr = lr_at(fs.step, hyper, optim.min_lr_ratio)
    decay = jnp.where(decay_mask(layout), hyper.weight_decay * fs.params_P, 0.0)
    params_P = fs.params_P - lr * (direction + decay)
    new = FlatState(keep(params_P, fs.params_P), mu_P, nu_P, keep(count, fs.count),
                    fs.step + update.astype(jnp.int32), fs.diverged | (active & ~finite), fs.key)
    metrics = {"loss": jnp.where(active, loss, jnp.nan), "grad_norm": grad_norm, "lr": lr, "active": active}
    return new, metrics


def train_step(state: TrainState, hyper: Hyper, inputs_BT: jax.Array, targets_BT: jax.Array,
               weights_BT: jax.Array | None = None, *, cfg: ModelConfig, optim: OptimConfig,
               dims: ModelDims | None = None) -> tuple[TrainState, dict]:
    """One AdamW step of one model (``flat_step`` on the named-tree state)."""
    layout = state_layout(state, optim, stacked=False)
    fs, metrics = flat_step(to_flat(state, layout), hyper, inputs_BT, targets_BT, weights_BT, cfg=cfg,
                            optim=optim, layout=layout, dims=dims)
    return from_flat(fs, layout, state), metrics


def make_train_chunk(cfg: ModelConfig, optim: OptimConfig, sampler, max_steps: int, *, stacked: bool,
                     fast_compile: bool = False, batch_sharding=None):
    """A jitted ``chunk(flat_state, hyper, dims, arrays, data_key, start, n)`` running ``n`` ≤
    ``max_steps`` global steps in one dispatch (a ``fori_loop`` with a traced trip count, so any
    chunk length reuses one compiled program). ``sampler(arrays, data_key, step)`` draws the batch
    every model of the stack trains on. Returns the flat state and per-step losses
    [max_steps(, K)] (NaN where a model was inactive or beyond ``n``). The state is a
    ``FlatState`` in ``layout_for(cfg, optim.decay_all)`` (made by ``flat_state_host``): the
    program holds no tree conversion (``flat.py``). ``fast_compile``: the CPU's
    faster-compiling code generation (``compile_mode.py``). ``batch_sharding``: where the batch
    is split over several devices (``devices.batch_sharding``), the constraint put on each
    sampled batch, from which XLA partitions the step and sums the gradients across devices."""
    return _train_chunk(program_config(cfg), program_optim(optim), sampler, max_steps, stacked, fast_compile,
                        remat_policy(), batch_sharding, layer_unroll())


@functools.lru_cache(maxsize=64)
def _train_chunk(cfg: ModelConfig, optim: OptimConfig, sampler, max_steps: int, stacked: bool, fast_compile: bool,
                 remat: str, batch_sharding=None, unroll: int = 1):
    """``make_train_chunk``'s program, one per remat policy and layer unroll (``model.remat_policy``,
    ``model.layer_unroll``, read when the program is made: a change of ``$JAXSCALE_REMAT`` or
    ``$JAXSCALE_LAYER_UNROLL`` makes a new program, never a stale one)."""
    layout = layout_for(cfg, optim.decay_all)

    def chunk(fs, hyper, dims, arrays, key, start, n):
        def one(fs, hyper, dims, inputs, targets, weights):
            return flat_step(fs, hyper, inputs, targets, weights, cfg=cfg, optim=optim, layout=layout, dims=dims,
                             remat=remat, unroll=unroll)

        step_fn = jax.vmap(one, in_axes=(0, 0, 0, None, None, None)) if stacked else one
        k = hyper.lr.shape if stacked else ()
        losses = jnp.full((max_steps,) + k, jnp.nan, jnp.float32)

        def body(i, carry):
            fs, losses = carry
            inputs, targets, weights = sampler(arrays, key, start + i)
            if batch_sharding is not None:
                inputs, targets, weights = (None if x is None else jax.lax.with_sharding_constraint(x, batch_sharding)
                                            for x in (inputs, targets, weights))
            fs, metrics = step_fn(fs, hyper, dims, inputs, targets, weights)
            return fs, losses.at[i].set(metrics["loss"])

        return jax.lax.fori_loop(0, n, body, (fs, losses))

    return jax.jit(chunk, donate_argnums=(0,), compiler_options=compiler_options(fast_compile))


def make_eval(cfg: ModelConfig, *, stacked: bool, batch_size: int = 64, unoptimised: bool = False,
              layout: FlatLayout | None = None):
    """A jitted ``evaluate(params, dims, rows[M, T+1], weights[M, T]) -> loss``: the weighted
    mean next-token loss over all held-out rows (per model if stacked), dropout off. Rows are
    scored in batches with ``lax.map`` to bound activation memory. ``unoptimised``: compiled
    without LLVM's optimisations on a CPU (``compile_mode.unoptimised_pays``). ``layout``: the
    parameters come as the training state's flat vector in that layout (``FlatState.params_P``),
    not as the named tree. One program per config but its name (``program_config``)."""
    if layout is not None and dict(zip(layout.names, layout.shapes)) != param_shapes(cfg):
        raise ValueError(f"make_eval: `layout` holds the leaves {dict(zip(layout.names, layout.shapes))}, "
                         f"not those of the config {cfg.name!r} ({param_shapes(cfg)})")
    return _eval_program(program_config(cfg), stacked, batch_size, unoptimised, layout)


@functools.lru_cache(maxsize=64)
def _eval_program(cfg: ModelConfig, stacked: bool, batch_size: int, unoptimised: bool, layout: FlatLayout | None):
    """``make_eval``'s program."""

    def one(params, dims, rows, weights):
        if layout is not None:
            params = split_leaves(layout, params)
        m = rows.shape[0]
        pad = (-m) % batch_size
        r = jnp.concatenate([rows, jnp.zeros((pad, rows.shape[1]), rows.dtype)], axis=0)
        w = jnp.concatenate([weights, jnp.zeros((pad, weights.shape[1]), weights.dtype)], axis=0)

        def score(args):
            rb, wb = args
            logits = forward(params, rb[:, :-1], cfg, dims=dims)
            logz = jax.nn.logsumexp(logits, axis=-1)
            gold = jnp.take_along_axis(logits, rb[:, 1:, None], axis=-1)[..., 0]
            return jnp.sum((logz - gold) * wb)

        total = jnp.sum(jax.lax.map(score, (r.reshape(-1, batch_size, rows.shape[1]),
                                            w.reshape(-1, batch_size, weights.shape[1]))))
        return total / jnp.maximum(jnp.sum(weights), 1.0)

    fn = jax.vmap(one, in_axes=(0, 0, None, None)) if stacked else one
    return jax.jit(fn, compiler_options=run_few_times_options(0.0 if unoptimised else None))
