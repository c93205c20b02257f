"""The accelerator targets of the throughput issue, as one short prepared run.

    python benchmarks/device_check.py --out DIR              # on a GPU/TPU machine (≤ 9.5 min)
    python3 benchmarks/device_check.py --out $OUT            # the device tool: jax, flax, optax
                                                             # are there; run from the repo root
    python benchmarks/device_check.py --out DIR --dry-run    # the same plumbing, tiny, on a CPU

Runs ``jaxscale bench --json`` once per check, each in its own interpreter with a time limit (a
check that fails or runs out of time is reported as such; the others still run), saves every
check's log in ``DIR/device_check.log``, and prints and writes ``DIR/summary.json`` (each check's
verdict with its full bench result: two files, within the device tool's file limits) per target:

* ``cudnn_vmap_test``: ``tests/test_attention_gpu.py``: cuDNN's fused attention inside a
  vmapped padded stack equals the models alone, and equals XLA's attention (upstream batching
  bugs make this the condition for trusting ``JAXSCALE_ATTENTION=cudnn`` on a GPU);
* ``mfu_w1024_cudnn``: bf16 MFU of a width-1024 model (12 layers, 16 heads, context 1024, batch
  16, byte vocabulary, dropout off) ≥ 40% of the device's dense bf16 peak (``bench.PEAK_FLOPS``),
  with cuDNN's fused attention; ``mfu_w1024_explicit_attention``: the same with the attention
  written out (the default), for comparison. Both also trace one dispatch (``bench --profile``):
  their result's ``profile`` lists the 25 device ops with the most time per step;
* ``stack_emergence``: the notebook's five emergence sizes, stack vs sequential (first measured
  here: it ran past its earlier 105 s limit, so it now has 200 s);
* ``mfu_w1024_cudnn_remat_dots``: ``mfu_w1024_cudnn`` with ``JAXSCALE_REMAT=dots`` (the backward
  pass recomputes the elementwise results instead of reading them back; ``model.remat_policy``);
* ``stack_scaling_autotune0``: the notebook's five scaling sizes, stack vs sequential and auto,
  with XLA's GEMM autotuning off (``--xla_gpu_autotune_level=0``): compile and step time against
  ``stack_scaling``'s;
* ``stack_emergence_k8``: K = 8 seeds of the notebook's emergence ``micro`` model (batch one
  sequence) as one stack ≥ 0.8·K × the aggregate tokens/s of training them one after another;
* ``stack_scaling``: the notebook's five scaling sizes as one padded stack ≥ 0.8·K × sequential
  (K = 5);
* ``stack_emergence_cmdbuf``, ``stack_emergence_unroll``, ``stack_emergence_unroll_cmdbuf``,
  ``stack_scaling_unroll_cmdbuf``, ``mfu_w1024_cudnn_remat_dots_unroll``: the same workloads (the
  emergence ones with ``auto`` too) with the loops recorded into CUDA graphs (``CMDBUF_WHILE``)
  and/or the layer scan unrolled (``JAXSCALE_LAYER_UNROLL=full``): what the per-iteration launch
  overhead costs tiny models, and whether removing it lifts the stack ratios; and
  ``mfu_w1024_cudnn_remat_dots`` with cuBLAS for every GEMM (``_cublas``: XLA's Triton GEMM
  fusions took 12% of that step) and with one step per dispatch (``_spd1``: whether the copies
  in its profile come from carrying the state through the loop over steps).

The cuDNN test runs first, then the overhead variants (the last item above), then the rest in
the order above; all were measured on one H200 on 2026-12-04 (README, "Measured performance").
Put a new check first, so that a short lease measures what is new. ``--budget``
(default 570 s) bounds the whole run: each check gets at most the time left, and a check with
under 30 s left is skipped and reported as such. ``--dry-run`` swaps in tiny configs and float32
so that the whole script runs in
about a minute on a CPU: it checks the plumbing, not the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MFU_TARGET = 0.40
STACK_FACTOR = 0.8

MFU_ARGS = ["--d-model", "1024", "--n-heads", "16", "--n-layers", "12", "--seq-len", "1024", "--batch-size", "16",
            "--dropout", "0", "--dtype", "bfloat16", "--modes", "sequential", "--repeats", "5"]
MFU_DRY = ["--d-model", "64", "--n-heads", "2", "--n-layers", "2", "--seq-len", "32", "--batch-size", "4",
           "--dropout", "0", "--modes", "sequential", "--repeats", "2"]
# Checks run with this environment on top of the caller's: the width-1024 model with cuDNN's
# fused attention (opt-in, ``model.attention_impl``) and with the attention written out.
# ``stack_scaling_autotune0``: the notebook's scaling family with XLA's GEMM autotuning off. On
# the H200 a notebook-scaling program took 31 s to compile (155 s for the five sequential ones)
# for a 40-step workload; for models this small autotuning buys little, so this measures what
# turning it off saves in compile time and costs in step time.
# The per-step overhead of tiny models on a GPU: every loop iteration (the steps of a dispatch,
# the layers of the forward and backward scans) is launched from the host. These variants record
# loops into CUDA graphs too (command buffers with conditional nodes; XLA's default records the
# kernels between loops only) and/or unroll the layer scan (``JAXSCALE_LAYER_UNROLL=full``).
CMDBUF_WHILE = "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
CHECK_ENV = {"mfu_w1024_cudnn": {"JAXSCALE_ATTENTION": "cudnn"},
             "mfu_w1024_explicit_attention": {"JAXSCALE_ATTENTION": "explicit"},
             "mfu_w1024_cudnn_remat_dots": {"JAXSCALE_ATTENTION": "cudnn", "JAXSCALE_REMAT": "dots"},
             "stack_scaling_autotune0": {"XLA_FLAGS": "--xla_gpu_autotune_level=0"},
             "stack_emergence_cmdbuf": {"XLA_FLAGS": CMDBUF_WHILE},
             "stack_emergence_unroll": {"JAXSCALE_LAYER_UNROLL": "full"},
             "stack_emergence_unroll_cmdbuf": {"JAXSCALE_LAYER_UNROLL": "full", "XLA_FLAGS": CMDBUF_WHILE},
             "stack_scaling_unroll_cmdbuf": {"JAXSCALE_LAYER_UNROLL": "full", "XLA_FLAGS": CMDBUF_WHILE},
             "mfu_w1024_cudnn_remat_dots_unroll": {"JAXSCALE_ATTENTION": "cudnn", "JAXSCALE_REMAT": "dots",
                                                   "JAXSCALE_LAYER_UNROLL": "full"},
             "mfu_w1024_cudnn_remat_dots_cublas": {"JAXSCALE_ATTENTION": "cudnn", "JAXSCALE_REMAT": "dots",
                                                   "XLA_FLAGS": "--xla_gpu_enable_triton_gemm=false"},
             "mfu_w1024_cudnn_remat_dots_spd1": {"JAXSCALE_ATTENTION": "cudnn", "JAXSCALE_REMAT": "dots"}}
# A check that is a pytest file rather than a bench run: cuDNN attention under vmap (the stack)
# against the models alone, on this GPU; it must pass before cuDNN attention is trusted here.
PYTEST_CHECKS = {"cudnn_vmap_test": "tests/test_attention_gpu.py"}

SCALING_STACK = ["--preset", "notebook-scaling", "--modes", "stack", "sequential", "auto", "--repeats", "5"]
SCALING_STACK_DRY = ["--preset", "notebook-scaling", "--sizes", "nano", "micro", "--modes", "stack", "sequential",
                     "--repeats", "2", "--steps-per-dispatch", "5"]

EMERGENCE_AUTO = ["--preset", "notebook-emergence", "--modes", "stack", "sequential", "auto", "--repeats", "5"]
EMERGENCE_DRY = ["--preset", "notebook-emergence", "--sizes", "micro", "tiny", "--modes", "stack", "sequential",
                 "--repeats", "2", "--steps-per-dispatch", "20"]

CHECKS: tuple[tuple[str, float, list[str], list[str]], ...] = (
    # name, time limit (s) on an accelerator, full arguments, --dry-run arguments. New checks
    # come first; ``--budget`` (default 570 s: one 10-minute device command
    # with start-up to spare) skips whatever no longer fits.
    ("cudnn_vmap_test", 60.0, [], []),
    # the overhead variants (CMDBUF_WHILE, JAXSCALE_LAYER_UNROLL), with auto, for the planner
    ("stack_emergence_cmdbuf", 90.0, EMERGENCE_AUTO, EMERGENCE_DRY),
    ("stack_emergence_unroll", 90.0, EMERGENCE_AUTO, EMERGENCE_DRY),
    ("stack_emergence_unroll_cmdbuf", 90.0, EMERGENCE_AUTO, EMERGENCE_DRY),
    ("stack_scaling_unroll_cmdbuf", 105.0, SCALING_STACK, SCALING_STACK_DRY),
    ("mfu_w1024_cudnn_remat_dots_unroll", 110.0, MFU_ARGS, MFU_DRY),
    ("mfu_w1024_cudnn_remat_dots_cublas", 110.0, MFU_ARGS, MFU_DRY),
    ("mfu_w1024_cudnn_remat_dots_spd1", 110.0, MFU_ARGS + ["--steps-per-dispatch", "1"],
     MFU_DRY + ["--steps-per-dispatch", "1"]),
    ("mfu_w1024_cudnn", 110.0, MFU_ARGS, MFU_DRY),
    ("stack_emergence", 200.0,
     ["--preset", "notebook-emergence", "--modes", "stack", "sequential", "--repeats", "5"],
     ["--preset", "notebook-emergence", "--sizes", "micro", "tiny", "--modes", "stack", "sequential",
      "--repeats", "2", "--steps-per-dispatch", "20"]),
    ("mfu_w1024_cudnn_remat_dots", 110.0, MFU_ARGS, MFU_DRY),
    ("stack_scaling_autotune0", 120.0, SCALING_STACK, SCALING_STACK_DRY),
    ("mfu_w1024_explicit_attention", 80.0, MFU_ARGS, MFU_DRY),
    ("stack_emergence_k8", 90.0,
     ["--preset", "notebook-emergence", "--sizes", "micro", "--k", "8", "--modes", "stack", "sequential",
      "--repeats", "5"],
     ["--preset", "notebook-emergence", "--sizes", "micro", "--k", "2", "--modes", "stack", "sequential",
      "--repeats", "2", "--steps-per-dispatch", "20"]),
    ("stack_scaling", 105.0, SCALING_STACK, SCALING_STACK_DRY),
)


def verdict(name: str, res: dict) -> dict:
    """The target verdict of one check from its ``jaxscale bench --json`` result (pure)."""
    device = res.get("device", {}).get("kind", "?")
    if name.startswith("mfu"):
        mode = res["modes"]["sequential"]
        mfu = float(mode["mfu"])
        attention = (res.get("models") or [{}])[0].get("attention", "?")
        return {"check": name, "device": device, "measured": mfu, "target": MFU_TARGET, "met": mfu >= MFU_TARGET,
                "what": f"{res.get('dtype', '?')} MFU of the model, {attention} attention "
                        f"(peak: {res.get('peak_source', '?')})",
                "tokens_per_s": float(mode["tokens_per_s"])}
    ratios = res.get("ratios", {})
    if "stack_vs_sequential" not in ratios:
        raise ValueError(f"check {name!r}: the bench result has no stack_vs_sequential ratio (modes run: "
                         f"{sorted(res.get('modes', {}))})")
    k = int(res["n_models"])
    need = STACK_FACTOR * k
    out = {"check": name, "device": device, "measured": float(ratios["stack_vs_sequential"]), "target": need,
           "met": float(ratios["stack_vs_sequential"]) >= need,
           "what": f"stack aggregate tokens/s over sequential, K = {k} (target {STACK_FACTOR}·K)"}
    if "auto_vs_sequential" in ratios:
        out["auto_vs_sequential"] = float(ratios["auto_vs_sequential"])
    return out


def run_check(name: str, args: list[str], log: Path, timeout: float) -> dict:
    """One ``jaxscale bench --json`` in a subprocess: its verdict and result (or the error); its
    stderr is appended to ``log``."""
    if name in PYTEST_CHECKS:
        return run_pytest_check(name, PYTEST_CHECKS[name], log, timeout)
    cmd = [sys.executable, "-m", "jaxscale.cli", "bench", *args, "--json"]
    if name.startswith("mfu"):  # where the step's time goes; the trace itself stays out of DIR (size)
        cmd += ["--profile", tempfile.mkdtemp(prefix=f"jaxscale-{name}-"), "--profile-top", "25"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key, value in CHECK_ENV.get(name, {}).items():  # XLA_FLAGS: added to the caller's
        env[key] = f"{env[key]} {value}".strip() if key == "XLA_FLAGS" and env.get(key) else value
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        _append(log, name, err)
        return {"check": name, "error": f"timed out after {timeout:.0f} s", "command": " ".join(cmd)}
    wall = time.perf_counter() - t0
    _append(log, name, proc.stderr)
    if proc.returncode != 0:
        return {"check": name, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-600:]}",
                "command": " ".join(cmd), "wall_s": wall}
    try:
        res = json.loads(proc.stdout)
        v = verdict(name, res)
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        _append(log, name, proc.stdout)
        return {"check": name, "error": f"unreadable result: {e}", "command": " ".join(cmd), "wall_s": wall}
    return {**v, "command": " ".join(cmd), "wall_s": wall, "result": res}


def run_pytest_check(name: str, path: str, log: Path, timeout: float) -> dict:
    """A correctness check on the device: ``pytest path``; met when every test passed, skipped
    (not an error) where the file skips itself (no GPU)."""
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-rs", "-p", "no:cacheprovider", path]
    # tests/conftest.py defaults JAX_PLATFORMS to cpu when it is unset; here the accelerator must be seen
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", ""))  # "": every platform JAX finds
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"check": name, "error": f"timed out after {timeout:.0f} s", "command": " ".join(cmd)}
    wall = time.perf_counter() - t0
    _append(log, name, proc.stdout + proc.stderr)
    counts = [line for line in proc.stdout.splitlines()
              if re.search(r"\d+ (passed|failed|skipped|error)", line) and not line.startswith(("SKIPPED", "FAILED"))]
    return pytest_verdict(name, proc.returncode, counts[-1].strip("= ") if counts else "(no summary line)",
                          " ".join(cmd), wall)


def pytest_verdict(name: str, returncode: int, summary_line: str, command: str, wall: float) -> dict:
    """The verdict of a pytest check from its exit status and pytest's summary line (pure)."""
    base = {"check": name, "device": "?", "command": command, "wall_s": wall, "what": f"pytest: {summary_line}"}
    if returncode == 0 and "passed" in summary_line and "skipped" not in summary_line:
        return {**base, "measured": 1.0, "target": 1.0, "met": True}
    if returncode in (0, 5) and "skipped" in summary_line and "passed" not in summary_line:
        return {**base, "measured": 0.0, "target": 1.0, "met": False, "skipped": True}
    return {**base, "measured": 0.0, "target": 1.0, "met": False}


