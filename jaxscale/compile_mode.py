"""Per program, XLA's full CPU code generation or a faster-compiling one, whichever ends sooner.

Why: on a CPU a training program takes ~5-8 s to compile, more than a short run (the notebook's
40-step scaling workload) spends training. XLA's CPU backend can skip its newer fusion emitters
(``xla_cpu_use_fusion_emitters=False``, passed per program through ``jax.jit``'s
``compiler_options``): on the 2-core development CPU this cut the compile of the training
programs by 25-35% and made their steps 0-50% slower (``jaxscale bench --preset
notebook-scaling`` / ``--preset notebook-emergence`` with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false``,
interleaved with runs without it: scaling stack compile 6.1 → 4.6-5.8 s, step 45-50 → 49-54 ms;
emergence sequential compile 26-28 → 16-19 s, step 5.2-6.0 → 7.0 ms, its stacks' steps ~50% slower).

So ``auto`` picks the fast compile for a program when the compile time it saves beats the
training time it costs, by the planner's estimates; ``fast`` and ``full`` force a choice.
Accelerators always get the full compile (the option is a CPU one). A cached program costs no
compile either way; the two variants are separate entries of the compilation cache.
"""

from __future__ import annotations

COMPILE_MODES = ("auto", "full", "fast")
FAST_CPU_OPTIONS = (("xla_cpu_use_fusion_emitters", False),)
COMPILE_SAVING = 0.30   # share of the compile time the fast compile saves (measured 25-35%)
STEP_PENALTY = 0.50     # share added to each step (measured 0-50%; the worst case, to be safe)


def choose_fast(mode: str, platform: str, est_compile_s: float, est_train_s: float) -> bool:
    """Whether a program should be compiled the fast way."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if platform != "cpu" or mode == "full":
        return False
    return mode == "fast" or COMPILE_SAVING * est_compile_s > STEP_PENALTY * est_train_s


def compiler_options(fast: bool) -> dict | None:
    """``jax.jit(..., compiler_options=...)`` for the choice (None: XLA's defaults)."""
    return dict(FAST_CPU_OPTIONS) if fast else None


def run_few_times_options() -> dict | None:
    """Compiler options for a program that runs a handful of times per run (state initialisation,
    held-out and task evaluation): the fast compile on a CPU, where its slower steps cost nothing
    that matters and its compile is most of the program's cost; XLA's defaults elsewhere.
    Measured on the 2-core CPU (``JAX_LOG_COMPILES=1 jaxscale sweep --preset notebook-emergence``
    with both caches off, auto mode, two groups): the held-out evaluation programs compiled in
    1.15 s instead of 2.43 s, the state initialisations in 0.5 s instead of 1.2 s."""
    import jax

    return compiler_options(jax.default_backend() == "cpu")
