"""JAX's persistent compilation cache, on by default for the CLI.

On a CPU, compiling a training program takes seconds, often more than training the notebook's
models; the cache makes every later run with the same programs start at once. It lives in
``$JAXSCALE_COMPILATION_CACHE`` if set (the value ``off`` disables it), else in the jaxscale
cache folder (``$XDG_CACHE_HOME/jaxscale/xla`` or ``~/.cache/jaxscale/xla``). Its ``programs/``
subfolder holds jaxscale's own cache of whole programs, which also skips tracing
(``program_cache.py``).
"""

from __future__ import annotations

import os

from jaxscale.data.corpus import cache_dir


def enable_compilation_cache() -> str | None:
    """Point JAX at the cache folder; returns it (None when disabled)."""
    import jax

    from jaxscale import program_cache

    setting = os.environ.get("JAXSCALE_COMPILATION_CACHE", "")
    if setting.lower() == "off":
        program_cache.enable(None)
        return None
    path = setting or str(cache_dir() / "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    program_cache.enable(os.path.join(path, "programs"))
    return path


def programs_kept() -> bool:
    """Whether the programs this process compiles are kept for later runs (JAX's persistent
    cache or jaxscale's program cache is on), so that a rerun of the same sweep loads them: the
    planner weighs a shared program's padding by it (``planner.plan``'s ``reruns``)."""
    import jax

    from jaxscale import program_cache

    return program_cache.in_use() or (bool(jax.config.jax_compilation_cache_dir)
                                      and bool(jax.config.jax_enable_compilation_cache))


# What a sweep's plan is made for (``sweep_plan.plan_sweep``): ``reruns`` (later runs load this
# run's programs), ``once`` (this run alone), ``auto`` (``reruns`` exactly when
# ``programs_kept()``). Here, beside ``programs_kept``, because the command line reads it
# without importing JAX.
PLAN_FOR = ("auto", "reruns", "once")


def check_plan_for(plan_for, where: str) -> None:
    """Refuse a ``plan_for`` outside ``PLAN_FOR``, naming ``where`` it was given."""
    if plan_for not in PLAN_FOR:
        raise ValueError(f"{where}: `plan_for` must be one of {PLAN_FOR}, got {plan_for!r}")
