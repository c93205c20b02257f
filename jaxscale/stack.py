"""Many models as one: the envelope of a group of configs, zero-padding to it, and back.

Every model is initialised at its true shape (true fan-in, its own seed), then zero-padded along
the named axes of ``model.PARAM_AXES`` to the group's envelope; ``model.forward`` with the
model's true ``ModelDims`` masks the padding so the padded model computes exactly what the
unpadded one does (DESIGN.md §3). Padded parameters receive zero gradients and AdamW keeps them
at zero, which the tests check.

Models can share a stack only if the arrays that are never padded agree: vocabulary, context,
head size, tying, dropout rate and matmul dtype (``stack_key``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxscale.config import ModelConfig
from jaxscale.model import PARAM_AXES, ModelDims


def stack_key(cfg: ModelConfig) -> tuple:
    """Configs with equal keys can be padded into one stack."""
    return (cfg.vocab_size, cfg.max_seq_len, cfg.head_dim, cfg.tie_embeddings, cfg.dropout, cfg.dtype)


def envelope(cfgs: Sequence[ModelConfig]) -> ModelConfig:
    """The smallest config whose arrays hold every config of the group."""
    if not cfgs:
        raise ValueError("envelope: no configs given")
    first = cfgs[0]
    for cfg in cfgs[1:]:
        for field, a, b in zip(("vocab_size", "max_seq_len", "head_dim", "tie_embeddings", "dropout", "dtype"),
                               stack_key(first), stack_key(cfg)):
            if a != b:
                raise ValueError(f"models {first.name!r} and {cfg.name!r} cannot share a stack: "
                                 f"{field} differs ({a!r} vs {b!r})")
    # head size is shared, so max(d_model) = max(n_heads) × head size and the envelope is valid.
    return first.replace(d_model=max(c.d_model for c in cfgs), n_heads=max(c.n_heads for c in cfgs),
                         n_layers=max(c.n_layers for c in cfgs), d_ff=max(c.d_ff for c in cfgs),
                         name="envelope")


def _axis_sizes(cfg: ModelConfig) -> dict[str, int]:
    return {"vocab": cfg.vocab_size, "seq": cfg.max_seq_len, "d_model": cfg.d_model, "layer": cfg.n_layers,
            "qkv": 3, "head": cfg.n_heads, "head_dim": cfg.head_dim, "d_ff": cfg.d_ff}


def pad_params(params: dict, target: ModelConfig) -> dict:
    """Zero-pad every (host numpy) array at the end of each named axis to ``target``'s sizes."""
    sizes = _axis_sizes(target)
    out = {}
    for name, arr in params.items():
        want = [sizes[a] for a in PARAM_AXES[name]]
        if any(w < s for w, s in zip(want, arr.shape)):
            raise ValueError(f"parameter {name!r} of shape {arr.shape} does not fit the envelope {tuple(want)}")
        out[name] = np.pad(arr, [(0, w - s) for w, s in zip(want, arr.shape)])
    return out


def unpad_params(params: dict, cfg: ModelConfig) -> dict:
    """The true-shape slice of a padded parameter dict."""
    sizes = _axis_sizes(cfg)
    return {name: arr[tuple(slice(0, sizes[a]) for a in PARAM_AXES[name])] for name, arr in params.items()}


def stack_trees(trees: Sequence) -> object:
    """Stack equal-structure pytrees along a new leading (model) axis (on the host: no compiles)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def unstack_tree(tree, k: int) -> list:
    return [jax.tree.map(lambda x: x[i], tree) for i in range(k)]


def stack_dims(cfgs: Sequence[ModelConfig]) -> ModelDims:
    return ModelDims(*(jax.device_put(np.asarray(v, np.int32)) for v in zip(
        *[(c.d_model, c.n_heads, c.n_layers, c.d_ff) for c in cfgs])))


def stack_dims_if_padded(cfgs: Sequence[ModelConfig]) -> ModelDims | None:
    """``stack_dims`` when some model of the stack is smaller than the envelope, else None.

    A stack of one shape (seeds, learning rates or budgets of one size: the common sweep) has no
    padding, so the forward pass needs none of the masks (width, heads, MLP, depth) and runs the
    same program as a model alone, vmapped: the closest a stack can be to its models alone. (With
    dims the masks are all ones; measured on the 2-core CPU, dropping them changed the K = 8
    notebook-emergence micro stack's step by less than the noise.)"""
    env = envelope(cfgs)
    same = all((c.d_model, c.n_heads, c.n_layers, c.d_ff) == (env.d_model, env.n_heads, env.n_layers, env.d_ff)
               for c in cfgs)
    return None if same else stack_dims(cfgs)


def padded_flops_utilisation(cfgs: Sequence[ModelConfig], seq_len: int | None = None,
                             env: ModelConfig | None = None) -> float:
    """Share of a program's FLOPs that is useful work: Σ true FLOPs / (K × ``env`` FLOPs), ``env``
    the shape it runs at (default the envelope of ``cfgs``: a stack's; a model alone on a shared
    program runs at its set's)."""
    env = env or envelope(cfgs)
    t = seq_len or env.max_seq_len
    true = sum(c.flops_per_token(seq_len=t).total for c in cfgs)
    return true / (len(cfgs) * env.flops_per_token(seq_len=t).total)
