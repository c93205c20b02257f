"""Throughput measurement: compile time, steady-state step time, tokens/s, model FLOP/s, MFU and
padded-FLOP utilisation of a set of models trained as one stack, one after another, or as the
planner groups them, side by side in one run.

Conventions (levanter / MaxText / nanoGPT, see the project notes):

* **Model FLOPs** are counted analytically on each model's *true* (unpadded) size, by
  ``ModelConfig.flops_per_token``: training FLOPs per token = 6·N_non-embedding + 6·d·V (LM head)
  + 6·L·T·d (attention scores and weighted sum, 12·L·T·d halved for the causal mask, as MaxText
  counts it), 2 FLOPs per multiply-add, forward + backward = 3 × forward, the embedding lookup
  free (``FLOP_FORMULA``). Padding, like rematerialisation, is an implementation detail kept out
  of MFU; the share of a stack's executed FLOPs that is useful is ``padded_flops_util``.
* **MFU** = model FLOP/s ÷ (peak FLOP/s per device × devices). The peak is the matmul peak
  *measured* on this machine for a CPU (``measure_matmul_peak``), or the dense (no sparsity)
  figure of ``PEAK_FLOPS`` for a known accelerator, by ``device_kind`` and matmul dtype.
* **Step time** excludes compilation (the first dispatch of each program is timed separately),
  is synchronous (``jax.block_until_ready`` on the returned state and losses), and runs several
  optimiser steps per dispatch (the engine's ``make_train_chunk``: a ``fori_loop`` over steps,
  batches drawn on the device, state donated). Each of ``repeats`` dispatches gives one sample of
  the per-step time; the median is reported with min, max and interquartile range. The programs
  of all modes are timed round-robin (one dispatch of each per round), so that the slow spells
  of a shared machine fall on every mode alike and the ratios stay fair.
* **Recompiles** are counted with JAX's backend-compile monitoring event: any compilation after
  a program's first dispatch is reported (and ``BenchResult.recompiles`` must be 0).

The public entry point is ``run_bench``; ``jaxscale bench`` (``commands/bench.py``) and
``experiments/throughput.py`` print and plot its result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

from jaxscale.host import allocator_description

FLOP_FORMULA = ("training FLOPs/token = 6*N_non_embedding + 6*d_model*vocab (LM head) + 6*n_layers*T*d_model "
                "(attention QK^T and AV: 12*L*T*d, halved for the causal mask as in MaxText); "
                "2 FLOPs per multiply-add, forward+backward = 3x forward, embedding lookup not counted; "
                "summed over each model's TRUE (unpadded) size; T = trained sequence length")

MODES = ("stack", "sequential", "auto")

# Dense peak FLOP/s per device by device_kind (lower-cased substring, first match wins) and
# matmul dtype. bf16 figures are the vendors' dense numbers (NVIDIA's "with sparsity" figure
# halved), as levanter's DEVICE_AVAILABLE_FLOPS lists them. float32 on NVIDIA is the
# non-tensor-core FP32 rate (XLA may use TF32 tensor cores for float32 matmuls at default
# precision, so float32 MFU there is an upper bound); TPUs publish no float32 matmul figure, so
# float32 there falls back to the bf16 peak (said in ``peak_source``).
PEAK_FLOPS: tuple[tuple[str, str, dict], ...] = (
    ("h100 pcie", "NVIDIA H100 PCIe", {"bfloat16": 756e12, "float32": 51e12}),
    ("h200", "NVIDIA H200", {"bfloat16": 989e12, "float32": 67e12}),
    ("h100", "NVIDIA H100 SXM", {"bfloat16": 989e12, "float32": 67e12}),
    ("a100", "NVIDIA A100", {"bfloat16": 312e12, "float32": 19.5e12}),
    ("tpu v4", "TPU v4", {"bfloat16": 275e12}),
    ("tpu v5 lite", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5e", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5p", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v5", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v6 lite", "TPU v6e", {"bfloat16": 918e12}),
    ("tpu v6e", "TPU v6e", {"bfloat16": 918e12}),
)


# ----- FLOPs, peaks and MFU arithmetic -------------------------------------------------------------

def flops_per_step(cfg, batch_size: int, seq_len: int) -> int:
    """Model (true-size) training FLOPs of one optimiser step of ``cfg``."""
    return cfg.flops_per_token(seq_len=seq_len).total * batch_size * seq_len


def mfu(model_flops_per_s: float, peak_flops: float, devices: int = 1) -> float:
    """Model FLOP utilisation as a fraction: model FLOP/s ÷ (peak per device × devices)."""
    if peak_flops <= 0 or devices <= 0:
        raise ValueError(f"peak_flops and devices must be positive, got {peak_flops}, {devices}")
    return model_flops_per_s / (peak_flops * devices)


def throughput(cfgs: Sequence, step_seconds: float, batch_size: int, seq_len: int, peak_flops: float,
               devices: int = 1) -> dict:
    """tokens/s, model FLOP/s and MFU of ``cfgs`` that together take ``step_seconds`` for one
    optimiser step of each (a stack's step, or the sum of the models' steps one after another)."""
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    tokens = len(cfgs) * batch_size * seq_len
    flops = sum(flops_per_step(c, batch_size, seq_len) for c in cfgs)
    return {"tokens_per_s": tokens / step_seconds, "model_flops_per_s": flops / step_seconds,
            "mfu": mfu(flops / step_seconds, peak_flops, devices)}


def table_peak(device_kind: str, dtype: str = "bfloat16") -> tuple[float, str] | None:
    """(peak FLOP/s, source) from ``PEAK_FLOPS`` for an accelerator's ``device_kind``, or None."""
    kind = device_kind.lower()
    for pattern, name, peaks in PEAK_FLOPS:
        if pattern in kind:
            if dtype in peaks:
                return peaks[dtype], f"table: {name} dense {dtype} peak ({peaks[dtype]:.3g} FLOP/s)"
            return peaks["bfloat16"], (f"table: {name} dense bfloat16 peak ({peaks['bfloat16']:.3g} FLOP/s; "
                                       f"no {dtype} figure published)")
    return None


