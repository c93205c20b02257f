"""Test-session settings: strict rank promotion, so silent broadcasting bugs fail loudly."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# commands run in-process must not leave jaxscale's program cache on for later tests
# (tests/test_program_cache.py turns it on in a temporary folder)
os.environ.setdefault("JAXSCALE_PROGRAM_CACHE", "off")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
