"""One model's parameters as one flat vector, for the optimiser inside the compiled training loop.

Why: AdamW, clipping and the divergence freeze are elementwise over every parameter. Applied leaf
by leaf to a GPT's sixteen arrays they compile to dozens of small loops per step (and a global
norm gathered from sixteen partial sums), and on a CPU a small model's step is dominated by that
per-loop cost, not by arithmetic. On one flat vector they are one fused loop, and the program
is smaller: measured on the 2-core CPU (``jaxscale bench --preset notebook-emergence``, the same
command before and after), compiling each notebook-emergence model's training program took
4.7-6.1 s instead of 7.1-8.9 s; the steady-state step moved within the machine's noise there, and
was ~20% faster for the largest model (442k parameters) in interleaved in-process timings.

A group's state is made flat once, on the host, before its first dispatch, and the compiled
training program takes and returns the flat vectors (``train.FlatState``), so it holds no
conversion: measured on the 2-core CPU, converting inside the program on every dispatch (a
concatenation per vector in, a slice per leaf and vector out) cost the notebook-emergence large
model's program 0.35-0.4 s of its ~3.5 s compile. The named tree comes back on the host
(``split_host``) where it is needed: checkpoints, final weights, results; the held-out
evaluation reads the flat parameters through ``split_leaves``.

The forward pass reads the leaves as slices of the vector through :func:`unravel`, whose
derivative is written by hand as a concatenation of the leaves' gradients (differentiating plain
slicing would instead add one zero-padded full-length vector per leaf).

Leaves are laid out decayed-first (matrices and embeddings, then biases and LayerNorm gains), so
the weight-decay mask is one comparison with the vector index.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class FlatLayout(NamedTuple):
    """Where each named leaf lives in the flat vector (static: hashable, fixed at trace time)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]  # start of each leaf; offsets[-1] (one past the last) is the total
    n_decayed: int            # the first n_decayed entries get weight decay

    @property
    def size(self) -> int:
        return self.offsets[-1]


def layout_of(params: dict, decayed: frozenset | set, *, decay_all: bool = False, batch_dims: int = 0) -> FlatLayout:
    """The layout of a parameter tree (``batch_dims`` leading axes, e.g. a stack's model axis, are
    not part of a leaf's shape). ``decayed`` names the leaves that get weight decay."""
    return layout_from_shapes({n: tuple(x.shape[batch_dims:]) for n, x in params.items()}, decayed,
                              decay_all=decay_all)


def layout_from_shapes(shapes_by_name: dict, decayed: frozenset | set, *, decay_all: bool = False) -> FlatLayout:
    """``layout_of`` from one model's leaf shapes (name -> shape)."""
    names = sorted(shapes_by_name, key=lambda n: (not (decay_all or n in decayed), n))
    shapes = tuple(tuple(shapes_by_name[n]) for n in names)
    sizes = [math.prod(s) for s in shapes]
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    n_decayed = sum(s for n, s in zip(names, sizes) if decay_all or n in decayed)
    return FlatLayout(tuple(names), shapes, tuple(offsets), n_decayed)


def ravel(layout: FlatLayout, tree: dict) -> jax.Array:
    """The tree's leaves (one model's) concatenated in layout order: a vector [P]."""
    return jnp.concatenate([jnp.reshape(tree[n], (-1,)) for n in layout.names])


def ravel_host(layout: FlatLayout, tree: dict) -> np.ndarray:
    """``ravel`` on the host (numpy), over the last axis: a leaf's leading axes beyond its shape
    in ``layout`` (a stack's model axis) are kept, so a stack's tree gives [K, P]. A tree of
    other leaves or shapes than the layout's (e.g. a state padded to another envelope) is refused."""
    if set(tree) != set(layout.names):
        raise ValueError(f"ravel_host: the tree's leaves {sorted(tree)} are not the layout's {sorted(layout.names)}")
    leaves = [np.asarray(tree[n]) for n in layout.names]
    for n, x, shape in zip(layout.names, leaves, layout.shapes):
        if x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != shape:
            raise ValueError(f"ravel_host: leaf {n!r} has shape {x.shape}, the layout holds {shape}")
    lead = {x.shape[:x.ndim - len(shape)] for x, shape in zip(leaves, layout.shapes)}
    if len(lead) > 1:
        raise ValueError(f"ravel_host: the leaves' leading axes differ: {sorted(lead)}")
    return np.concatenate([x.reshape(x.shape[:x.ndim - len(shape)] + (-1,)) for x, shape in zip(leaves, layout.shapes)],
                          axis=-1)


def split_host(layout: FlatLayout, vec_P: np.ndarray) -> dict:
    """``split_leaves`` on the host (numpy views), over the last axis ([K, P] gives leaves with
    the leading K axis)."""
    vec = np.asarray(vec_P)
    if vec.ndim < 1 or vec.shape[-1] != layout.size:
        raise ValueError(f"split_host: `vec_P` has shape {vec.shape}, the layout holds {layout.size} entries "
                         "on its last axis")
    o, lead = layout.offsets, vec.shape[:-1]
    return {n: vec[..., o[i]:o[i + 1]].reshape(lead + layout.shapes[i]) for i, n in enumerate(layout.names)}


def split_leaves(layout: FlatLayout, vec_P: jax.Array) -> dict:
    """The named leaves as slices of the vector (plain slicing: for use outside a gradient)."""
    o = layout.offsets
    return {n: jax.lax.slice_in_dim(vec_P, o[i], o[i + 1]).reshape(layout.shapes[i])
            for i, n in enumerate(layout.names)}


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _unravel(layout: FlatLayout, vec_P: jax.Array) -> dict:
    return split_leaves(layout, vec_P)


def _unravel_fwd(layout, vec_P):
    return split_leaves(layout, vec_P), None


def _unravel_bwd(layout, _, grads):
    return (ravel(layout, grads),)


_unravel.defvjp(_unravel_fwd, _unravel_bwd)


def unravel(layout: FlatLayout, vec_P: jax.Array) -> dict:
    """The named tree viewed from a flat vector; its gradient comes back as one flat vector."""
    return _unravel(layout, vec_P)


def decay_mask(layout: FlatLayout) -> jax.Array:
    """bool [P]: True where weight decay applies (the first ``n_decayed`` entries)."""
    return jnp.arange(layout.size) < layout.n_decayed
