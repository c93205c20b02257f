"""The planner: group a sweep's models into stacks by a cost model of this device.

Cost of one group (one compiled program):

    compile_s × (stack_compile if a stack) + max_steps × step_s,
    step_s = overhead_s + K · (per_model_s + padded FLOPs per step / flop_rate
                               + padded parameters × param_s)

where padded FLOPs and parameters are those of the group's envelope (every model pays for the
largest), ``overhead_s`` is the per-step cost that does not grow with the model (dispatch, loop
control, small-kernel launches) and ``param_s`` the memory traffic of a step per parameter (the
optimiser's passes and the copies around the matmuls: on a CPU this, not the FLOPs, bounds the
notebook's batch-of-one models). A program is compiled once however many models it trains: models
of one config trained one after another share one program (one compile), and a vmapped stack's
program takes longer to compile than its model alone's (``stack_compile``). On an accelerator the
notebook's models are far below the FLOP rate, so ``overhead_s`` dominates and one big stack wins;
on a CPU a step of K models costs about K times a step of the envelope, so what stacking saves is
compile time and per-step overhead, against padding waste and its slower compile. ``auto``
searches every partition of each compatible bucket into groups that are contiguous in model cost
(dynamic programming, O(M²) segments, each a stack or, for one config, a run of models alone) and
keeps the cheapest; ``stack`` puts each compatible bucket in one stack; ``sequential`` trains
every model alone.

The device profile comes from a documented table of effective rates and compile times per
platform, with the FLOP rate calibrated by a short matmul measurement (``calibrate``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from jaxscale.stack import envelope, stack_key

MODES = ("auto", "stack", "sequential")

# Per platform: share of the matmul peak that small transformer steps reach, per-step overhead
# (s), per-model per-step overhead (s), per-parameter step cost (s), the compile time of one
# model's training program (s) and how many times longer a stack's program takes to compile.
# CPU numbers were measured on the 2-core development machine: param_s from warm
# `jaxscale sweep --preset notebook-emergence --mode sequential` runs (steady seconds per step of
# each model, evaluations included: 0.4 ms for 24k parameters to 2.5 ms for 470k), stack_compile
# from the same preset's cold runs (stacks of 2-3 models 8.8-11.0 s, models alone 4.6-7.1 s).
# Accelerator numbers are conservative defaults; stack_compile 1.5 is the H200's notebook-scaling
# family (one stack 47 s, five programs alone 155 s; benchmarks/device_check.py).
PLATFORM_DEFAULTS = {
    "cpu": {"efficiency": 0.25, "overhead_s": 2e-4, "per_model_s": 5e-5, "param_s": 4.5e-9, "compile_s": 6.0,
            "stack_compile": 1.6},
    "gpu": {"efficiency": 0.30, "overhead_s": 5e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 15.0,
            "stack_compile": 1.5},
    "tpu": {"efficiency": 0.30, "overhead_s": 3e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 20.0,
            "stack_compile": 1.5},
}


@dataclass(frozen=True)
class DeviceProfile:
    platform: str
    flop_rate: float          # effective FLOP/s of a small transformer step
    overhead_s: float
    per_model_s: float
    compile_s: float
    param_s: float = 0.0
    devices: int = 1
    source: str = "table"
    stack_compile: float = 1.0  # a stack's compile time / a model alone's

    def compile_seconds(self, stacked: bool) -> float:
        return self.compile_s * (self.stack_compile if stacked else 1.0)

    def step_seconds(self, padded_flops_per_step: float, k: int, padded_params: int = 0) -> float:
        per_device = -(-k // self.devices)  # models per device, rounded up
        return self.overhead_s + per_device * (self.per_model_s + padded_flops_per_step / self.flop_rate
                                               + padded_params * self.param_s)


def measure_matmul_peak(dtype: str = "float32", n: int = 512, repeats: int = 5) -> float:
    """FLOP/s of a jitted chain of three n×n matmuls in ``dtype`` on the default device (best of
    ``repeats``, synchronised): the practical matmul peak (the planner's rate, the CPU's MFU
    denominator in ``bench``)."""
    import jax
    import jax.numpy as jnp

    x = (jnp.ones((n, n), jnp.float32) / n).astype(dtype)
    f = jax.jit(lambda a: a @ a @ a @ a)
    f(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 3 * 2 * n**3 / best


def calibrate(measure: bool = True) -> DeviceProfile:
    import jax

    devices = jax.devices()
    platform = devices[0].platform if devices[0].platform in PLATFORM_DEFAULTS else "gpu"
    d = PLATFORM_DEFAULTS[platform]
    if measure:
        peak, source = measure_matmul_peak(), "measured matmul peak × table efficiency"
    else:
        peak, source = {"cpu": 1e11, "gpu": 1e14, "tpu": 1e14}[platform], "table"
    return DeviceProfile(platform, d["efficiency"] * peak, d["overhead_s"], d["per_model_s"], d["compile_s"],
                         param_s=d["param_s"], devices=len(devices), source=source,
                         stack_compile=d["stack_compile"])


@dataclass(frozen=True)
class Group:
    """Models trained together: ``mode`` is ``stack`` (one padded program) or ``alone``."""

    id: str
    indices: tuple[int, ...]
    mode: str
    envelope_name: str
    estimated_s: float
    padded_flops_util: float = 1.0
    notes: dict = field(default_factory=dict)


def estimate_train_seconds(cfgs, steps, profile: DeviceProfile, tokens_per_step: int, *, alone: bool) -> float:
    """Estimated training time of one group (compile excluded): its longest run × the step cost."""
    env = cfgs[0] if alone else envelope(cfgs)
    flops = env.flops_per_token().total * tokens_per_step  # training FLOPs of one step
    return max(steps) * profile.step_seconds(flops, len(cfgs), env.param_counts().total)


def _group_cost(cfgs, steps, profile: DeviceProfile, tokens_per_step: int, *, alone: bool,
                compiled: bool = False) -> tuple[float, float]:
    """(estimated seconds, padded-FLOP utilisation) of one group; ``compiled``: its program was
    already compiled for an earlier group of the plan (models of one config alone share one; an
    approximation where their budgets give them different dispatch lengths or compile modes,
    which make programs of their own)."""
    env = cfgs[0] if alone else envelope(cfgs)
    useful = sum(c.flops_per_token().total for c in cfgs) / (len(cfgs) * env.flops_per_token().total)
    compile_s = 0.0 if compiled else profile.compile_seconds(stacked=not alone)
    return compile_s + estimate_train_seconds(cfgs, steps, profile, tokens_per_step, alone=alone), useful


def plan(specs: Sequence, steps: Sequence[int], tokens_per_step: int, profile: DeviceProfile,
         mode: str = "auto", max_stack: int = 64) -> list[Group]:
    """Groups covering every spec exactly once, in the order they should run."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(specs) != len(steps):
        raise ValueError("plan: specs and steps differ in length")
    buckets: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        buckets.setdefault(stack_key(s.cfg), []).append(i)
    groups: list[Group] = []
    compiled: set = set()  # configs whose alone program an earlier group compiled
    for members in buckets.values():
        # equal configs next to each other, so that a run of them alone is one segment
        order = sorted(members, key=lambda i: (specs[i].cfg.flops_per_token().total, repr(specs[i].cfg), i))
        if mode == "sequential":
            parts = [[i] for i in order]
        elif mode == "stack":
            parts = [order[j:j + max_stack] for j in range(0, len(order), max_stack)]
        else:
            parts = _best_partition(order, specs, steps, tokens_per_step, profile, max_stack)
        for part in parts:
            alone = len(part) == 1
            cfg0 = specs[part[0]].cfg
            cost, useful = _group_cost([specs[i].cfg for i in part], [steps[i] for i in part], profile,
                                       tokens_per_step, alone=alone, compiled=alone and cfg0 in compiled)
            if alone:
                compiled.add(cfg0)
            groups.append(Group(f"g{len(groups):02d}", tuple(part), "alone" if alone else "stack",
                                cfg0.name if alone else envelope([specs[i].cfg for i in part]).name,
                                cost, useful))
    return groups


