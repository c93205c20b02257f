"""Shared numerical helpers for the fits: Huber loss, a vmapped multi-start L-BFGS driver built on
optax, bootstrap resampling weights (interval summaries: ``estimate.py``).

Everything here is a pure function of arrays. The optimiser is optax's L-BFGS with its zoom line
search; this module only drives it: many starting points (or many bootstrap resamples) are
advanced together by one ``jax.vmap``-ed step inside a ``lax.while_loop`` that stops as soon as
every lane has converged, and a converged lane is frozen so it cannot drift.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

# the interval summaries, re-exported: the fits reach them as ``_optim.make_estimate`` and so on
from jaxscale.fit.estimate import Estimate, check_level, make_estimate, percentile_interval

__all__ = [
    "as_positive_array", "check_seed_losses", "Estimate", "make_estimate", "log_space_fit_stats",
    "distinct_best",
    "huber", "run_lbfgs", "LBFGSResult", "bootstrap_weights", "bootstrap_lane", "seed_bootstrap_means",
    "refit_from_starts",
    "lane_weights_and_targets",
    "percentile_interval", "check_level", "float64", "check_same_length",
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
    "objective", "max_iter", "max_linesearch_steps", "memory_size", "prune_after"))
def _lbfgs_batched(objective, x0, shared, lane, *, max_iter, max_linesearch_steps, memory_size,
                   gtol, ftol, fatol, prune_after, prune_ratio):
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
        it, _, _, _, done, _, _, _ = carry
        return jnp.logical_and(it < max_iter, jnp.logical_not(jnp.all(done)))

    def body(carry):
        it, x, state, v, done, gn, x_best, v_best = carry
        x_new, state_new, v_old, v_new, g_new = jax.vmap(
            step_lane, in_axes=(0, 0, data_axes))(x, state, data)
        gnorm = jnp.sqrt(jnp.sum(g_new * g_new, axis=-1))
        ok = jnp.all(jnp.isfinite(x_new), axis=-1) & jnp.isfinite(v_new)
        small_step = jnp.abs(v_old - v_new) <= ftol * jnp.maximum(jnp.abs(v_new), 1e-30)
        now_done = (gnorm <= gtol) | (small_step & (it > 0)) | (v_new <= fatol) | ~ok
        if prune_after is not None:
            # Lanes still far above the best lane after `prune_after` iterations are in worse
            # basins: stop spending iterations on them.
            best = jnp.min(jnp.where(jnp.isfinite(v_new), v_new, jnp.inf))
            now_done = now_done | ((it >= prune_after) & (v_new > prune_ratio * best))
        keep = done | ~ok
        sel = lambda a, b: jnp.where(  # noqa: E731
            jnp.reshape(keep, keep.shape + (1,) * (a.ndim - 1)), a, b)
        x_out = sel(x, x_new)
        state_out = jax.tree.map(sel, state, state_new)
        v_out = jnp.where(keep, v, v_new)
        gn_out = jnp.where(keep, gn, gnorm)
        # The lowest point each lane has visited. When a line search gives up it returns its last
        # trial step, which can raise the objective; usually later steps recover, but a refit can
        # also wander off to a flat region far away and "converge" there (bootstrap refits of a
        # power law that all started at alpha = 0.23 ended at alpha ~ 1e8), so a lane returns
        # its best point, never one above its start.
        better = ~keep & (v_out < v_best)
        x_best = jnp.where(better[:, None], x_out, x_best)
        v_best = jnp.where(better, v_out, v_best)
        return it + 1, x_out, state_out, v_out, done | now_done, gn_out, x_best, v_best

    gn0 = jnp.sqrt(jnp.sum(g0 * g0, axis=-1))
    v0 = jnp.where(jnp.isfinite(v0), v0, jnp.inf)
    it, x, _, v, done, gn, x_best, v_best = jax.lax.while_loop(
        cond, body, (0, x0, state0, v0, done0, gn0, x0, v0))
    return x_best, v_best, gn, done, it


def run_lbfgs(objective: Callable, x0, shared=None, lane=None, *, max_iter: int = 200,
              max_linesearch_steps: int = 12, memory_size: int = 10, gtol: float = 1e-9,
              ftol: float = 1e-12, fatol: float = 0.0, prune_after: int | None = None,
              prune_ratio: float = 1.5) -> LBFGSResult:
    """Minimise ``objective(x, shared, lane_k)`` from every row of ``x0`` (K, P), all lanes at once.

    ``shared`` is passed unchanged to every lane; ``lane`` is a pytree whose leaves have a leading
    axis of length K (one slice per lane), or ``None``. A lane stops when its gradient norm is
    at most ``gtol``, its objective changed by at most ``ftol`` (relative) in one iteration, or
    its objective is at most ``fatol`` (an exact fit), or after ``max_iter`` iterations. Each lane
    returns the lowest point it visited (never one above its start). With
    ``prune_after``, a lane whose objective is still above ``prune_ratio`` times the best lane's
    after that many iterations is stopped (use it when only the best lane matters).
    ``objective`` must be a hashable module-level function (it is a static argument of ``jit``).
    """
    x0 = jnp.asarray(x0)
    x, v, gn, done, it = _lbfgs_batched(
        objective, x0, shared, lane, max_iter=int(max_iter),
        max_linesearch_steps=int(max_linesearch_steps), memory_size=int(memory_size),
        gtol=gtol, ftol=ftol, fatol=fatol, prune_after=prune_after, prune_ratio=prune_ratio)
    return LBFGSResult(np.asarray(x), np.asarray(v), np.asarray(gn), np.asarray(done), int(it))


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def as_positive_array(name: str, value, *, min_len: int = 1) -> np.ndarray:
    """``value`` as a 1-D float64 array of finite, strictly positive numbers, else ``ValueError``
    naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numbers, got {value!r}") from err
    arr = np.atleast_1d(arr)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name}: need at least {min_len} points, got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} value(s) are NaN or infinite "
                         f"(first at index {int(np.argmax(bad))})")
    if (arr <= 0).any():
        raise ValueError(f"{name}: all values must be > 0; {int((arr <= 0).sum())} are not "
                         f"(first at index {int(np.argmax(arr <= 0))})")
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise ``ValueError`` naming the arrays when their lengths differ; return the length."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"mismatched lengths: {desc}")
    return next(iter(lengths.values()))


