"""Random bits inside the training step: counter-based hashing instead of threefry.

Why: every key the step derives (the step's dropout key, one per dropout site and layer, the data
order of each epoch) used to come from ``jax.random.fold_in``. On a CPU, JAX lowers threefry with
*rolled* loops (to keep compile time down), so each ``fold_in`` is a small ``while`` loop of a few
dozen scalar thunks; in the notebook's emergence model (six layers, three dropout sites each) that
was 24 loops per step, a fixed cost that dwarfs the model's work at one 4-token sequence per step.
Here a key is folded with MurmurHash3's finaliser (a bijective 32-bit avalanche mix), a handful of
fused elementwise integer ops, and dropout bits are hashed from each element's index.

The draws are a pure function of (key, ids): a model trained in a stack, alone, padded or not,
draws the same bits. They are not threefry's bits, so a change of this module changes every
dropout mask and shuffled data order (the results' numbers move within seed-to-seed noise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: spreads consecutive counters over the word


def fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijective avalanche mix of a uint32."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _words(key: jax.Array) -> jax.Array:
    """The key's uint32 words, last axis (a typed key or a legacy ``PRNGKey`` array)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key).astype(jnp.uint32)
    return key.astype(jnp.uint32)


def fold(key: jax.Array, *ids) -> jax.Array:
    """``key`` with the integers ``ids`` mixed in; same kind and shape as ``key`` (the stand-in
    for chained ``jax.random.fold_in`` calls, without threefry's loops).

    The ids are chained into one salt (one avalanche mix per id, so that ``(1, 2)`` and
    ``(2, 1)`` differ), then each key word is mixed with the salt and with its neighbour word,
    so every output word depends on every input word and every id. Mixing each id into the
    words one by one cost two more mixes per id and word; the step's dropout sites fold two ids
    each, and those mixes were a large part of a small model's compiled step."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    w = _words(key)
    n = w.shape[-1]
    if ids:
        salt = jnp.uint32(0x7F4A7C15)
        for i in ids:
            salt = fmix32(salt ^ (jnp.asarray(i).astype(jnp.uint32) * jnp.uint32(GOLDEN)))
        mixed = [fmix32(w[..., j] ^ salt ^ jnp.uint32((j * 0x632BE5AB) % 2**32)) for j in range(n)]
        w = jnp.stack([mixed[j] ^ (mixed[(j + 1) % n] >> 7) if n > 1 else mixed[j] for j in range(n)], axis=-1)
    if typed:
        return jax.random.wrap_key_data(w, impl=jax.random.key_impl(key))
    return w.astype(key.dtype)


def index_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 bits for every element of ``shape``, a function of (key, each axis index) only.

    Each axis index is hashed on its own (a 1-D array: one avalanche mix of the index spread
    by the golden ratio and salted by the key and the axis number, a bijection of the index);
    the per-axis hashes are XOR-combined by broadcasting and the result goes through one more
    avalanche mix. The bit for element (i, j, k) therefore does not depend on how long any axis
    is, and the per-element cost is one mix, whatever the rank.
    """
    salts = _words(key).reshape(-1)
    h = None
    for axis, n in enumerate(shape):
        salt = salts[axis % salts.shape[0]] ^ jnp.uint32((axis * 0x632BE5AB) % 2**32)
        idx = fmix32(jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(GOLDEN) + salt)
        idx = idx.reshape((1,) * axis + (n,) + (1,) * (len(shape) - axis - 1))
        h = idx if h is None else h ^ idx
    return fmix32(h)


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A random permutation of ``range(n)`` from ``key``: indices sorted by their hashed bits
    (ties, if any, broken by index), so no threefry loop either."""
    bits = index_bits(key, (n,))
    return jnp.argsort(bits, stable=True).astype(jnp.int32)


# ----- a model's dropout key, on the host ---------------------------------------------------------

_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32 (20 rounds; Salmon et al. 2011, the block cipher behind JAX's default PRNG)
    over uint32 numpy arrays."""
    def rotl(x, r):
        return (x << np.uint32(r)) | (x >> np.uint32(32 - r))

    k0, k1, x0, x1 = (np.asarray(v, np.uint32) for v in (k0, k1, x0, x1))
    with np.errstate(over="ignore"):
        ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
        x0, x1 = x0 + ks[0], x1 + ks[1]
        for i in range(5):
            for r in _THREEFRY_ROTATIONS[i % 2]:
                x0 = x0 + x1
                x1 = rotl(x1, r) ^ x0
            x0, x1 = x0 + ks[(i + 1) % 3], x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def host_dropout_keys(seeds):
    """``jax.random.fold_in(jax.random.PRNGKey(seed), 1)`` for int32 ``seeds`` (any shape), as a
    uint32 numpy array [..., 2], computed on the host. Why: built on the device, a model's initial
    state was a compiled program of its own (0.5 s of compile per model size on the 2-core CPU);
    with the key from here the state is host arrays and one transfer. Equal to JAX's for its
    default implementation (threefry2x32; tests check it); None for any other, whose keys the
    caller then draws with JAX."""
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    s = np.asarray(seeds, np.int32).astype(np.uint32)  # PRNGKey(seed) = [0, seed] for a 32-bit seed
    y0, y1 = _threefry2x32(np.zeros_like(s), s, np.zeros_like(s), np.ones_like(s))
    return np.stack([y0, y1], axis=-1)
