"""The planner: group a sweep's models into stacks by a cost model of this device.

Cost of one group (one compiled program):

    compile_s + max_steps × step_s,
    step_s = overhead_s + K · (per_model_s + padded FLOPs per step / flop_rate
                               + padded parameters × param_s)

where padded FLOPs and parameters are those of the group's envelope (every model pays for the
largest), ``overhead_s`` is the per-step cost that does not grow with the model (dispatch, loop
control, small-kernel launches) and ``param_s`` the memory traffic of the optimiser update per
parameter (AdamW reads and writes about 28 bytes per parameter per step: on a CPU with ~8 GB/s
this, not the FLOPs, bounds the notebook's batch-of-one models). On an accelerator the notebook's models are far below the FLOP rate, so
``overhead_s`` dominates and one big stack wins; on a CPU a step of K models costs about K times
a step of one, so what stacking saves is compile time and per-step overhead, against padding
waste. ``auto`` searches every partition of each compatible bucket into groups that are
contiguous in model cost (dynamic programming, O(M²) groups) and keeps the cheapest; ``stack``
puts each compatible bucket in one stack; ``sequential`` trains every model alone.

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
# (s), per-model per-step overhead (s), and the compile time of one training program (s).
# CPU numbers were measured on the 2-core development machine (jaxscale bench); accelerator
# numbers are conservative defaults.
PLATFORM_DEFAULTS = {
    "cpu": {"efficiency": 0.25, "overhead_s": 2e-4, "per_model_s": 5e-5, "param_s": 3.5e-9, "compile_s": 6.0},
    "gpu": {"efficiency": 0.30, "overhead_s": 5e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 15.0},
    "tpu": {"efficiency": 0.30, "overhead_s": 3e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 20.0},
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
                         param_s=d["param_s"], devices=len(devices), source=source)


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


def _group_cost(cfgs, steps, profile: DeviceProfile, tokens_per_step: int, *, alone: bool) -> tuple[float, float]:
    env = cfgs[0] if alone else envelope(cfgs)
    useful = sum(c.flops_per_token().total for c in cfgs) / (len(cfgs) * env.flops_per_token().total)
    return profile.compile_s + estimate_train_seconds(cfgs, steps, profile, tokens_per_step, alone=alone), useful


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
    for members in buckets.values():
        order = sorted(members, key=lambda i: (specs[i].cfg.flops_per_token().total, i))
        if mode == "sequential":
            parts = [[i] for i in order]
        elif mode == "stack":
            parts = [order[j:j + max_stack] for j in range(0, len(order), max_stack)]
        else:
            parts = _best_partition(order, specs, steps, tokens_per_step, profile, max_stack)
        for part in parts:
            alone = len(part) == 1
            cost, useful = _group_cost([specs[i].cfg for i in part], [steps[i] for i in part], profile,
                                       tokens_per_step, alone=alone)
            groups.append(Group(f"g{len(groups):02d}", tuple(part), "alone" if alone else "stack",
                                specs[part[0]].cfg.name if alone else envelope([specs[i].cfg for i in part]).name,
                                cost, useful))
    return groups


def _best_partition(order, specs, steps, tokens_per_step, profile, max_stack) -> list[list[int]]:
    """Cheapest split of ``order`` into contiguous groups (dynamic programming over prefixes)."""
    m = len(order)
    best = [0.0] + [float("inf")] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        for i in range(max(0, j - max_stack), j):
            part = order[i:j]
            cost, _ = _group_cost([specs[t].cfg for t in part], [steps[t] for t in part], profile,
                                  tokens_per_step, alone=len(part) == 1)
            if best[i] + cost < best[j]:
                best[j], cut[j] = best[i] + cost, i
    parts, j = [], m
    while j > 0:
        parts.append(order[cut[j]:j])
        j = cut[j]
    return parts[::-1]


def describe(groups: Sequence[Group], specs: Sequence) -> str:
    lines = []
    for g in groups:
        names = ", ".join(specs[i].label for i in g.indices)
        lines.append(f"  {g.id} {g.mode:<5} K={len(g.indices):<3} est {g.estimated_s:7.1f}s "
                     f"padded-FLOP util {g.padded_flops_util:5.1%}: {names}")
    return "\n".join(lines)
