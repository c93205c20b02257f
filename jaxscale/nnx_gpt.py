"""``GPT``: the model as a Flax NNX module (``jaxscale.model.GPT``).

One ``nnx.Param`` per entry of ``model.PARAM_AXES``, initialised by ``model.init_params``;
``__call__`` runs the pure ``model.forward``. The engine itself trains the parameter arrays
directly (``nnx.split`` / ``params()`` give them): under plain ``jax.jit`` in-place NNX updates
are lost unless the step returns the new state, so the step is a pure function of arrays. Kept in
its own module so that the training path does not import flax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxscale.config import ModelConfig
from jaxscale.model import PARAM_AXES, ModelDims, forward, init_params


class GPT(nnx.Module):
    """Pre-LN GPT: embeddings → L × (LN → causal MHA, LN → GELU MLP) → LN → LM head.

    The module holds one ``nnx.Param`` per entry of ``PARAM_AXES``; ``__call__`` runs the pure
    ``forward``. Training works on ``nnx.split``'s state or on ``params()`` directly.
    """

    def __init__(self, cfg: ModelConfig, *, seed: int = 0):
        self.cfg = cfg
        for name, value in init_params(cfg, seed).items():
            setattr(self, name, nnx.Param(jnp.asarray(value)))

    def params(self) -> dict[str, jax.Array]:
        return {name: getattr(self, name)[...] for name in PARAM_AXES if hasattr(self, name)}

    def __call__(self, tokens_BT: jax.Array, *, dims: ModelDims | None = None,
                 dropout_key: jax.Array | None = None) -> jax.Array:
        """Logits [B, T, V]. Token ids outside [0, vocab_size) are refused when the tokens are
        concrete (called eagerly): the embedding lookup would give NaN logits above the range
        and wrap around below it, without a word. Under a transform they are not checked."""
        if not isinstance(tokens_BT, jax.core.Tracer):
            tokens = np.asarray(tokens_BT)
            if tokens.size and (tokens.min() < 0 or tokens.max() >= self.cfg.vocab_size):
                raise ValueError(f"GPT: token ids must lie in [0, {self.cfg.vocab_size}) (the vocabulary), "
                                 f"got ids from {int(tokens.min())} to {int(tokens.max())}")
        return forward(self.params(), tokens_BT, self.cfg, dims=dims, dropout_key=dropout_key)
