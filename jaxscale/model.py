"""The GPT, in Flax NNX, built so that a model padded to a larger shape computes exactly what it
computes alone.

Parameters are plain arrays with named axes (``PARAM_AXES``); the blocks' arrays carry a leading
layer axis and are applied with ``lax.scan``, so compile time stays flat as depth grows. The
forward pass is a pure function of the parameters: the train step differentiates it and *returns*
the new state (in-place NNX updates under plain ``jax.jit`` are silently lost). ``GPT``, the Flax
NNX module holding the same arrays as ``nnx.Param``, is in ``nnx_gpt.py`` (``jaxscale.model.GPT``
imports it on first use).

Padding contract (used by ``stack.py``): a model initialised at its true shape and zero-padded
along every named axis to an envelope, run with ``dims`` = its true sizes, gives the same logits
and the same gradients on its true entries, and zero gradients on the padding, because
  * LayerNorm statistics are taken over the true width and its output is masked;
  * attention pads the *number* of heads (head size fixed) and masks padded heads' outputs;
  * MLP hidden units beyond the true width are masked;
  * layers beyond the true depth are the identity inside the scan;
  * dropout draws each element's keep bit from the model's key and the element's *index*
    (batch, position, channel / head), never from the array's shape.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxscale.config import ModelConfig
# how the forward pass is compiled (attention, remat, layer unroll): model_switches.py
from jaxscale.model_switches import _with_remat, attention_impl, layer_unroll, remat_policy, resolve_remat
from jaxscale.rng import fold, index_bits

LN_EPS = 1e-5
INIT_STD = 0.02

# Axis names of every parameter, in order; ``stack.py`` pads along these (named after the config
# field that sets them; "qkv" is the fixed size-3 axis and "head_dim" is never padded).
PARAM_AXES: dict[str, tuple[str, ...]] = {
    "tok_emb": ("vocab", "d_model"),
    "pos_emb": ("seq", "d_model"),
    "ln1_scale": ("layer", "d_model"), "ln1_bias": ("layer", "d_model"),
    "wqkv": ("layer", "d_model", "qkv", "head", "head_dim"), "bqkv": ("layer", "qkv", "head", "head_dim"),
    "wo": ("layer", "head", "head_dim", "d_model"), "bo": ("layer", "d_model"),
    "ln2_scale": ("layer", "d_model"), "ln2_bias": ("layer", "d_model"),
    "w1": ("layer", "d_model", "d_ff"), "b1": ("layer", "d_ff"),
    "w2": ("layer", "d_ff", "d_model"), "b2": ("layer", "d_model"),
    "lnf_scale": ("d_model",), "lnf_bias": ("d_model",),
    "head_w": ("d_model", "vocab"), "head_b": ("vocab",),
}
# Parameters that AdamW decays (weight matrices and embeddings; not biases or LayerNorm gains).
DECAYED = frozenset({"tok_emb", "pos_emb", "wqkv", "wo", "w1", "w2", "head_w"})


class ModelDims(NamedTuple):
    """True sizes of a (possibly padded) model, as int32 scalars: a pytree, so it vmaps."""

    d_model: jax.Array
    n_heads: jax.Array
    n_layers: jax.Array
    d_ff: jax.Array

    @classmethod
    def of(cls, cfg: ModelConfig) -> "ModelDims":
        return cls(*(jnp.asarray(v, jnp.int32) for v in (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff)))

    @classmethod
    def of_host(cls, cfg: ModelConfig) -> "ModelDims":
        """``of`` as host numpy scalars (no device work)."""
        return cls(*(np.int32(v) for v in (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff)))


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Each parameter's true shape, in ``init_params``' drawing order (without the LM head's
    leaves when ``tie_embeddings``)."""
    d, h, e, L, f, v = cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.n_layers, cfg.d_ff, cfg.vocab_size
    shapes = {
        "tok_emb": (v, d), "pos_emb": (cfg.max_seq_len, d), "ln1_scale": (L, d), "ln1_bias": (L, d),
        "wqkv": (L, d, 3, h, e), "bqkv": (L, 3, h, e), "wo": (L, h, e, d), "bo": (L, d),
        "ln2_scale": (L, d), "ln2_bias": (L, d), "w1": (L, d, f), "b1": (L, f), "w2": (L, f, d),
        "b2": (L, d), "lnf_scale": (d,), "lnf_bias": (d,), "head_w": (d, v), "head_b": (v,),
    }
    if cfg.tie_embeddings:
        del shapes["head_w"], shapes["head_b"]
    return shapes