def _append(log: Path, name: str, text: str) -> None:
    with log.open("a") as f:
        f.write(f"===== {name} =====\n{text}\n")


def format_summary(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"  {r['check']:<28} ERROR {r['error']}")
        elif r["check"] in PYTEST_CHECKS:
            state = "skipped" if r.get("skipped") else ("passed" if r["met"] else "FAILED")
            lines.append(f"  {r['check']:<28} {state} -- {r['what']}; {r['wall_s']:.0f} s")
        else:
            fmt = (lambda x: f"{x:.1%}") if r["check"].startswith("mfu") else (lambda x: f"{x:.2f}x")
            lines.append(f"  {r['check']:<28} {fmt(r['measured']):>8} (target {fmt(r['target'])}: "
                         f"{'met' if r['met'] else 'NOT met'}) on {r['device']} -- {r['what']}; {r['wall_s']:.0f} s")
            for g in r.get("result", {}).get("modes", {}).get("sequential", {}).get("groups", []):
                prof = g.get("profile") or {}
                lines.extend(f"      {o['us_per_step']:10.1f} us/step {100 * o['share']:5.1f}%  {o['op'][:60]}"
                             for o in prof.get("ops", [])[:8])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.environ.get("OUT") or "device-check", help="folder for the results")
    p.add_argument("--dry-run", action="store_true", help="tiny configs on any device: checks the plumbing only")
    p.add_argument("--only", nargs="+", choices=[c[0] for c in CHECKS], help="run these checks only")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per check (default: each check's own limit, 60-200 s)")
    p.add_argument("--budget", type=float, default=570.0,
                   help="seconds for all the checks together (default 570: one 10-minute device command); "
                        "a check gets at most what is left, and is skipped when under 30 s is left")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t_end = time.perf_counter() + args.budget
    for name, limit, full, dry in CHECKS:
        if args.only and name not in args.only:
            continue
        left = t_end - time.perf_counter()
        if left < 30:
            rows.append({"check": name, "error": f"skipped: {max(left, 0):.0f} s of the --budget left"})
            print(format_summary(rows[-1:]), flush=True)
            (out / "summary.json").write_text(json.dumps({"dry_run": args.dry_run, "checks": rows}, indent=1))
            continue
        print(f"[device_check] {name} ...", flush=True)
        rows.append(run_check(name, dry if args.dry_run else full, out / "device_check.log",
                              min(args.timeout or limit, left)))
        print(format_summary(rows[-1:]), flush=True)
        (out / "summary.json").write_text(json.dumps({"dry_run": args.dry_run, "checks": rows}, indent=1))
    print("\nsummary" + (" (dry run: tiny configs, targets not meaningful)" if args.dry_run else "") + ":")
    print(format_summary(rows))
    return 1 if any("error" in r and not r["error"].startswith("skipped") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
