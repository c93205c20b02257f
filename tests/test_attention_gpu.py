"""cuDNN's fused attention under ``vmap`` on the GPU at hand: a padded stack equals its models alone.

``JAXSCALE_ATTENTION=cudnn`` is opt-in because cuDNN attention's batching rules under ``vmap`` and
``vmap(grad)`` have had correctness bugs upstream (jax-ml/jax#22830, #36702, #38498, #39451).
This test is what makes it safe on a given GPU: logits and gradients of a two-model padded stack
(``vmap``, as the engine trains) against each model alone, all through cuDNN, and cuDNN against
XLA's attention. Skipped without a GPU; ``benchmarks/device_check.py`` runs it first.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale.config import ModelConfig
from jaxscale.model import cross_entropy, forward, init_params
from jaxscale.model_switches import ATTENTION_ENV
from jaxscale.stack import envelope, pad_params, stack_dims, stack_trees

pytestmark = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU with cuDNN")

BIG = ModelConfig(vocab_size=128, d_model=128, n_heads=2, n_layers=2, d_ff=256, max_seq_len=64, dtype="bfloat16",
                  name="big")
SMALL = BIG.replace(d_model=64, n_heads=1, n_layers=1, d_ff=128, name="small")


def _run(impl: str, monkeypatch):
    """(alone, stacked) per model: logits and the gradient of the loss, with attention ``impl``."""
    monkeypatch.setenv(ATTENTION_ENV, impl)
    env = envelope([SMALL, BIG])
    x = jnp.asarray(np.random.default_rng(0).integers(0, 128, (4, 64)), jnp.int32)

    def logits_and_grad(params, cfg, dims):
        loss = lambda p: cross_entropy(forward(p, x, cfg, dims=dims), x)  # noqa: E731
        return forward(params, x, cfg, dims=dims), jax.grad(loss)(params)

    alone = [jax.jit(lambda p, c=c: logits_and_grad(p, c, None))(jax.tree.map(jnp.asarray, init_params(c, i)))
             for i, c in enumerate((SMALL, BIG))]
    stacked_params = jax.tree.map(jnp.asarray, stack_trees([pad_params(init_params(c, i), env)
                                                            for i, c in enumerate((SMALL, BIG))]))
    stacked = jax.jit(jax.vmap(lambda p, d: logits_and_grad(p, env, d)))(stacked_params, stack_dims([SMALL, BIG]))
    return alone, stacked


def _close(a, b, what, rtol):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    scale = max(float(np.abs(b).max()), 1e-6)
    assert float(np.abs(a - b).max()) <= rtol * scale, f"{what}: max diff {np.abs(a - b).max():.3g} vs scale {scale:.3g}"


def test_cudnn_attention_in_a_vmapped_padded_stack_equals_alone(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a silent fallback to XLA would prove nothing
        alone, stacked = _run("cudnn", monkeypatch)
    for i, (cfg, (logits, grads)) in enumerate(zip((SMALL, BIG), alone)):
        _close(stacked[0][i], logits, f"{cfg.name} logits", 2e-2)
        for name, g in grads.items():
            true = np.asarray(stacked[1][name][i])[tuple(slice(0, s) for s in g.shape)]
            _close(true, g, f"{cfg.name} grad {name}", 5e-2)


def test_cudnn_attention_matches_xla_attention(monkeypatch):
    cudnn_alone, _ = _run("cudnn", monkeypatch)
    xla_alone, _ = _run("xla", monkeypatch)
    for (lc, gc), (lx, gx) in zip(cudnn_alone, xla_alone):
        _close(lc, lx, "logits", 2e-2)
        for name in gx:
            _close(gc[name], gx[name], f"grad {name}", 5e-2)

