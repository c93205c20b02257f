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

The FLOP and MFU arithmetic lives in ``mfu.py``, the timing of one program in ``bench_timing.py``.
The public entry point is ``run_bench``; ``jaxscale bench`` (``commands/bench.py``) and
``experiments/throughput.py`` print and plot its result.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Sequence

from jaxscale.bench_timing import GroupTiming, time_group, time_groups, time_plans
from jaxscale.host import allocator_description
from jaxscale.mfu import (FLOP_FORMULA, PEAK_FLOPS, device_peak, flops_per_step, measure_matmul_peak, mfu,
                          table_peak, throughput)
from jaxscale.model import attention_impl, layer_unroll, remat_policy, resolve_remat
from jaxscale.op_profile import format_table

# The FLOP/MFU arithmetic (mfu.py) and the program timing (bench_timing.py) are re-exported here,
# so ``jaxscale.bench`` stays the one import for throughput work.
__all__ = ["MODES", "BenchSpec", "GroupTiming", "run_bench", "format_report", "to_json", "time_group",
           "time_groups", "auto_steps_per_dispatch", "FLOP_FORMULA", "PEAK_FLOPS", "device_peak",
           "flops_per_step", "measure_matmul_peak", "mfu", "table_peak", "throughput"]

MODES = ("stack", "sequential", "auto")


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


def _plan_groups(specs: Sequence[BenchSpec], mode: str, budget_steps: int, batch_size: int, seq_len: int,
                 profile) -> list[tuple[tuple[int, ...], bool, int, tuple[int, ...]]]:
    """[(indices, stacked, lane, shared)] of ``mode``: one stack per compatible bucket, every model
    alone, or the planner's choice for a run of ``budget_steps`` steps per model, on the profile's
    lanes (``shared``: the models whose envelope a model alone is padded to, ``Group.shared``)."""
    from jaxscale.planner import plan
    from jaxscale.runner import ModelSpec

    mspecs = [ModelSpec(s.cfg, s.seed) for s in specs]
    # the plan of a default sweep (whose cache keeps the programs for later runs), whose steady
    # steps are what every warm run pays, even though the bench itself compiles with no cache
    groups = plan(mspecs, [budget_steps] * len(specs), batch_size * seq_len, profile, mode=mode, reruns=True,
                  seq_len=seq_len)
    return [(g.indices, g.mode == "stack", g.lane, tuple(g.shared)) for g in groups]