def check_seed_losses(seed_losses, n: int) -> np.ndarray | None:
    """Per-point seed losses as an (n, S) float64 array with NaN for missing seeds."""
    if seed_losses is None:
        return None
    arr = np.asarray(seed_losses, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"seed_losses: expected shape ({n}, S), got {arr.shape}")
    present = np.isfinite(arr)
    if not present.any(axis=1).all():
        raise ValueError("seed_losses: every point needs at least one finite seed loss")
    if (arr[present] <= 0).any():
        raise ValueError("seed_losses: losses must be > 0")
    return arr


# --------------------------------------------------------------------------------------------
# Bootstrap resampling and intervals
# --------------------------------------------------------------------------------------------

def bootstrap_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Case-resampling bootstrap as multiplicity weights: (B, n) counts summing to n per row."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)


def bootstrap_lane(n: int, n_pad: int, n_resamples: int, seed: int, seed_losses: np.ndarray | None):
    """The per-resample inputs of a vmapped bootstrap refit: case weights (B, n_pad) and, with
    per-seed losses, each resample's seed-resampled log losses (B, n_pad) as a second lane."""
    rng = np.random.default_rng(seed)
    lane = jnp.asarray(pad(bootstrap_weights(n, n_resamples, rng), n_pad))
    if seed_losses is None:
        return lane
    log_y = np.log(seed_bootstrap_means(seed_losses, n_resamples, rng))
    return lane, jnp.asarray(pad(log_y, n_pad))


def refit_from_starts(objective: Callable, starts, shared, lane, n_resamples: int,
                      **lbfgs_kwargs) -> LBFGSResult:
    """Refit every bootstrap resample from every row of ``starts`` (S, P) and keep, per resample,
    the lowest finite objective: (n_resamples, P) parameters, objective and convergence.

    Why several starts: warm-starting every resample from the full-data optimum alone is cheap,
    but when that optimum lies on a boundary (a power law's floor B → 0) the objective is flat
    there in the boundary parameter, and no resample's refit ever leaves it: the interval then
    hides the very uncertainty it should show. ``lane`` is ``bootstrap_lane``'s output."""
    starts = np.asarray(starts, dtype=np.float64)
    S = starts.shape[0]
    x0 = jnp.asarray(np.tile(starts, (n_resamples, 1)))               # resample-major
    lanes = jax.tree.map(lambda a: jnp.repeat(a, S, axis=0), lane)
    r = run_lbfgs(objective, x0, shared, lanes, **lbfgs_kwargs)
    finite = np.isfinite(r.values) & np.all(np.isfinite(r.params), axis=1)
    v = np.where(finite, r.values, np.inf).reshape(n_resamples, S)
    k = np.argmin(v, axis=1)
    pick = np.arange(n_resamples) * S + k
    return LBFGSResult(r.params[pick], r.values[pick], r.grad_norms[pick], r.converged[pick],
                       r.iterations)


