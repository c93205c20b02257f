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


def run_few_times_options(flops: float | None = None) -> dict | None:
    """Compiler options for a program that runs a handful of times per run (held-out and task
    evaluation; the state initialisation where JAX's default PRNG is not in use): the fast
    compile on a CPU, where its slower steps cost nothing that matters and its compile is most
    of the program's cost; XLA's defaults elsewhere.
    Measured on the 2-core CPU (``JAX_LOG_COMPILES=1 jaxscale sweep --preset notebook-emergence``
    with both caches off, auto mode, two groups): the held-out evaluation programs compiled in
    1.15 s instead of 2.43 s, the state initialisations in 0.5 s instead of 1.2 s.

    ``flops``: the work of all the program's calls in a run, where known. When it is at most
    ``UNOPTIMISED_MAX_FLOPS`` the CPU also skips LLVM's optimisations
    (``xla_backend_optimization_level=0``, see ``unoptimised_pays``)."""
    import jax

    if jax.default_backend() != "cpu":
        return None
    opts = compiler_options(True)
    if unoptimised_pays(flops):
        opts["xla_backend_optimization_level"] = 0
    return opts


# Unoptimised CPU code for a program that runs once or a few times. Measured on the 2-core CPU,
# one program per notebook model compiled in one process, caches off: the task evaluations of the
# five notebook-emergence models compiled in 2.8-3.0 s instead of 4.8-5.1 s and ran in 200-211
# ms instead of 54-55 ms; their held-out evaluations compiled in 1.5-1.7 s instead of 2.6-2.7 s
# (notebook-scaling's five: 1.7-1.8 s instead of 3.3-3.6 s), each call 95 ms slower in all
# (170 ms for notebook-scaling's). So about 0.2-0.4 s of compile saved per program, against
# about 0.05 s per GFLOP of work run unoptimised: a program is compiled unoptimised only when all
# its calls together do at most 2 GFLOP (then at most ~0.1 s slower). End to end, three
# interleaved pairs of cold `jaxscale sweep --preset notebook-emergence` (both caches off):
# 41.5 / 44.6 / 42.1 s before, 38.1 / 37.8 / 35.3 s after; warm runs moved by less than their
# noise (10.2-11.0 s against 10.6-12.6 s).
UNOPTIMISED_MAX_FLOPS = 2e9


def unoptimised_pays(flops: float | None) -> bool:
    """Whether a run-few-times program of ``flops`` total work (None: unknown) is compiled
    without LLVM's optimisations on a CPU."""
    return flops is not None and flops <= UNOPTIMISED_MAX_FLOPS