def init_params(cfg: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Freshly initialised parameters at the config's true shape (host numpy, float32).

    Weights ~ N(0, 0.02²), residual output projections N(0, (0.02/√(2L))²) as in GPT-2, biases 0,
    LayerNorm gains 1. Drawn on the host from ``numpy``'s PCG64 seeded with ``seed``, in the
    fixed order of ``PARAM_AXES``: deterministic, and free of the per-shape compilations that
    eager ``jax.random`` calls cost on a CPU (seconds per model).
    """
    rng = np.random.default_rng(np.random.PCG64([int(seed), 0x6A617873]))
    resid_std = INIT_STD / math.sqrt(2 * cfg.n_layers)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("scale"):
            params[name] = np.ones(shape, np.float32)
        elif name in DECAYED:
            std = resid_std if name in ("wo", "w2") else INIT_STD
            params[name] = (std * rng.standard_normal(shape)).astype(np.float32)
        else:
            params[name] = np.zeros(shape, np.float32)
    return params


def __getattr__(name: str):
    """``GPT``, the Flax NNX module, lives in ``nnx_gpt.py`` and is imported on first use: the
    training path needs only the pure ``forward``, and importing flax cost ~0.3 s of every
    command-line start here."""
    if name == "GPT":
        from jaxscale.nnx_gpt import GPT
        return GPT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----- dropout by element index ------------------------------------------------------------------

def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout with index-derived keep bits; identity when ``key`` is None or rate 0."""
    if key is None or rate == 0.0:
        return x
    threshold = jnp.uint32(min(int(round(rate * 2**32)), 2**32 - 1))
    keep = index_bits(key, x.shape) >= threshold
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _fused_attention(q_BTHE, k_BTHE, v_BTHE, impl: str, dt: str) -> jax.Array:
    """Causal attention through ``jax.nn.dot_product_attention`` (``impl`` xla or cudnn); float32
    out. cuDNN takes bfloat16 inputs; if it rejects the shapes while tracing, XLA's version runs
    instead, with a warning."""
    cast = (lambda a: a) if dt == "float32" else (lambda a: a.astype(dt))
    q, k, v = cast(q_BTHE), cast(k_BTHE), cast(v_BTHE)
    try:
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=impl)
    except (ValueError, NotImplementedError, RuntimeError) as err:
        if impl != "cudnn":
            raise
        warnings.warn(f"cuDNN attention unavailable ({err}); using XLA's", RuntimeWarning, stacklevel=2)
        out = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")
    return out.astype(jnp.float32)


# ----- the forward pass --------------------------------------------------------------------------

def _mask(n_true: jax.Array | None, n: int) -> jax.Array | None:
    return None if n_true is None else (jnp.arange(n) < n_true).astype(jnp.float32)


def _layer_norm(x_BTD, scale_D, bias_D, cmask_D, width):
    """LayerNorm with statistics over the true width (``width`` channels, marked by ``cmask``)."""
    if cmask_D is None:
        mean = jnp.mean(x_BTD, axis=-1, keepdims=True)
        xc = x_BTD - mean
        var = jnp.mean(xc * xc, axis=-1, keepdims=True)
    else:
        m = cmask_D[None, None, :]
        mean = jnp.sum(x_BTD * m, axis=-1, keepdims=True) / width
        xc = (x_BTD - mean) * m
        var = jnp.sum(xc * xc, axis=-1, keepdims=True) / width
    return xc * jax.lax.rsqrt(var + LN_EPS) * scale_D[None, None, :] + bias_D[None, None, :]


