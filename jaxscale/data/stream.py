"""Deterministic batches: random training windows drawn on the device, fixed evaluation windows.

Training batches are a pure function of (data seed, global step): window starts are hashed from
``rng.fold(PRNGKey(data_seed), step)`` (``jaxscale/rng.py``), inside the compiled training loop, so
there is no host-to-device traffic per step and a resumed or restacked run sees the same batches.
Every model of a stack sees the same batch at the same step (the usual protocol of scaling-law
sweeps); models differ by their own seed (initialisation and dropout).

Evaluation uses a fixed set of evenly spaced, non-overlapping windows of a split, so every model
and every evaluation point is scored on the same tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.rng import fold, index_bits


def data_key(data_seed: int) -> jax.Array:
    """``jax.random.PRNGKey(data_seed)``. For JAX's default PRNG (threefry2x32) and a seed in
    [0, 2^31), whose key is ``[0, seed]`` as uint32, it is made on the host: made by JAX it cost
    two small compiles at the start of every run. Any other seed or PRNG: JAX's own."""
    if not isinstance(data_seed, (int, np.integer)) or isinstance(data_seed, bool) \
            or jax.config.jax_default_prng_impl != "threefry2x32" or jax.config.jax_enable_custom_prng \
            or not 0 <= data_seed < 2**31:
        return jax.random.PRNGKey(data_seed)
    return jax.device_put(np.array([0, data_seed], np.uint32))


def sample_batch(tokens_N: jax.Array, key: jax.Array, step: jax.Array, batch_size: int,
                 seq_len: int) -> tuple[jax.Array, jax.Array]:
    """Inputs and next-token targets, each [batch_size, seq_len] int32, for global ``step``."""
    n = tokens_N.shape[0]
    # hashed counters, not threefry (see jaxscale/rng.py); modulo bias < n / 2^32
    starts_B = (index_bits(fold(key, step), (batch_size,)) % jnp.uint32(n - seq_len)).astype(jnp.int32)
    idx_BT = starts_B[:, None] + jnp.arange(seq_len + 1)[None, :]
    window_BT = jnp.take(tokens_N, idx_BT, axis=0).astype(jnp.int32)
    return window_BT[:, :-1], window_BT[:, 1:]


def eval_windows(tokens: np.ndarray, seq_len: int, max_windows: int) -> np.ndarray:
    """Up to ``max_windows`` evenly spaced windows of seq_len + 1 tokens [M, T+1] whose scored
    targets (each window's last seq_len tokens) do not overlap; neighbouring windows may share one
    boundary token, the next window's first input."""
    if max_windows <= 0:
        raise ValueError(f"max_windows must be positive, got {max_windows}")
    n_fit = (tokens.size - 1) // seq_len
    if n_fit < 1:
        raise ValueError(f"a split of {tokens.size} tokens holds no window of {seq_len} + 1 tokens")
    m = min(max_windows, n_fit)
    starts = (np.arange(m) * ((tokens.size - seq_len - 1) // max(m - 1, 1))) if m > 1 else np.zeros(1, int)
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    return np.asarray(tokens)[idx].astype(np.int32)