def run_bench(specs: Sequence[BenchSpec], data, *, optim=None, modes: Sequence[str] = MODES,
              steps_per_dispatch: int | None = None, repeats: int = 5, budget_steps: int = 1000,
              measure_peak: bool = True, peak: dict | None = None, log=None, profile_dir=None,
              profile_top: int = 15, lanes: int | None = None) -> dict:
    """Bench ``specs`` on ``data`` (a ``TrainData``: its batch size, sequence length and sampler)
    in each of ``modes``; returns the JSON-ready result (see ``jaxscale bench --help``).

    ``budget_steps`` is the run length the planner (``auto``) plans for, and the horizon of each
    mode's estimated end-to-end time (compile + steps × step time). ``peak`` (a ``device_peak``
    result) skips the peak measurement; otherwise a CPU's matmul peak is measured before and after
    the timings and the higher one is used (a busy machine lowers both the peak and the steps).
    ``profile_dir``: after the timings, one traced dispatch of every program; each group's
    ``profile`` gives its ``profile_top`` ops by time (``op_profile``). ``lanes`` (None: the
    planner's default for this host): a mode whose plan puts groups on several lanes is also
    timed with its lanes running at once, as a sweep runs them (``lanes`` in its result).
    """
    import jax

    from jaxscale.device_profile import calibrate
    from jaxscale.group_setup import program_fast
    from jaxscale.provenance import versions
    from jaxscale.train import OptimConfig
    from jaxscale.stack import envelope

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
    devices = 1  # a group runs on one device unless the model axis is sharded (not timed here)
    # planned for the one device it is timed on: a profile of all the host's devices would cost
    # a stack as split over them and give ``auto`` the plan of a sweep on every device
    profile = calibrate(measure="auto" in modes, lanes=lanes, devices=devices)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    plans = {mode: _plan_groups(specs, mode, budget_steps, b, t, profile) for mode in modes}
    unique = list(dict.fromkeys((tuple(ix), st, sh) for groups in plans.values() for ix, st, _, sh in groups))
    laned = [mode for mode in modes if len({g[2] for g in plans[mode]}) > 1]
    lanes_of = [[[unique.index((tuple(ix), st, sh)) for ix, st, lane, sh in plans[mode] if lane == j]
                 for j in range(1 + max(g[2] for g in plans[mode]))] for mode in laned]

    def timing_unit(ix, st, sh):
        unit = ([specs[i].cfg for i in ix], [specs[i].seed for i in ix], st)
        return unit + (envelope([specs[i].cfg for i in sh]),) if sh else unit

    def fast_of(ix, st, sh) -> bool:
        """The compile a sweep of ``budget_steps`` steps gives this program (``program_fast``): the
        bench timed XLA's full compile while a sweep of the notebook's scaling workload compiles
        every program the fast way, whose steps are slower (7.3 against 9.3 ms for its medium)."""
        members = sh or ix
        cfgs_u = [specs[i].cfg for i in ix]
        env = envelope([specs[i].cfg for i in members]) if (st or sh) else cfgs_u[0]
        return program_fast(cfgs_u, env, data, "auto", [budget_steps] * len(members), st, bool(sh))

    timed, lane_steps = time_plans([timing_unit(*u) for u in unique],
                                   data, optim, steps_per_dispatch=steps_per_dispatch, repeats=repeats,
                                   lanes_of=lanes_of, log=say, profile_dir=profile_dir, profile_top=profile_top,
                                   fast=[fast_of(*u) for u in unique])
    cache = dict(zip(unique, timed))
    out_modes = {}
    for mode in modes:
        timings = [(ix, cache[(tuple(ix), st, sh)]) for ix, st, _, sh in plans[mode]]
        out_modes[mode] = m = _mode_result(mode, timings, specs, b, t, peak["peak_flops"], devices, budget_steps)
        if mode in laned:
            st = lane_steps[laned.index(mode)]
            m["lanes"] = {"lanes": len(lanes_of[laned.index(mode)]), "step_s": st,
                          "tokens_per_s": m["tokens_per_s"] * m["step_s"] / st, "vs_one_after_another": m["step_s"] / st}
        say(f"  {mode:<10} {m['tokens_per_s']:>12,.0f} tok/s  step {1e3 * m['step_s']:9.3f} ms  "
            f"MFU {100 * m['mfu']:5.1f}%  compile {m['compile_s']:.1f}s  recompiles {m['recompiles']}"
            + (f"  | {m['lanes']['lanes']} lanes at once: step {1e3 * m['lanes']['step_s']:.3f} ms" if "lanes" in m else ""))
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
            "flops_per_step": flops_per_step(s.cfg, b, t), "attention": attention_impl(s.cfg),
            "remat": resolve_remat(remat_policy(), s.cfg, b, t), "layer_unroll": layer_unroll() or "full"}


def _mode_result(mode, timings, specs, b, t, peak, devices, budget_steps) -> dict:
    """One mode: its groups, per-model figures, and totals for one step of every model."""
    groups, per_model = [], [None] * len(specs)
    step_total, compile_total, recompiles = 0.0, 0.0, 0
    for indices, g in timings:
        gcfgs = [specs[i].cfg for i in indices]
        st = g.step_s_median
        tp = throughput(gcfgs, st, b, t, peak, devices)
        padded = len(gcfgs) * flops_per_step(g.env or _env_cfg(gcfgs, g.mode), b, t) / st
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
             f"batch {res['batch_size']} x seq {res['seq_len']}, dtype {res['dtype']}, attention "
             f"{'/'.join(sorted({m.get('attention', '?') for m in res['models']}))}, remat "
             f"{'/'.join(sorted({m.get('remat', '?') for m in res['models']}))}, layer unroll "
             f"{'/'.join(sorted({str(m.get('layer_unroll', '?')) for m in res['models']}))}, "
             f"{res['steps_per_dispatch']} steps per dispatch, {res['repeats']} timed dispatches; "
             f"load avg {res['load_avg_1m']['before']:.2f} -> {res['load_avg_1m']['after']:.2f} on "
             f"{res['cpu_count']} cores; host allocator: {res.get('host_allocator', '?')}"]
    for mode, m in res["modes"].items():
        programs = sum(1 for g in m["groups"] if g["compiles_first_dispatch"])  # the others reused one
        lines.append(f"\n[{mode}] {len(m['groups'])} group(s), {programs} program(s): one step of all "
                     f"{res['n_models']} models "
                     f"{1e3 * m['step_s']:.3f} ms, {m['tokens_per_s']:,.0f} tok/s, "
                     f"{m['model_flops_per_s'] / 1e9:.2f} GFLOP/s model, MFU {100 * m['mfu']:.1f}%, "
                     f"compile {m['compile_s']:.1f}s, est. {res['budget_steps']} steps "
                     f"{m['estimated_end_to_end_s']:.1f}s")
        if "lanes" in m:
            ln = m["lanes"]
            lines.append(f"  its {ln['lanes']} lanes at once (threads, as a sweep runs them): one step of all models "
                         f"{1e3 * ln['step_s']:.3f} ms, {ln['tokens_per_s']:,.0f} tok/s, "
                         f"{ln['vs_one_after_another']:.2f}x its groups one after another")
        for g in m["groups"]:
            sm = g["step_ms"]
            lines.append(f"  {g['mode']:<5} K={g['k']:<3} {g['envelope']:<26} step {sm['median']:9.3f} ms "
                         f"[{sm['min']:.3f}-{sm['max']:.3f}, IQR {sm['iqr']:.3f}] "
                         f"{g['tokens_per_s']:>11,.0f} tok/s MFU {100 * g['mfu']:5.1f}% "
                         f"padded-util {100 * g['padded_flops_util']:5.1f}% compile {g['compile_s']:5.1f}s"
                         f"{' (fast)' if g.get('fast_compile') else ''} recompiles {g['recompiles_after_first']}")
            if g.get("profile"):
                lines.append(format_table(g["profile"]))
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
    if res.get("vs_torch"):
        lines.extend(vs_torch_lines(res["vs_torch"]))
    return "\n".join(lines)