def measure_matmul_peak(dtype: str = "float32", n: int = 1024, repeats: int = 7) -> float:
    """The CPU's practical matmul peak (the planner's measurement at a larger size, more repeats)."""
    from jaxscale.planner import measure_matmul_peak as measure

    return measure(dtype, n=n, repeats=repeats)


def device_peak(dtype: str = "float32", *, measure: bool = True) -> dict:
    """The peak used for MFU: ``{"peak_flops", "peak_source", "device", "devices"}``."""
    import jax

    devs = jax.devices()
    dev = devs[0]
    info = {"platform": dev.platform, "kind": dev.device_kind, "count": len(devs)}
    found = table_peak(dev.device_kind, dtype) if dev.platform != "cpu" else None
    if found is not None:
        peak, source = found
    elif measure or dev.platform == "cpu":
        peak = measure_matmul_peak(dtype)
        source = (f"measured: best of 7 jitted 1024x1024 {dtype} matmul chains on this {dev.platform} "
                  f"({peak / 1e9:.1f} GFLOP/s per device, all its cores)")
    else:
        raise ValueError(f"no peak known for device kind {dev.device_kind!r}")
    return {"peak_flops": peak, "peak_source": source, "device": info, "devices": len(devs)}


# ----- compile counting ------------------------------------------------------------------------------

