"""This device's cost profile for the planner: effective FLOP rate, per-step overheads, compile
and load times and the number of lanes, from a documented table per platform with the FLOP rate
calibrated by a short matmul measurement (``calibrate``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# Per platform: share of the matmul peak that small transformer steps reach, per-step overhead
# (s), per-model per-step overhead (s), per-parameter step cost (s), the compile time of one
# model's training program (s) and how many times longer a stack's program takes to compile.
# CPU numbers were measured on the 2-core development machine: param_s from warm
# `jaxscale sweep --preset notebook-emergence --mode sequential` runs (steady seconds per step of
# each model, evaluations included: 0.4 ms for 24k parameters to 2.5 ms for 470k), stack_compile
# from the same preset's cold runs (stacks of 2-3 models 8.8-11.0 s, models alone 4.6-7.1 s),
# eval_compile_s (an evaluation program's trace and compile) from the same runs' timelines
# (0.4-0.8 s each for the held-out loss, 0.6-1.4 s for the task's, on two busy lanes).
# GPU numbers from one H200 (jax 0.11.2, benchmarks/device_check.py): on 2026-11-28 the
# notebook-scaling stack compiled in 47 s against 155 s for the five programs (stack_compile
# 1.5); on 2026-12-04 programs compiled in 3.0-5.2 s each (stacks 4.2 and 6.9 s: 1.1-1.5x the
# mean alone) and a notebook model's scanned step cost 0.31-0.79 ms whatever its FLOPs (0.31 ms
# at 2 layers, ~0.11 ms more per layer), hence overhead_s 3e-4 and compile_s 5. TPU numbers are
# conservative defaults, not measured.
PLATFORM_DEFAULTS = {
    "cpu": {"efficiency": 0.25, "overhead_s": 2e-4, "per_model_s": 5e-5, "param_s": 4.5e-9, "compile_s": 6.0,
            "stack_compile": 1.6, "load_s": 0.5, "eval_compile_s": 0.5},
    "gpu": {"efficiency": 0.30, "overhead_s": 3e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 5.0,
            "stack_compile": 1.5, "load_s": 2.0, "eval_compile_s": 2.0},
    "tpu": {"efficiency": 0.30, "overhead_s": 3e-4, "per_model_s": 2e-6, "param_s": 2e-11, "compile_s": 20.0,
            "stack_compile": 1.5, "load_s": 2.0, "eval_compile_s": 2.0},
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
    lanes: int = 1              # groups trained at once (host threads)
    load_s: float = 0.5         # loading a program compiled on disk by an earlier run, with its setup
    eval_compile_s: float = 0.5  # compiling one evaluation program (``planner.share_evaluations``)
    # devices a batch is split over (``devices.mesh_shape``) for a model alone (K = 1) and in a
    # stack (K > 1, whose model axis then has devices / stack_batch_shards shards); set per sweep
    # by ``sweep_plan.plan_sweep`` from the batch size and ``RunSettings.batch_shards``
    alone_batch_shards: int = 1
    stack_batch_shards: int = 1

    def __post_init__(self) -> None:
        for name in ("lanes", "alone_batch_shards", "stack_batch_shards"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"DeviceProfile.{name} must be a positive int, got {v!r}")

    def compile_seconds(self, stacked: bool) -> float:
        return self.compile_s * (self.stack_compile if stacked else 1.0)

    def _split(self, k: int) -> tuple[int, int]:
        """(models per device column, rounded up; batch shards) of a group of ``k`` models."""
        shards = self.alone_batch_shards if k == 1 else self.stack_batch_shards
        return -(-k // max(self.devices // shards, 1)), shards

    def step_seconds(self, padded_flops_per_step: float, k: int, padded_params: int = 0) -> float:
        """One step of ``k`` models (one: alone). A split batch divides the FLOPs, not the
        per-step overheads or the optimiser's pass over the (replicated) parameters."""
        per_device, shards = self._split(k)
        return self.overhead_s + per_device * (self.per_model_s + padded_flops_per_step / (self.flop_rate * shards)
                                               + padded_params * self.param_s)

    def flop_seconds(self, padded_flops_per_step: float, k: int) -> float:
        """The FLOP-bound share of ``step_seconds`` (what lanes cannot overlap)."""
        per_device, shards = self._split(k)
        return per_device * padded_flops_per_step / (self.flop_rate * shards)


MAX_CPU_LANES = 4


def default_lanes(platform: str, devices: int) -> int:
    """Lanes for this host: on a CPU with one device, one per core available to the process (at
    most ``MAX_CPU_LANES``; measured on 2 cores only); otherwise one."""
    import jax

    if platform != "cpu" or devices > 1 or jax.process_count() > 1:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_CPU_LANES))


def measure_matmul_peak(dtype: str = "float32", n: int = 512, repeats: int = 5) -> float:
    """FLOP/s of a jitted chain of three n×n matmuls in ``dtype`` on the default device (best of
    ``repeats``, synchronised): the practical matmul peak (the planner's rate, the CPU's MFU
    denominator in ``bench``)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    # the operand is made on the host: built with eager jnp ops it cost three small compiles,
    # ~0.1 s of every planned sweep's start on the 2-core CPU
    x = jax.device_put(np.full((n, n), 1.0 / n, dtype=jnp.dtype(dtype)))
    f = jax.jit(lambda a: a @ a @ a @ a)
    f(x).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 3 * 2 * n**3 / best


def calibrate(measure: bool = True, lanes: int | None = None, devices: int | None = None) -> DeviceProfile:
    """This device's profile: the table's rates, the FLOP rate measured when ``measure``, and
    ``lanes`` (None: ``default_lanes``). ``devices``: how many of this host's devices the work
    will run on (None: all of them); a plan costs a stack as split over that many
    (``DeviceProfile._split``), so work timed on one device must be planned for one."""
    import jax

    available = jax.devices()
    if devices is not None and (not isinstance(devices, int) or not 1 <= devices <= len(available)):
        raise ValueError(f"calibrate: devices must be a whole number in [1, {len(available)}] (this host's "
                         f"devices), got {devices!r}")
    devices = available if devices is None else available[:devices]
    platform = devices[0].platform if devices[0].platform in PLATFORM_DEFAULTS else "gpu"
    d = PLATFORM_DEFAULTS[platform]
    if measure:
        source = "measured matmul peak × table efficiency"
        if jax.process_count() == 1:
            peak = measure_matmul_peak()
        else:
            # every process must make the same plan (a group planned differently on two processes
            # would leave them waiting in each other's collectives): process 0 measures, and its
            # rate is sent to the others
            import numpy as np
            from jax.experimental import multihost_utils

            mine = measure_matmul_peak() if jax.process_index() == 0 else 0.0
            peak = float(multihost_utils.broadcast_one_to_all(np.float32(mine)))
    else:
        peak, source = {"cpu": 1e11, "gpu": 1e14, "tpu": 1e14}[platform], "table"
    return DeviceProfile(platform, d["efficiency"] * peak, d["overhead_s"], d["per_model_s"], d["compile_s"],
                         param_s=d["param_s"], devices=len(devices), source=source,
                         stack_compile=d["stack_compile"], load_s=d["load_s"],
                         eval_compile_s=d["eval_compile_s"],
                         lanes=default_lanes(platform, len(devices)) if lanes is None else lanes)