def _segment_cost(part, specs, steps, tokens_per_step, profile) -> tuple[float, bool]:
    """The cheaper way to train a contiguous segment: (seconds, as a stack?). A segment of one
    config can also run as its models alone, one after another, on one program."""
    cfgs = [specs[t].cfg for t in part]
    if len(part) == 1:
        return _group_cost(cfgs, [steps[part[0]]], profile, tokens_per_step, alone=True)[0], False
    stack = _group_cost(cfgs, [steps[t] for t in part], profile, tokens_per_step, alone=False)[0]
    if any(c != cfgs[0] for c in cfgs):
        return stack, True
    run = sum(_group_cost([c], [steps[t]], profile, tokens_per_step, alone=True, compiled=j > 0)[0]
              for j, (c, t) in enumerate(zip(cfgs, part)))
    return (stack, True) if stack <= run else (run, False)


def _best_partition(order, specs, steps, tokens_per_step, profile, max_stack) -> list[list[int]]:
    """Cheapest split of ``order`` into contiguous segments (dynamic programming over prefixes),
    each a stack or a run of models alone (returned as one-model parts)."""
    m = len(order)
    best = [0.0] + [float("inf")] * m
    cut, as_stack = [0] * (m + 1), [True] * (m + 1)
    for j in range(1, m + 1):
        for i in range(max(0, j - max_stack), j):
            part = order[i:j]
            cost, stacked = _segment_cost(part, specs, steps, tokens_per_step, profile)
            if best[i] + cost < best[j]:
                best[j], cut[j], as_stack[j] = best[i] + cost, i, stacked
    parts, j = [], m
    while j > 0:
        seg = order[cut[j]:j]
        parts.extend([seg] if as_stack[j] else [[t] for t in reversed(seg)])
        j = cut[j]
    return parts[::-1]


def program_count(groups: Sequence[Group], specs: Sequence) -> int:
    """Distinct training programs of a plan: one per stack, one per config trained alone."""
    return len({("stack", g.id) if g.mode == "stack" else ("alone", specs[g.indices[0]].cfg) for g in groups})


def describe(groups: Sequence[Group], specs: Sequence) -> str:
    lines = []
    for g in groups:
        names = ", ".join(specs[i].label for i in g.indices)
        lines.append(f"  {g.id} {g.mode:<5} K={len(g.indices):<3} est {g.estimated_s:7.1f}s "
                     f"padded-FLOP util {g.padded_flops_util:5.1%}: {names}")
    return "\n".join(lines)