def vs_torch_lines(vt: dict) -> list[str]:
    """The report's lines for ``bench_torch.vs_torch``'s result."""
    st = vt["torch_steady"]
    lines = [f"\nvs eager PyTorch ({vt['workload']}):"]
    lines.append(f"  {len(st['models'])} eager model step(s), summed: {st['sum_step_ms_median']:.2f} ms "
                 f"(torch {st['torch_version']}, "
                 f"{st['threads']} threads, load {st['load_avg_1m']:.2f}"
                 + (f", {vt['torch_allocator']})" if vt.get("torch_allocator") else ")"))
    for mode, x in vt.get("steady_ratio", {}).items():
        lines.append(f"  steady step {mode:<10}: {x:.2f}x faster than eager" if x >= 1
                     else f"  steady step {mode:<10}: {1 / x:.2f}x slower than eager")
    if "end_to_end" in vt:
        te = vt["torch_end_to_end"]
        runs = te.get("runs", [te["wall_s"]])
        spread = lambda walls: f" [{min(walls):.1f}-{max(walls):.1f}]" if len(walls) > 1 else ""  # noqa: E731
        median = " (median of each)" if len(runs) > 1 else ""
        lines.append(f"  end to end{median}: torch {te['wall_s']:.1f}s wall{spread(runs)} "
                     f"({te['total_seconds']:.1f}s in-process)")
        for mode, e in vt["end_to_end"].items():
            cold, warm = e["cold"].get("runs", []), e["warm"].get("runs", [])
            lines.append(f"  jaxscale sweep --mode {mode:<10} cold {e['cold']['wall_s']:6.1f}s{spread(cold)} "
                         f"(torch/jax {e['ratio_cold']:.2f}x), warm {e['warm']['wall_s']:6.1f}s{spread(warm)} "
                         f"(torch/jax {e['ratio_warm']:.2f}x)")
            if "uncached" in e:
                walls = e["uncached"].get("runs", [])
                lines.append(f"  jaxscale sweep --mode {mode:<10} cache off {e['uncached']['wall_s']:6.1f}s"
                             f"{spread(walls)} (torch/jax {e['ratio_uncached']:.2f}x; every run compiles, "
                             "planned for one run)")
            if "once" in e:
                cold, warm = e["once"].get("runs", []), e["once_warm"].get("runs", [])
                lines.append(f"  jaxscale sweep --mode {mode:<10} --plan-for once: cold {e['once']['wall_s']:6.1f}s"
                             f"{spread(cold)} (torch/jax {e['ratio_once']:.2f}x), warm {e['once_warm']['wall_s']:6.1f}s"
                             f"{spread(warm)} (torch/jax {e['ratio_once_warm']:.2f}x; the cache on, planned for one run)")
    return lines


def to_json(res: dict) -> str:
    return json.dumps(res, indent=2, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o) else str(o))