def _mm(spec: str, a: jax.Array, b: jax.Array, dtype: str) -> jax.Array:
    """``einsum(spec, a, b)`` with its inputs in the matmul ``dtype`` and a float32 result."""
    if dtype == "float32":
        return jnp.einsum(spec, a, b)
    return _low_precision_mm(spec, a.astype(dtype), b.astype(dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _low_precision_mm(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """A matmul of low-precision (e.g. bfloat16) inputs, accumulated and returned in float32,
    whose backward matmuls are low precision too.

    Why a custom derivative: differentiated as written, the two backward matmuls would take the
    float32 output cotangent against a bfloat16 input (``f32 x bf16``), and XLA runs such a
    mixed matmul in float32: two thirds of a training step's matmul FLOPs, on a GPU at a fraction
    of its bfloat16 rate. Here the cotangent is cast to the inputs' dtype first, as in the usual
    mixed-precision recipe, so every matmul of the step is ``bf16 x bf16``; the gradients
    (rounded to bfloat16 once, at the matmul) are cast back to float32 by the caller's casts."""
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _low_precision_mm_fwd(spec, a, b):
    return _low_precision_mm(spec, a, b), (a, b)


def _low_precision_mm_bwd(spec, res, ct):
    a, b = res
    ct = ct.astype(a.dtype)
    # the matmul is linear in each input: transpose it in each (no forward matmul recomputed)
    (da,) = jax.linear_transpose(lambda x: jnp.einsum(spec, x, b, preferred_element_type=a.dtype), a)(ct)
    (db,) = jax.linear_transpose(lambda y: jnp.einsum(spec, a, y, preferred_element_type=a.dtype), b)(ct)
    return da, db


_low_precision_mm.defvjp(_low_precision_mm_fwd, _low_precision_mm_bwd)


def forward(params: dict[str, jax.Array], tokens_BT: jax.Array, cfg: ModelConfig, *,
            dims: ModelDims | None = None, dropout_key: jax.Array | None = None,
            remat: str | None = None, unroll: int | None = None) -> jax.Array:
    """Logits [B, T, V] of a GPT whose arrays may be padded beyond ``dims`` (see module doc).

    ``cfg`` gives the static (array) shapes, the dropout rate and the matmul dtype; ``dims`` the
    true sizes when the arrays are padded (None: the arrays are the true shape); ``remat`` what a
    backward pass recomputes (``remat_policy``, ``resolve_remat``; None: ``$JAXSCALE_REMAT``);
    ``unroll`` the layers per scan iteration (``layer_unroll``: 0 all of them; None:
    ``$JAXSCALE_LAYER_UNROLL``).
    """
    B, T = tokens_BT.shape
    L, D, _, H, E = params["wqkv"].shape
    F = params["w1"].shape[-1]
    rate, dt = cfg.dropout, cfg.dtype
    if T > params["pos_emb"].shape[0]:
        raise ValueError(f"tokens have length {T}, longer than the context {params['pos_emb'].shape[0]}")
    cmask = _mask(None if dims is None else dims.d_model, D)
    hmask = _mask(None if dims is None else dims.n_heads, H)
    fmask = _mask(None if dims is None else dims.d_ff, F)
    width = None if dims is None else dims.d_model.astype(jnp.float32)
    n_layers = None if dims is None else dims.n_layers
    key = lambda *ids: None if dropout_key is None else fold(dropout_key, *ids)
    attention = attention_impl(cfg)

    x_BTD = jnp.take(params["tok_emb"], tokens_BT, axis=0) + params["pos_emb"][None, :T, :]
    x_BTD = dropout(x_BTD, rate, key(0, 0))
    causal_TT = jnp.tril(jnp.ones((T, T), dtype=bool))

    def block(x_BTD, layer):
        p, i = layer
        # a layer beyond the model's true depth adds nothing (only a padded stack has such layers)
        active = None if dims is None else (i < n_layers).astype(jnp.float32)
        residual = (lambda y: y) if active is None else (lambda y: active * y)
        h_BTD = _layer_norm(x_BTD, p["ln1_scale"], p["ln1_bias"], cmask, width)
        qkv_BTKHE = _mm("btd,dkhe->btkhe", h_BTD, p["wqkv"], dt) + p["bqkv"][None, None]
        q_BTHE, k_BTHE, v_BTHE = qkv_BTKHE[:, :, 0], qkv_BTKHE[:, :, 1], qkv_BTKHE[:, :, 2]
        if attention == "explicit":
            s_BHTS = _mm("bthe,bshe->bhts", q_BTHE, k_BTHE, dt) / math.sqrt(E)
            s_BHTS = jnp.where(causal_TT[None, None], s_BHTS, jnp.float32(-1e30))
            a_BHTS = dropout(jax.nn.softmax(s_BHTS, axis=-1), rate, key(1, i))
            o_BTHE = _mm("bhts,bshe->bthe", a_BHTS, v_BTHE, dt)
        else:
            o_BTHE = _fused_attention(q_BTHE, k_BTHE, v_BTHE, attention, dt)
        if hmask is not None:
            o_BTHE = o_BTHE * hmask[None, None, :, None]
        y_BTD = _mm("bthe,hed->btd", o_BTHE, p["wo"], dt) + p["bo"][None, None]
        x_BTD = x_BTD + residual(dropout(y_BTD, rate, key(2, i)))

        h_BTD = _layer_norm(x_BTD, p["ln2_scale"], p["ln2_bias"], cmask, width)
        u_BTF = jax.nn.gelu(_mm("btd,df->btf", h_BTD, p["w1"], dt) + p["b1"][None, None], approximate=False)
        if fmask is not None:
            u_BTF = u_BTF * fmask[None, None, :]
        y_BTD = _mm("btf,fd->btd", u_BTF, p["w2"], dt) + p["b2"][None, None]
        x_BTD = x_BTD + residual(dropout(y_BTD, rate, key(3, i)))
        return x_BTD, None

    # The scan runs over the stacked layer leaves, sliced once from the flat parameter vector
    # (``flat.unravel``). Three other forms, tried as throwaway prototypes, were slower on the
    # 2-core CPU (notebook-emergence large alone, in-process, 1.6 ms per step with this one):
    # - each layer's weights dynamic-sliced from the flat vector: 2.1 ms, since autodiff carries
    #   the vector's cotangent as a full-length sum;
    # - one layer-major [L, S] block: 2.2 ms, from transposing copies;
    # - a hand-written VJP for the whole scan, recomputing each layer and writing its gradients
    #   in place into a flat vector: 2.1 ms, with 268 kernels against 299 and no faster compile.
    layer_params = {n: params[n] for n in PARAM_AXES if PARAM_AXES[n][0] == "layer"}
    policy = resolve_remat(remat or remat_policy(), cfg, B, T)
    per_iter = layer_unroll() if unroll is None else unroll
    if not isinstance(per_iter, int) or per_iter < 0:
        raise ValueError(f"unroll must be a whole number >= 0 (0: every layer), got {per_iter!r}")
    x_BTD, _ = jax.lax.scan(_with_remat(block, policy), x_BTD, (layer_params, jnp.arange(L)),
                            unroll=L if per_iter == 0 else min(per_iter, L))
    h_BTD = _layer_norm(x_BTD, params["lnf_scale"], params["lnf_bias"], cmask, width)
    if cfg.tie_embeddings == ("head_w" in params):  # the parameters of the other kind of head
        raise ValueError(f"forward: the config {cfg.name!r} has tie_embeddings={cfg.tie_embeddings}, but the "
                         f"parameters {'have' if 'head_w' in params else 'lack'} an output head ('head_w')")
    if "head_w" in params:
        return _mm("btd,dv->btv", h_BTD, params["head_w"], dt) + params["head_b"][None, None]
    return _mm("btd,vd->btv", h_BTD, params["tok_emb"], dt)


def cross_entropy(logits_BTV: jax.Array, targets_BT: jax.Array,
                  weights_BT: jax.Array | None = None) -> jax.Array:
    """Mean next-token cross-entropy in nats (weighted mean when ``weights`` is given)."""
    logz_BT = jax.nn.logsumexp(logits_BTV, axis=-1)
    gold_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
    nll_BT = logz_BT - gold_BT
    if weights_BT is None:
        return jnp.mean(nll_BT)
    return jnp.sum(nll_BT * weights_BT) / jnp.maximum(jnp.sum(weights_BT), 1.0)
