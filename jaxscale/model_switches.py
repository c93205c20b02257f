"""Switches that choose how the forward pass is compiled, not what it computes: the attention
implementation, what the backward pass recomputes (remat) and how far the layer scan is unrolled.

Each is read from an environment variable, so that a benchmark or a GPU run can flip it without a
code change; every choice computes the same function (tests check each against the default), and a
stack and its models alone always take the same one. Kept apart from ``model.py`` (the function
itself), which re-exports these names.
"""

from __future__ import annotations

import os

import jax

from jaxscale.config import ModelConfig

ATTENTION_ENV = "JAXSCALE_ATTENTION"
ATTENTION_CHOICES = ("explicit", "xla", "cudnn")


def attention_impl(cfg: ModelConfig) -> str:
    """How the forward pass computes causal attention: ``explicit`` (the default: scores, causal
    mask, softmax and the weighted sum written out; the only one that applies dropout to the
    attention probabilities), ``xla`` (``jax.nn.dot_product_attention`` lowered by XLA) or
    ``cudnn`` (the same call as cuDNN's fused flash attention, which never writes the [B, H, T, T]
    probabilities to memory: at context 1024 they are most of a GPU step's memory traffic).

    Chosen by ``$JAXSCALE_ATTENTION``. cuDNN is opt-in: its batching rules under ``vmap`` (every
    stack) and ``vmap(grad)`` have had correctness bugs upstream (jax-ml/jax#22830, #36702,
    #38498, #39451), so it is used only where asked for, and ``tests/test_attention_gpu.py`` (run
    by ``benchmarks/device_check.py``) checks a padded stack against its models alone on the GPU
    at hand. The three compute the same function (tests check ``xla`` against ``explicit``;
    ``cudnn`` differs from ``xla`` only in the backend string), and a stack and its models alone
    always take the same one.
    """
    choice = os.environ.get(ATTENTION_ENV) or "explicit"
    if choice not in ATTENTION_CHOICES:
        raise ValueError(f"{ATTENTION_ENV} must be one of {ATTENTION_CHOICES}, got {choice!r}")
    if choice != "explicit" and cfg.dropout > 0:
        raise ValueError(f"{ATTENTION_ENV}={choice} has no attention dropout; the model has dropout "
                         f"{cfg.dropout} (use explicit)")
    return choice


REMAT_ENV = "JAXSCALE_REMAT"
REMAT_CHOICES = ("auto", "none", "dots", "full")
# "auto" on a CPU: dots from this many [B, T, d_ff] elements over all layers (B·T·d_ff·n_layers).
# Measured on the 2-core CPU, one step, in-process interleaved medians: width 256, 4 layers,
# 32 × 256 tokens (33.5M): dots 2114 ms vs none 2407 ms (none also had 2-5 s outliers); width
# 256, 16 × 128 (8.4M): 462 vs 474 ms; width 128, 16 × 128 (4.2M): 150 vs 161 ms. Below, none
# was faster: notebook-emergence large / micro (a few thousand): 1.96 vs 2.08 ms, 0.177 vs 0.196 ms.
REMAT_AUTO_MIN_ELEMENTS = 2**21


def remat_policy() -> str:
    """What the backward pass recomputes of each block instead of keeping it from the forward
    pass (``jax.checkpoint`` on the layer scan's body), chosen by ``$JAXSCALE_REMAT``:

    * ``none``: everything the backward pass needs is kept;
    * ``dots``: only the matmul outputs are kept; LayerNorm, GELU, softmax and the other
      elementwise results are recomputed (memory-bound passes over [B, T, 4·D] activations, so
      storing, copying and re-reading them can cost more than recomputing them);
    * ``full``: only each block's input is kept, and the block runs again in the backward pass
      (a third more FLOPs, the least memory: larger batches or models fit);
    * ``auto`` (default): ``dots`` on a CPU for models with large activations (``resolve_remat``),
      ``none`` otherwise; on accelerators ``none`` until measured there.

    The gradients are the same function either way (tests check them against ``none``); MFU
    counts model FLOPs only, so recomputed FLOPs count as overhead.
    """
    choice = os.environ.get(REMAT_ENV) or "auto"
    if choice not in REMAT_CHOICES:
        raise ValueError(f"{REMAT_ENV} must be one of {REMAT_CHOICES}, got {choice!r}")
    return choice


LAYER_UNROLL_ENV = "JAXSCALE_LAYER_UNROLL"


def layer_unroll() -> int:
    """How many layers each iteration of the layer ``lax.scan`` runs (``lax.scan``'s ``unroll``),
    from ``$JAXSCALE_LAYER_UNROLL``: ``1`` (default), a larger whole number, or ``full`` (every
    layer in straight-line code: returned as 0, meaning the model's depth).

    Why: on a GPU every iteration of a loop is launched from the host (and, outside command
    buffers, the loop predicate is read back), so a tiny model's step costs a fixed time per layer
    in the forward and backward scans whatever its FLOPs; straight-line layers can be captured
    whole in a CUDA graph. On a CPU the loop costs little and unrolling lengthens the compile
    (``lax.scan`` over layers is what keeps compile time flat in depth), so 1 stays the default.
    The result is the same function either way (a test checks it)."""
    raw = (os.environ.get(LAYER_UNROLL_ENV) or "1").strip().lower()
    if raw == "full":
        return 0
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 1:
        raise ValueError(f"{LAYER_UNROLL_ENV} must be a whole number >= 1 or 'full', got {raw!r}")
    return n


def resolve_remat(policy: str, cfg: ModelConfig, batch: int, seq_len: int, backend: str | None = None) -> str:
    """The policy ``auto`` stands for, for one model's [batch, seq_len] step on ``backend``
    (default: JAX's); any other policy as given."""
    if policy not in REMAT_CHOICES:
        raise ValueError(f"remat must be one of {REMAT_CHOICES}, got {policy!r}")
    if policy != "auto":
        return policy
    if (backend or jax.default_backend()) != "cpu":
        return "none"
    return "dots" if batch * seq_len * cfg.d_ff * cfg.n_layers >= REMAT_AUTO_MIN_ELEMENTS else "none"


def _with_remat(block, policy: str):
    if policy == "none":
        return block
    saveable = jax.checkpoint_policies.dots_with_no_batch_dims_saveable if policy == "dots" else None
    # prevent_cse=False: inside a scan, XLA cannot merge the recomputation into the forward pass
    return jax.checkpoint(block, policy=saveable, prevent_cse=False)
