"""Eager PyTorch against jaxscale on the notebook's workloads, side by side in one run.

Everything runs as subprocesses: the eager baseline (``benchmarks/torch_baseline.py``, which
needs ``pip install -e '.[bench]'``) and ``jaxscale sweep --preset`` with a fresh (cold) and a
reused (warm) compilation-cache folder, so that no cache and no import is shared and the library
itself never imports torch. ``jaxscale bench --vs-torch`` calls ``vs_torch``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence


def torch_baseline_path() -> Path:
    return Path(__file__).resolve().parents[1] / "benchmarks" / "torch_baseline.py"


def check_torch() -> Path:
    """The baseline script's path; a clear error when torch or the script is missing."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ValueError("--vs-torch needs PyTorch, which is not installed: pip install -e '.[bench]' "
                         "(torch==2.13.0, CPU build)")
    path = torch_baseline_path()
    if not path.exists():
        raise ValueError(f"--vs-torch needs the eager baseline script {path} (a source checkout of jaxscale)")
    return path


def _run_json(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> tuple[dict | None, float, str]:
    """Run the eager baseline: as a user runs the notebook, on the C library's allocator (not the
    one ``jaxscale`` preloads for itself, ``host.without_preload``)."""
    from jaxscale.host import without_preload

    env = without_preload(os.environ if env is None else env)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    out = proc.stdout.strip().splitlines()
    for line in reversed(out):
        if line.startswith("{"):
            return json.loads(line), wall, proc.stdout
    return None, wall, proc.stdout


def torch_allocator() -> str:
    """The allocator the eager baseline runs on (``_run_json``'s environment), for the report."""
    from jaxscale.host import without_preload

    preload = without_preload(os.environ).get("LD_PRELOAD")
    return f"LD_PRELOAD={preload}" if preload else "the C library's allocator"


def torch_steady_step(family: str) -> dict:
    """The eager baseline's "five eager steps" (sum of the family's median step times)."""
    res, wall, _ = _run_json([sys.executable, str(check_torch()), "--steady-step", family, "--json"])
    return res


def torch_steady_step_configs(cfgs: Sequence, batch_size: int, seq_len: int, optim) -> dict:
    """The eager baseline's steady step of any configs at the bench's batch and sequence length,
    with the bench's optimiser settings (``torch_baseline.py --steady-step-configs``)."""
    bad = sorted({c.dtype for c in cfgs} - {"float32"})
    if bad:
        raise ValueError(f"--vs-torch: the eager baseline runs float32 on the CPU; the models use {bad}")
    spec = {"configs": [dataclasses.asdict(c) for c in cfgs], "batch_size": int(batch_size), "seq_len": int(seq_len),
            "optim": {"lr": optim.lr, "weight_decay": optim.weight_decay, "betas": [optim.beta1, optim.beta2],
                      "eps": optim.eps, "clip": optim.clip_norm}}
    with tempfile.TemporaryDirectory(prefix="jaxscale-torch-") as tmp:
        path = Path(tmp) / "configs.json"
        path.write_text(json.dumps(spec))
        res, _, _ = _run_json([sys.executable, str(check_torch()), "--steady-step-configs", str(path), "--json"])
    return res


def preset_mismatch(preset: str, bench_result: dict) -> str | None:
    """Why the bench's models are not the preset's own workload, which the eager steady step
    times (its five sizes in order, one seed each, at its batch and sequence length, float32
    with its dropout); None when they are. Before, only the number of models was compared, so
    ``--sizes micro --k 5`` (five micro seeds) was set against the five eager sizes, and
    ``--batch-size``, ``--dtype`` or ``--dropout`` overrides against the preset's defaults."""
    from jaxscale.config import family_configs
    from jaxscale.presets import make_preset

    own = make_preset(preset)
    want = [c.to_dict() for c in family_configs(preset)]
    got = [m["config"] for m in bench_result["models"]]
    if got != want:
        names = [m["name"] for m in bench_result["models"]]
        return (f"the bench ran {names} (or changed their dtype or dropout), not the preset's own "
                f"{[c['name'] for c in want]}, which the eager baseline times")
    batch, seq_len = own.settings.batch_size, own.data.seq_len
    if (bench_result["batch_size"], bench_result["seq_len"]) != (batch, seq_len):
        return (f"the bench ran batch {bench_result['batch_size']} x {bench_result['seq_len']} tokens, the "
                f"preset and the eager baseline {batch} x {seq_len}")
    return None


def vs_torch_configs(cfgs: Sequence, bench_result: dict, optim, log=None) -> dict:
    """Eager PyTorch's steady step of the bench's own models (a family's sizes or an explicit
    config: one model each, at the bench's batch and sequence length) against each mode's step
    of all ``n_models`` (K seeds of each config cost K eager steps)."""
    say = log or (lambda *_: None)
    unique = list(dict.fromkeys(cfgs))
    say(f"eager torch: steady-state steps of {len(unique)} config(s) ...")
    steady = torch_steady_step_configs(unique, bench_result["batch_size"], bench_result["seq_len"], optim)
    per_config = {m["name"]: m["step_ms_median"] for m in steady["models"]}
    t_ms = sum(per_config[c.name] for c in cfgs)
    steady["sum_step_ms_median"] = t_ms  # over every model the bench trained (K seeds: K steps each)
    ratios = steady_ratios(t_ms, bench_result["modes"])
    say(f"  {len(cfgs)} eager steps {t_ms:.2f} ms; " + ", ".join(f"{m} x{x:.2f}" for m, x in ratios.items()))
    return {"workload": f"{len(cfgs)} model(s) at batch {bench_result['batch_size']} x {bench_result['seq_len']}",
            "torch_steady": steady, "steady_ratio": ratios}


def steady_ratios(torch_ms: float, modes: dict) -> dict:
    """Eager step time / each mode's step of all models (groups one after another), and / the
    same with the mode's lanes at once (``"<mode> lanes"``), where it has several."""
    out = {}
    for m, r in modes.items():
        out[m] = torch_ms / (1e3 * r["step_s"])
        if "lanes" in r:
            out[f"{m} lanes"] = torch_ms / (1e3 * r["lanes"]["step_s"])
    return out


def torch_workload(name: str) -> dict:
    """The eager baseline's notebook workload end to end; ``wall_s`` includes interpreter start."""
    res, wall, _ = _run_json([sys.executable, str(check_torch()), "--workload", name, "--json"])
    res["wall_s"] = wall
    return res


def jaxscale_sweep_e2e(preset: str, mode: str, cache_dir: str | None, lanes: int | None = None,
                       plan_for: str = "auto") -> dict:
    """``jaxscale sweep --preset … --mode … --plan-for …`` as a subprocess (its own interpreter:
    the cache is honest), wall time included interpreter start; ``cache_dir`` None disables the
    cache."""
    env = dict(os.environ)
    env["JAXSCALE_COMPILATION_CACHE"] = cache_dir or "off"
    with tempfile.TemporaryDirectory(prefix="jaxscale-bench-") as out:
        cmd = [sys.executable, "-m", "jaxscale.cli", "sweep", "--preset", preset, "--mode", mode,
               "--out", out, "--quiet", "--no-save-weights", "--plan-for", plan_for] + (
                   ["--lanes", str(lanes)] if lanes else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        rows = [json.loads(l) for l in (Path(out) / "results.jsonl").read_text().splitlines() if l.strip()]
    return {"mode": mode, "wall_s": wall, "compile_s_in_rows": rows_compile_seconds(rows),
            "waited_s_in_rows": sum({r["stack"]["id"]: r["stack"].get("waited_seconds") or 0.0
                                     for r in rows}.values()),
            "models": len(rows)}


def rows_compile_seconds(rows: Sequence[dict]) -> float:
    """The compile (or load) seconds of a sweep's rows, one compile per program: each group's own
    (``stack.compile_seconds``, once per group). A group that waited for another lane to compile
    the program it shares records the wait apart (``stack.waited_seconds``); rows written before
    that (no ``waited_seconds``) recorded the wait as the compile, so there a set of groups
    sharing one program (``stack.shared_program``) counts its longest compile once (a 3.6 s
    compile of notebook-scaling's shared program was summed to 7.1 s)."""
    per_group: dict = {}
    for r in rows:
        s = r["stack"]
        shared = s.get("shared_program")
        key = ("shared", tuple(shared)) if shared and "waited_seconds" not in s else ("group", s["id"])
        per_group[key] = max(per_group.get(key, 0.0), s["compile_seconds"] or 0.0)
    return sum(per_group.values())


def vs_torch(preset_or_family: str, bench_result: dict | None, *, end_to_end: bool, modes: Sequence[str],
             log=None, lanes: int | None = None, e2e_repeats: int = 1) -> dict:
    """Eager PyTorch against jaxscale on a notebook workload, side by side in one run.

    * steady state: the baseline's five eager steps (sum of medians) against each mode's step of
      the same five models (``bench_result``), ratio = torch ms ÷ jaxscale ms;
    * end to end (presets): ``torch_baseline.py --workload`` against ``jaxscale sweep --preset``
      per mode, cold (fresh compilation-cache folder) and warm (the same folder again), and for
      ``auto`` also with the cache off (``uncached``: every run compiles, and the planner plans
      for one run, ``planner.plan``'s ``reruns``) and with the cache on but planned for one run
      (``--plan-for once``: ``once`` cold, ``once_warm`` its rerun, which loads that plan's
      programs), all as subprocesses, ratio = torch wall ÷ jaxscale wall (both include
      interpreter start).
      ``e2e_repeats`` rounds, each running the baseline and then every mode cold and warm (so
      that a slow spell of a shared machine hits all of them alike); the walls reported are the
      medians, ratios are of medians, and every round's walls are kept (``runs``).
    """
    say = log or (lambda *_: None)
    if preset_or_family not in ("notebook-scaling", "notebook-emergence"):
        raise ValueError(f"--vs-torch: the eager baseline covers the notebook workloads (notebook-scaling, "
                         f"notebook-emergence), not {preset_or_family!r}")
    if not isinstance(e2e_repeats, int) or e2e_repeats < 1:
        raise ValueError(f"e2e_repeats must be a positive int, got {e2e_repeats!r}")
    check_torch()
    out: dict = {"workload": preset_or_family}
    say(f"eager torch: steady-state steps of {preset_or_family} ...")
    steady = torch_steady_step(preset_or_family)
    out["torch_steady"] = steady
    out["torch_allocator"] = torch_allocator()
    mismatch = None if bench_result is None else preset_mismatch(preset_or_family, bench_result)
    if bench_result is not None and mismatch is None:
        t_ms = steady["sum_step_ms_median"]
        out["steady_ratio"] = steady_ratios(t_ms, bench_result["modes"])
        say(f"  five eager steps {t_ms:.2f} ms; " + ", ".join(f"{m} x{x:.2f}" for m, x in out["steady_ratio"].items()))
    elif mismatch is not None:
        out["steady_ratio_skipped"] = mismatch
        say(f"  no steady-step ratio: {mismatch}")
    if end_to_end:
        torch_runs: list[dict] = []
        runs: dict = {m: {"cold": [], "warm": []} | ({"uncached": [], "once": [], "once_warm": []} if m == "auto" else {})
                      for m in modes}
        for r in range(e2e_repeats):
            round_note = f" (round {r + 1} of {e2e_repeats})" if e2e_repeats > 1 else ""
            say(f"eager torch: {preset_or_family} end to end{round_note} ...")
            tw = torch_workload(preset_or_family)
            torch_runs.append(tw)
            say(f"  torch {tw['wall_s']:.1f}s wall ({tw['total_seconds']:.1f}s in-process)")
            for mode in modes:
                with tempfile.TemporaryDirectory(prefix="jaxscale-cache-") as cache:
                    runs[mode]["cold"].append(jaxscale_sweep_e2e(preset_or_family, mode, cache, lanes))
                    runs[mode]["warm"].append(jaxscale_sweep_e2e(preset_or_family, mode, cache, lanes))
                if "uncached" in runs[mode]:
                    runs[mode]["uncached"].append(jaxscale_sweep_e2e(preset_or_family, mode, None, lanes))
                    with tempfile.TemporaryDirectory(prefix="jaxscale-cache-") as cache:
                        for kind in ("once", "once_warm"):
                            runs[mode][kind].append(jaxscale_sweep_e2e(preset_or_family, mode, cache, lanes, "once"))
                say(f"  jaxscale sweep --mode {mode}: " + ", ".join(f"{kind} {walls[-1]['wall_s']:.1f}s"
                                                                     for kind, walls in runs[mode].items()))
        torch_wall = statistics.median([t["wall_s"] for t in torch_runs])
        last = torch_runs[-1]
        out["torch_end_to_end"] = {"wall_s": torch_wall, "runs": [t["wall_s"] for t in torch_runs],
                                   "total_seconds": statistics.median([t["total_seconds"] for t in torch_runs]),
                                   "threads": last.get("threads"), "load_avg_1m": last.get("load_avg_1m")}
        e2e = {}
        for mode in modes:
            entry: dict = {}
            for kind in runs[mode]:
                walls = [x["wall_s"] for x in runs[mode][kind]]
                entry[kind] = {**runs[mode][kind][-1], "wall_s": statistics.median(walls), "runs": walls}
                entry[f"ratio_{kind}"] = torch_wall / entry[kind]["wall_s"]
            e2e[mode] = entry
        out["end_to_end"] = e2e
    return out

