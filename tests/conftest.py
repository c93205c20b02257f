"""Test-session settings: strict rank promotion, so silent broadcasting bugs fail loudly."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# commands run in-process must not leave jaxscale's program cache on for later tests
# (tests/test_program_cache.py turns it on in a temporary folder)
os.environ.setdefault("JAXSCALE_PROGRAM_CACHE", "off")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_compilation_cache_leaks():
    """A command run in-process points JAX's persistent compilation cache at its folder
    (``compile_cache.enable_compilation_cache``), a process-wide setting; restored after each
    test so that no later test plans as if a cache kept its programs (``programs_kept``)."""
    from jaxscale import program_cache

    before = jax.config.jax_compilation_cache_dir, program_cache._FOLDER
    yield
    jax.config.update("jax_compilation_cache_dir", before[0])
    program_cache._FOLDER = before[1]


@pytest.fixture
def runaway_resample(monkeypatch):
    """A bootstrap (power law or Approach 3) with its first resample's first parameter, log A,
    forced to 800 (A = inf), as an unidentified scale gives: for tests of intervals and output
    that must keep an inf bound."""
    from jaxscale.fit import _optim

    real = _optim.refit_from_starts

    def runaway(*args, **kwargs):
        res = real(*args, **kwargs)
        params = res.params.copy()
        params[0, 0] = 800.0
        return _optim.LBFGSResult(params, res.values, res.grad_norms, res.converged, res.iterations)

    monkeypatch.setattr(_optim, "refit_from_starts", runaway)