def lane_weights_and_targets(lane, mask, log_y):
    """(weights, log targets) an objective sums over, from what ``bootstrap_lane`` made: the
    full-data fit (``lane`` None: the padding mask and the data), bootstrap case weights alone,
    or case weights with seed-resampled log losses (a tuple)."""
    if lane is None:
        return mask, log_y
    if isinstance(lane, tuple):
        return lane
    return lane, log_y


def seed_bootstrap_means(seed_losses: np.ndarray, n_resamples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Resample each point's seeds with replacement and average: (B, n) resampled mean losses.

    ``seed_losses`` is (n, S) with NaN where a point has fewer than S seeds."""
    n, S = seed_losses.shape
    counts = np.isfinite(seed_losses).sum(axis=1)                      # (n,)
    filled = np.where(np.isfinite(seed_losses), seed_losses, 0.0)
    # Sort each row so the present seeds come first, then draw indices below each row's count.
    order = np.argsort(~np.isfinite(seed_losses), axis=1, kind="stable")
    packed = np.take_along_axis(filled, order, axis=1)                 # (n, S)
    draws = np.floor(rng.random((n_resamples, n, S)) * counts[None, :, None]).astype(int)
    picked = np.take_along_axis(np.broadcast_to(packed, (n_resamples, n, S)), draws, axis=2)
    mask = np.arange(S)[None, None, :] < counts[None, :, None]
    return (picked * mask).sum(axis=2) / counts[None, :]


FLOOR_BOUNDARY_FRACTION = 1e-2


def floor_identified(floor: float, losses) -> bool:
    """Whether a fitted irreducible loss ``floor`` is identified by the data ``losses``: at least
    ``FLOOR_BOUNDARY_FRACTION`` of the smallest one. When it is not, the loss was still falling as
    fast as a pure power law over the data (the floor lies below what they can show): the fitted
    exponent then describes the whole loss over this range, not its reducible part, and the
    floor's interval says how large a floor the data still allow."""
    return bool(floor >= FLOOR_BOUNDARY_FRACTION * float(np.min(losses)))


def log_space_fit_stats(log_pred: np.ndarray, log_y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(R² of log-loss, RMSE of log-loss, residuals log ŷ − log y)."""
    resid = np.asarray(log_pred, np.float64) - np.asarray(log_y, np.float64)
    ss_res = float(np.sum(resid ** 2))
    ss_tot = float(np.sum((log_y - np.mean(log_y)) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return r2, float(np.sqrt(np.mean(resid ** 2))), resid


def distinct_best(params: np.ndarray, values: np.ndarray, k: int, tol: float = 1e-3) -> np.ndarray:
    """Indices of the ``k`` lowest finite values whose parameter vectors differ (max-abs) by more
    than ``tol`` from every one kept before them."""
    finite = np.isfinite(values) & np.all(np.isfinite(params), axis=1)
    order = np.argsort(np.where(finite, values, np.inf), kind="stable")
    order = order[finite[order]]
    keys = np.round(np.clip(params[order] / tol, -1e15, 1e15)).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    kept = order[np.sort(first)]
    return kept[:k]


def padded_size(n: int, minimum: int = 16) -> int:
    """Data are padded (with zero weight) to a power of two, so fits of similar sizes share one
    compiled program instead of compiling per point count."""
    return max(minimum, 1 << (int(n) - 1).bit_length())


def pad(values: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """Pad the last axis of ``values`` to ``size`` with ``fill``."""
    values = np.asarray(values, np.float64)
    extra = size - values.shape[-1]
    if extra < 0:
        raise ValueError(f"pad: {values.shape[-1]} > {size}")
    widths = [(0, 0)] * (values.ndim - 1) + [(0, extra)]
    return np.pad(values, widths, constant_values=fill)