class _CompileCounter:
    """Counts XLA backend compilations (JAX's monitoring event), process-wide."""

    count = 0
    _registered = False

    @classmethod
    def ensure(cls) -> None:
        if cls._registered:
            return
        import jax

        def listener(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                cls.count += 1

        jax.monitoring.register_event_duration_secs_listener(listener)
        cls._registered = True


# ----- timing one group -----------------------------------------------------------------------------

@dataclass
class GroupTiming:
    """One compiled program (a stack, or one model alone) timed in steady state."""

    names: list
    seeds: list
    mode: str                  # "stack" or "alone"
    k: int
    envelope: str
    steps_per_dispatch: int
    first_dispatch_s: float    # compile + one dispatch of steps_per_dispatch steps
    compile_s: float           # first_dispatch_s − the steady time of one dispatch
    compiles_first: int        # backend compilations during the first dispatch (0: program reused)
    recompiles: int            # backend compilations after the first dispatch (must be 0)
    step_s: list               # per-step seconds, one sample per timed dispatch
    padded_flops_util: float

    @property
    def step_s_median(self) -> float:
        return statistics.median(self.step_s)

    def summary(self) -> dict:
        s = sorted(self.step_s)
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
        return {"models": self.names, "seeds": self.seeds, "mode": self.mode, "k": self.k,
                "envelope": self.envelope, "steps_per_dispatch": self.steps_per_dispatch,
                "first_dispatch_s": self.first_dispatch_s, "compile_s": self.compile_s,
                "compiles_first_dispatch": self.compiles_first, "recompiles_after_first": self.recompiles,
                "step_ms": {"median": 1e3 * self.step_s_median, "min": 1e3 * s[0], "max": 1e3 * s[-1],
                            "iqr": 1e3 * (q[2] - q[0]), "spread_pct": 100 * (s[-1] - s[0]) / self.step_s_median,
                            "repeats": len(s)},
                "padded_flops_util": self.padded_flops_util}


class _GroupRunner:
    """One program ready to time: state built, first dispatch (compilation) done."""

    def __init__(self, cfgs: Sequence, seeds: Sequence[int], data, optim, *, stacked: bool,
                 steps_per_dispatch: int, max_repeats: int):
        import jax
        import jax.numpy as jnp

        from jaxscale.data.stream import data_key
        from jaxscale.model import init_params
        from jaxscale.stack import envelope, pad_params, padded_flops_utilisation, stack_dims, stack_trees
        from jaxscale.train import Hyper, init_states, make_train_chunk

        if not stacked and len(cfgs) != 1:
            raise ValueError("time_group: a model alone means one config")
        _CompileCounter.ensure()
        self.cfgs, self.seeds, self.stacked = list(cfgs), list(seeds), stacked
        self.env = envelope(cfgs) if stacked else cfgs[0]
        n = self.n = int(steps_per_dispatch)
        big = 2**30  # budgets far beyond the measurement, so no model freezes
        params = [init_params(c, s) for c, s in zip(cfgs, seeds)]
        hypers = [Hyper.make(optim, big) for _ in cfgs]
        if stacked:
            state = init_states(stack_trees([pad_params(p, self.env) for p in params]), list(seeds), optim,
                                stacked=True)
            hyper, dims = jax.tree.map(jnp.asarray, stack_trees(hypers)), stack_dims(cfgs)
        else:
            state = init_states(params[0], seeds[0], optim, stacked=False)
            hyper, dims = jax.tree.map(jnp.asarray, hypers[0]), None
        self.chunk = make_train_chunk(self.env, optim, data.sampler, n, stacked=stacked)
        self.args = (hyper, dims, data.arrays, data_key(0))
        self.starts = [jnp.int32(i * n) for i in range(max_repeats + 1)]  # made before timing
        self.count = jnp.int32(n)
        jax.block_until_ready((state, self.args, self.starts, self.count))
        self.util = padded_flops_utilisation(cfgs, data.seq_len) if stacked else 1.0
        c0 = _CompileCounter.count
        t0 = time.perf_counter()
        self.state, losses = self.chunk(state, *self.args, self.starts[0], self.count)
        jax.block_until_ready((self.state, losses))
        self.first = time.perf_counter() - t0
        self.compiles_first = _CompileCounter.count - c0
        self.times: list[float] = []
        self.recompiles = 0

    def once(self) -> float:
        """One timed dispatch; returns and records seconds per step."""
        import jax

        c0 = _CompileCounter.count
        t0 = time.perf_counter()
        self.state, losses = self.chunk(self.state, *self.args, self.starts[len(self.times) + 1], self.count)
        jax.block_until_ready((self.state, losses))
        dt = (time.perf_counter() - t0) / self.n
        self.recompiles += _CompileCounter.count - c0
        self.times.append(dt)
        return dt

    def timing(self) -> GroupTiming:
        med = statistics.median(self.times)
        return GroupTiming([c.name for c in self.cfgs], self.seeds, "stack" if self.stacked else "alone",
                           len(self.cfgs), self.env.name if self.stacked else self.cfgs[0].name, self.n, self.first,
                           max(self.first - med * self.n, 0.0), self.compiles_first, self.recompiles, self.times,
                           self.util)


def time_groups(groups: Sequence[tuple[Sequence, Sequence[int], bool]], data, optim, *, steps_per_dispatch: int,
                repeats: int, log=None) -> list[GroupTiming]:
    """Time several programs ``(cfgs, seeds, stacked)`` side by side: each is compiled (its first
    dispatch timed), then the timed dispatches go round-robin (one dispatch of every program per
    round, ``repeats`` rounds), so a busy machine's slow spells fall on every program alike."""
    say = log or (lambda *_: None)
    runners = []
    for cfgs, seeds, stacked in groups:
        say(f"  compiling {'a stack of ' + str(len(cfgs)) if stacked else 'alone'}: "
            f"{', '.join(f'{c.name} seed={s}' for c, s in zip(cfgs, seeds))}")
        runners.append(_GroupRunner(cfgs, seeds, data, optim, stacked=stacked, steps_per_dispatch=steps_per_dispatch,
                                    max_repeats=repeats))
    for _ in range(repeats):
        for r in runners:
            r.once()
    return [r.timing() for r in runners]


def time_group(cfgs: Sequence, seeds: Sequence[int], data, optim, *, stacked: bool, steps_per_dispatch: int,
               repeats: int) -> GroupTiming:
    """Time ``cfgs`` trained together as one padded stack (``stacked``) or, for one config, alone
    at its true shape, through the engine's ``make_train_chunk``."""
    return time_groups([(cfgs, seeds, stacked)], data, optim, steps_per_dispatch=steps_per_dispatch,
                       repeats=repeats)[0]


# ----- a whole bench run ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchSpec:
    """A model to bench: its config and seed."""

    cfg: object
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.cfg.name} seed={self.seed}"


