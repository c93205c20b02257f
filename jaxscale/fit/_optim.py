"""Shared numerical helpers for the fits: Huber loss, a vmapped multi-start L-BFGS driver built on
optax, bootstrap resampling weights and interval summaries.

Everything here is a pure function of arrays. The optimiser is optax's L-BFGS with its zoom line
search; this module only drives it: many starting points (or many bootstrap resamples) are
advanced together by one ``jax.vmap``-ed step inside a ``lax.while_loop`` that stops as soon as
every lane has converged, and a converged lane is frozen so it cannot drift.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "huber", "run_lbfgs", "LBFGSResult", "bootstrap_weights", "seed_bootstrap_means",
    "percentile_interval", "Interval", "float64", "check_positive_finite", "check_same_length",
]


def float64():
    """Context in which JAX computes in float64, without touching the global configuration."""
    return jax.enable_x64(True)


def huber(r: jax.Array, delta: float) -> jax.Array:
    """Elementwise Huber loss: ``r²/2`` for ``|r| ≤ δ``, ``δ(|r| − δ/2)`` beyond."""
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclasses.dataclass(frozen=True)
class LBFGSResult:
    params: np.ndarray      # (K, P) final parameters per lane
    values: np.ndarray      # (K,) final objective per lane
    grad_norms: np.ndarray  # (K,) final gradient norm per lane
    converged: np.ndarray   # (K,) bool
    iterations: int         # iterations of the slowest lane


def _make_solver(max_linesearch_steps: int, memory_size: int):
    return optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=max_linesearch_steps, initial_guess_strategy="one"),
    )


@functools.partial(jax.jit, static_argnames=(
    "objective", "max_iter", "max_linesearch_steps", "memory_size"))
def _lbfgs_batched(objective, x0, shared, lane, *, max_iter, max_linesearch_steps, memory_size,
                   gtol, ftol):
    """Run L-BFGS on every lane of ``x0`` (K, P). ``shared`` is broadcast to every lane; ``lane``
    is a pytree whose leaves have a leading K axis (per-lane data, e.g. bootstrap weights)."""
    solver = _make_solver(max_linesearch_steps, memory_size)

    def lane_fun(x, d):
        return objective(x, shared, d)

    def init_lane(x, d):
        state = solver.init(x)
        v, g = jax.value_and_grad(lane_fun)(x, d)
        return state, v, g

    def step_lane(x, state, d):
        fun = lambda p: lane_fun(p, d)  # noqa: E731
        v, g = optax.value_and_grad_from_state(fun)(x, state=state)
        updates, state = solver.update(g, state, x, value=v, grad=g, value_fn=fun)
        x_new = optax.apply_updates(x, updates)
        v_new = optax.tree.get(state, "value")
        g_new = optax.tree.get(state, "grad")
        return x_new, state, v, v_new, g_new

    data = lane
    data_axes = jax.tree.map(lambda _: 0, data)
    state0, v0, g0 = jax.vmap(init_lane, in_axes=(0, data_axes))(x0, data)
    K = x0.shape[0]
    done0 = jnp.zeros((K,), bool)

    def cond(carry):
        it, _, _, _, done, _ = carry
        return jnp.logical_and(it < max_iter, jnp.logical_not(jnp.all(done)))

    def body(carry):
        it, x, state, v, done, gn = carry
        x_new, state_new, v_old, v_new, g_new = jax.vmap(
            step_lane, in_axes=(0, 0, data_axes))(x, state, data)
        gnorm = jnp.sqrt(jnp.sum(g_new * g_new, axis=-1))
        ok = jnp.all(jnp.isfinite(x_new), axis=-1) & jnp.isfinite(v_new)
        small_step = jnp.abs(v_old - v_new) <= ftol * jnp.maximum(jnp.abs(v_new), 1e-30)
        now_done = (gnorm <= gtol) | (small_step & (it > 0)) | ~ok
        keep = done | ~ok
        sel = lambda a, b: jnp.where(  # noqa: E731
            jnp.reshape(keep, keep.shape + (1,) * (a.ndim - 1)), a, b)
        x_out = sel(x, x_new)
        state_out = jax.tree.map(sel, state, state_new)
        v_out = jnp.where(keep, v, v_new)
        gn_out = jnp.where(keep, gn, gnorm)
        return it + 1, x_out, state_out, v_out, done | now_done, gn_out

    gn0 = jnp.sqrt(jnp.sum(g0 * g0, axis=-1))
    it, x, _, v, done, gn = jax.lax.while_loop(cond, body, (0, x0, state0, v0, done0, gn0))
    return x, v, gn, done, it


def run_lbfgs(objective: Callable, x0, shared=None, lane=None, *, max_iter: int = 200,
              max_linesearch_steps: int = 12, memory_size: int = 10, gtol: float = 1e-9,
              ftol: float = 1e-12) -> LBFGSResult:
    """Minimise ``objective(x, shared, lane_k)`` from every row of ``x0`` (K, P), all lanes at once.

    ``shared`` is passed unchanged to every lane; ``lane`` is a pytree whose leaves have a leading
    axis of length K (one slice per lane), or ``None``.
    ``objective`` must be a hashable module-level function (it is a static argument of ``jit``).
    """
    x0 = jnp.asarray(x0)
    x, v, gn, done, it = _lbfgs_batched(
        objective, x0, shared, lane, max_iter=int(max_iter),
        max_linesearch_steps=int(max_linesearch_steps), memory_size=int(memory_size),
        gtol=gtol, ftol=ftol)
    return LBFGSResult(np.asarray(x), np.asarray(v), np.asarray(gn), np.asarray(done), int(it))
