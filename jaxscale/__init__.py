"""jaxscale: scaling laws measured on your own hardware.

A GPT family in Flax NNX trained many-at-once (jit + vmap stacks), real text data with held-out
splits, and pure-JAX fits of power laws, Chinchilla allocation and emergence.
"""

__version__ = "0.1.0"

# first, before any module that builds a compiled program: the source those programs come from
from jaxscale import source_snapshot  # noqa: E402

__all__ = ["__version__", "source_snapshot"]