def auto_steps_per_dispatch(cfgs: Sequence, batch_size: int, seq_len: int, peak: float,
                            target_s: float = 0.5) -> int:
    """Steps per dispatch so that one dispatch of the biggest group takes about ``target_s``
    (estimated at 30% of the peak plus 0.3 ms per step), between 1 and 200."""
    est = 3e-4 + sum(flops_per_step(c, batch_size, seq_len) for c in cfgs) / (0.3 * peak)
    return int(min(200, max(1, round(target_s / est))))


def _plan_groups(specs: Sequence[BenchSpec], mode: str, budget_steps: int, tokens_per_step: int,
                 profile) -> list[tuple[tuple[int, ...], bool]]:
    """[(indices, stacked)] of ``mode``: one stack per compatible bucket, every model alone, or the
    planner's choice for a run of ``budget_steps`` steps per model."""
    from jaxscale.planner import plan
    from jaxscale.runner import ModelSpec

    mspecs = [ModelSpec(s.cfg, s.seed) for s in specs]
    groups = plan(mspecs, [budget_steps] * len(specs), tokens_per_step, profile, mode=mode)
    return [(g.indices, g.mode == "stack") for g in groups]


def run_bench(specs: Sequence[BenchSpec], data, *, optim=None, modes: Sequence[str] = MODES,
              steps_per_dispatch: int | None = None, repeats: int = 5, budget_steps: int = 1000,
              measure_peak: bool = True, peak: dict | None = None, log=None) -> dict:
    """Bench ``specs`` on ``data`` (a ``TrainData``: its batch size, sequence length and sampler)
    in each of ``modes``; returns the JSON-ready result (see ``jaxscale bench --help``).

    ``budget_steps`` is the run length the planner (``auto``) plans for, and the horizon of each
    mode's estimated end-to-end time (compile + steps × step time). ``peak`` (a ``device_peak``
    result) skips the peak measurement; otherwise a CPU's matmul peak is measured before and after
    the timings and the higher one is used (a busy machine lowers both the peak and the steps).
    """
    import jax

    from jaxscale.planner import calibrate
    from jaxscale.provenance import versions
    from jaxscale.train import OptimConfig

    if not specs:
        raise ValueError("bench: no models")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"bench: modes must be among {MODES}, got {list(modes)}")
    if repeats < 1:
        raise ValueError(f"bench: repeats must be >= 1, got {repeats}")
    for s in specs:
        if data.seq_len > s.cfg.max_seq_len:
            raise ValueError(f"bench: sequence length {data.seq_len} exceeds {s.cfg.name}'s context {s.cfg.max_seq_len}")
        if data.vocab_size > s.cfg.vocab_size:
            raise ValueError(f"bench: data vocab {data.vocab_size} exceeds {s.cfg.name}'s vocab {s.cfg.vocab_size}")
    say = log or (lambda *_: None)
    optim = optim or OptimConfig()
    dtype = specs[0].cfg.dtype
    given_peak = peak is not None
    peak = dict(peak) if given_peak else device_peak(dtype, measure=measure_peak)
    say(f"device {peak['device']['kind']} ×{peak['devices']} ({peak['device']['platform']}); "
        f"peak {peak['peak_flops'] / 1e9:.1f} GFLOP/s per device ({peak['peak_source']})")
    b, t = data.batch_size, data.seq_len
    cfgs = [s.cfg for s in specs]
    if steps_per_dispatch is None:
        steps_per_dispatch = auto_steps_per_dispatch(cfgs, b, t, peak["peak_flops"])
    profile = calibrate(measure=True) if "auto" in modes else None
    devices = 1  # a group runs on one device unless the model axis is sharded (not timed here)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    plans = {mode: _plan_groups(specs, mode, budget_steps, b * t, profile or calibrate(measure=False))
             for mode in modes}
    unique = list(dict.fromkeys((tuple(ix), st) for groups in plans.values() for ix, st in groups))
    timed = time_groups([([specs[i].cfg for i in ix], [specs[i].seed for i in ix], st) for ix, st in unique],
                        data, optim, steps_per_dispatch=steps_per_dispatch, repeats=repeats, log=say)
    cache = dict(zip(unique, timed))
    out_modes = {}
    for mode in modes:
        timings = [(ix, cache[(tuple(ix), st)]) for ix, st in plans[mode]]
        out_modes[mode] = _mode_result(mode, timings, specs, b, t, peak["peak_flops"], devices, budget_steps)
        m = out_modes[mode]
        say(f"  {mode:<10} {m['tokens_per_s']:>12,.0f} tok/s  step {1e3 * m['step_s']:9.3f} ms  "
            f"MFU {100 * m['mfu']:5.1f}%  compile {m['compile_s']:.1f}s  recompiles {m['recompiles']}")
    if not given_peak and peak["device"]["platform"] == "cpu":
        after = device_peak(dtype, measure=True)
        peak["peak_measurements"] = [peak["peak_flops"], after["peak_flops"]]
        if after["peak_flops"] > peak["peak_flops"]:
            peak.update(peak_flops=after["peak_flops"], peak_source=after["peak_source"])
            for m in out_modes.values():  # recompute the MFU figures against the higher peak
                _rescale_mfu(m, peak["peak_flops"])
        peak["peak_source"] += " (higher of the measurements before and after the timings)"
    ratios = _ratios(out_modes, len(specs))
    recompiles = sum(m["recompiles"] for m in out_modes.values())
    return {
        "device": peak["device"], "devices": devices, "devices_available": peak["devices"],
        "peak_flops": peak["peak_flops"],
        "peak_source": peak["peak_source"], "peak_measurements": peak.get("peak_measurements"),
        "flop_formula": FLOP_FORMULA, "dtype": dtype,
        "batch_size": b, "seq_len": t, "tokens_per_step_per_model": b * t, "data": data.info,
        "steps_per_dispatch": steps_per_dispatch, "repeats": repeats, "budget_steps": budget_steps,
        "n_models": len(specs), "models": [_model_info(s, b, t) for s in specs],
        "modes": out_modes, "ratios": ratios, "recompiles": recompiles,
        "recompile_check": "ok: no compilation after each program's first dispatch" if recompiles == 0
        else f"FAILED: {recompiles} compilations after the first dispatch",
        "compilation_cache": "off (compile times are cold unless a program was compiled earlier in this process)",
        "host_allocator": allocator_description(),
        "load_avg_1m": {"before": load_before, "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "cpu_count": os.cpu_count(), "jax_platforms": os.environ.get("JAX_PLATFORMS"),
        "versions": versions(), "accelerator_note": None if jax.devices()[0].platform != "cpu" else
        "CPU only: no accelerator was used for these figures",
    }


def _model_info(s: BenchSpec, b: int, t: int) -> dict:
    f = s.cfg.flops_per_token(seq_len=t)
    pc = s.cfg.param_counts()
    return {"name": s.cfg.name, "seed": s.seed, "config": s.cfg.to_dict(), "params": pc.total,
            "non_embedding_params": pc.non_embedding,
            "flops_per_token": {"total": f.total, "non_embedding": f.non_embedding, "head": f.head,
                                "attention": f.attention, "causal": f.causal, "seq_len": f.seq_len},
            "flops_per_step": flops_per_step(s.cfg, b, t)}


def _mode_result(mode, timings, specs, b, t, peak, devices, budget_steps) -> dict:
    """One mode: its groups, per-model figures, and totals for one step of every model."""
    groups, per_model = [], [None] * len(specs)
    step_total, compile_total, recompiles = 0.0, 0.0, 0
    for indices, g in timings:
        gcfgs = [specs[i].cfg for i in indices]
        st = g.step_s_median
        tp = throughput(gcfgs, st, b, t, peak, devices)
        padded = len(gcfgs) * flops_per_step(_env_cfg(gcfgs, g.mode), b, t) / st
        groups.append({**g.summary(), **tp, "padded_flops_per_s": padded,
                       "padded_flops_mfu": mfu(padded, peak, devices)})
        for i in indices:
            one = throughput([specs[i].cfg], st, b, t, peak, devices)
            per_model[i] = {"name": specs[i].cfg.name, "seed": specs[i].seed, "group": len(groups) - 1,
                            "step_ms": 1e3 * st, **one}
        step_total += st
        compile_total += g.compile_s
        recompiles += g.recompiles
    total = throughput([s.cfg for s in specs], step_total, b, t, peak, devices)
    return {"mode": mode, "groups": groups, "per_model": per_model, "step_s": step_total,
            "compile_s": compile_total, "recompiles": recompiles, **total,
            "estimated_end_to_end_s": compile_total + budget_steps * step_total}


def _rescale_mfu(m: dict, peak: float) -> None:
    for item in [m, *m["groups"], *m["per_model"]]:
        item["mfu"] = item["model_flops_per_s"] / peak
    for g in m["groups"]:
        g["padded_flops_mfu"] = g["padded_flops_per_s"] / peak


def _env_cfg(gcfgs, mode):
    from jaxscale.stack import envelope

    return envelope(gcfgs) if mode == "stack" else gcfgs[0]


def _ratios(out_modes: dict, k: int) -> dict:
    """Aggregate tokens/s of each mode over sequential, and the stack target (≥ 0.8·K)."""
    r = {}
    seq = out_modes.get("sequential")
    for mode in ("stack", "auto"):
        if mode in out_modes and seq is not None:
            x = out_modes[mode]["tokens_per_s"] / seq["tokens_per_s"]
            r[f"{mode}_vs_sequential"] = x
            r[f"{mode}_vs_sequential_per_k"] = x / k
    if "stack" in out_modes and seq is not None:
        r["stack_target"] = {"k": k, "needed": 0.8 * k, "reached": r["stack_vs_sequential"],
                             "met": r["stack_vs_sequential"] >= 0.8 * k,
                             "meaning": "stack aggregate tokens/s >= 0.8*K x sequential aggregate tokens/s"}
    return r


def format_report(res: dict) -> str:
    """A plain-text table of a ``run_bench`` result."""
    lines = [f"device: {res['device']['kind']} x{res['devices']} ({res['device']['platform']})"
             + (f" -- {res['accelerator_note']}" if res.get("accelerator_note") else ""),
             f"peak: {res['peak_flops'] / 1e9:.1f} GFLOP/s per device ({res['peak_source']})",
             f"FLOPs: {res['flop_formula']}",
             f"batch {res['batch_size']} x seq {res['seq_len']}, dtype {res['dtype']}, "
             f"{res['steps_per_dispatch']} steps per dispatch, {res['repeats']} timed dispatches; "
             f"load avg {res['load_avg_1m']['before']:.2f} -> {res['load_avg_1m']['after']:.2f} on "
             f"{res['cpu_count']} cores; host allocator: {res.get('host_allocator', '?')}"]
    for mode, m in res["modes"].items():
        lines.append(f"\n[{mode}] {len(m['groups'])} program(s): one step of all {res['n_models']} models "
                     f"{1e3 * m['step_s']:.3f} ms, {m['tokens_per_s']:,.0f} tok/s, "
                     f"{m['model_flops_per_s'] / 1e9:.2f} GFLOP/s model, MFU {100 * m['mfu']:.1f}%, "
                     f"compile {m['compile_s']:.1f}s, est. {res['budget_steps']} steps "
                     f"{m['estimated_end_to_end_s']:.1f}s")
        for g in m["groups"]:
            sm = g["step_ms"]
            lines.append(f"  {g['mode']:<5} K={g['k']:<3} {g['envelope']:<26} step {sm['median']:9.3f} ms "
                         f"[{sm['min']:.3f}-{sm['max']:.3f}, IQR {sm['iqr']:.3f}] "
                         f"{g['tokens_per_s']:>11,.0f} tok/s MFU {100 * g['mfu']:5.1f}% "
                         f"padded-util {100 * g['padded_flops_util']:5.1f}% compile {g['compile_s']:5.1f}s "
                         f"recompiles {g['recompiles_after_first']}")
        for p in m["per_model"]:
            lines.append(f"    {p['name']:<28} seed {p['seed']:<3} {p['tokens_per_s']:>11,.0f} tok/s "
                         f"MFU {100 * p['mfu']:5.2f}%")
    if res["ratios"]:
        lines.append("")
        for name, v in res["ratios"].items():
            if isinstance(v, dict):
                lines.append(f"stack target (>= 0.8*K = {v['needed']:.2f}x sequential): reached "
                             f"{v['reached']:.2f}x -> {'MET' if v['met'] else 'not met'}")
            else:
                lines.append(f"{name}: {v:.3f}")
    lines.append(f"recompile check: {res['recompile_check']}")
    vt = res.get("vs_torch")
    if vt:
        lines.append(f"\nvs eager PyTorch ({vt['workload']}):")
        st = vt["torch_steady"]
        lines.append(f"  five eager steps: {st['sum_step_ms_median']:.2f} ms (torch {st['torch_version']}, "
                     f"{st['threads']} threads, load {st['load_avg_1m']:.2f})")
        for mode, x in vt.get("steady_ratio", {}).items():
            lines.append(f"  steady step {mode:<10}: {x:.2f}x faster than eager" if x >= 1
                         else f"  steady step {mode:<10}: {1 / x:.2f}x slower than eager")
        if "end_to_end" in vt:
            te = vt["torch_end_to_end"]
            lines.append(f"  end to end: torch {te['wall_s']:.1f}s wall ({te['total_seconds']:.1f}s in-process)")
            for mode, e in vt["end_to_end"].items():
                lines.append(f"  jaxscale sweep --mode {mode:<10} cold {e['cold']['wall_s']:6.1f}s "
                             f"(torch/jax {e['ratio_cold']:.2f}x), warm {e['warm']['wall_s']:6.1f}s "
                             f"(torch/jax {e['ratio_warm']:.2f}x)")
    return "\n".join(lines)


def to_json(res: dict) -> str:
    return json.dumps(res, indent=2, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o))
