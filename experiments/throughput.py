"""Throughput on this machine: tokens/s against stack size K, and MFU against model size.

    python experiments/throughput.py [--quick] [--smoke] [--out DIR]

Part 1 (overhead-bound models): K seeds of one small model trained as one stack
(``jaxscale.bench``: several steps per dispatch, compile excluded, synchronised timing) against
the same K models trained alone, one after another, timed round-robin in the same run. Ideal stacking gives K × the sequential
aggregate tokens/s; the target is ≥ 0.8·K. On a CPU the model is ``notebook-emergence/micro``
at the preset's batch of one 4-token sequence (its own data and optimiser).

Part 2 (compute-bound models): MFU of single models of growing size (model FLOP/s over the true
size ÷ the measured matmul peak), ending with the realistic CPU config of the throughput issue
(width 256, 4 layers, context 256, batch 32, dropout off; target ≥ 35% of the peak).

Modes: ``--smoke`` a few seconds (the test suite), ``--quick`` ≤ 2 minutes on the 2-core CPU
(measured: 50 s wall with no compilation cache),
default a fuller run (88 s on 2026-12-04). Writes OUT/throughput.json, OUT/report.md,
OUT/tokens_per_s_vs_k.png and OUT/mfu_vs_size.png.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from jaxscale.host import allocator_description  # noqa: E402

# Per mode: the stack sizes, the overhead-bound model and its data, the MFU ladder (name,
# d_model, n_layers, context = seq_len, batch), steps per dispatch and repeats.
PLANS = {
    "smoke": dict(ks=(1, 2), k_model="ladder/l1", k_data=("stream", 1, 8), k_steps=5, k_repeats=2,
                  mfu=[("d16 L1 T8 B4", 16, 1, 8, 4)], mfu_steps=2, mfu_repeats=1),
    "quick": dict(ks=(1, 4, 8), k_model="notebook-emergence/micro", k_data=("preset",), k_steps=200, k_repeats=3,
                  mfu=[("d64 L2 T64 B32", 64, 2, 64, 32), ("d128 L4 T128 B32", 128, 4, 128, 32),
                       ("d256 L4 T256 B8", 256, 4, 256, 8)], mfu_steps=1, mfu_repeats=2),
    "full": dict(ks=(1, 2, 4, 8, 16, 32), k_model="notebook-emergence/micro", k_data=("preset",), k_steps=300,
                 k_repeats=5,
                 mfu=[("d64 L2 T64 B32", 64, 2, 64, 32), ("d128 L4 T128 B32", 128, 4, 128, 32),
                      ("d192 L4 T256 B32", 192, 4, 256, 32), ("d256 L4 T256 B32", 256, 4, 256, 32)],
                 mfu_steps=2, mfu_repeats=3),
}


def _k_data(plan):
    from jaxscale.config import create_model_config

    cfg = create_model_config(plan["k_model"])
    if plan["k_data"][0] == "preset":
        from jaxscale.presets import make_preset

        preset = make_preset("notebook-emergence")
        return cfg, preset.data, preset.specs[0].optim
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus

    _, b, t = plan["k_data"]
    data = from_corpus(random_tokens_corpus(cfg.vocab_size, 50_000), seq_len=t, batch_size=b, eval_max_windows=4,
                       vocab_size=cfg.vocab_size)
    return cfg, data, None


def part_stack(plan, peak, log) -> dict:
    """Per K: K seeds as one stack and the same K models alone, timed round-robin in one run."""
    from jaxscale.bench import BenchSpec, run_bench

    cfg, data, optim = _k_data(plan)
    kw = dict(optim=optim, steps_per_dispatch=plan["k_steps"], repeats=plan["k_repeats"], peak=peak)
    log(f"part 1: K seeds of {cfg.name}, batch {data.batch_size} x {data.seq_len} tokens")
    points, alone = [], None
    for k in plan["ks"]:
        if k == 1:
            continue
        res = run_bench([BenchSpec(cfg, s) for s in range(k)], data, modes=["stack", "sequential"], **kw)
        m, sq = res["modes"]["stack"], res["modes"]["sequential"]
        ratio = res["ratios"]["stack_vs_sequential"]
        alone = alone or sq
        points.append({"k": k, "stack_tokens_per_s": m["tokens_per_s"], "sequential_tokens_per_s": sq["tokens_per_s"],
                       "step_ms": 1e3 * m["step_s"], "sequential_step_ms_per_model": 1e3 * sq["step_s"] / k,
                       "compile_s": m["compile_s"], "ratio_vs_sequential": ratio, "ratio_per_k": ratio / k,
                       "target_met": ratio >= 0.8 * k, "recompiles": res["recompiles"]})
        log(f"  K={k:<3} stack {m['tokens_per_s']:>10,.0f} tok/s, one after another {sq['tokens_per_s']:>10,.0f} "
            f"tok/s: x{ratio:.2f} ({ratio / k:.2f} per model; target 0.80)")
    seq_tps = statistics.median(p["sequential_tokens_per_s"] for p in points)
    if 1 in plan["ks"]:
        points.insert(0, {"k": 1, "stack_tokens_per_s": seq_tps, "sequential_tokens_per_s": seq_tps,
                          "note": "K=1: the model alone (median of the sequential runs)"})
    return {"model": cfg.name, "batch_size": data.batch_size, "seq_len": data.seq_len,
            "sequential_tokens_per_s": seq_tps, "alone": alone, "points": points}


def part_mfu(plan, peak, log) -> dict:
    from jaxscale.bench import BenchSpec, run_bench
    from jaxscale.config import ModelConfig
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus

    log("part 2: MFU against model size (one model alone, dropout off)")
    corpus = random_tokens_corpus(256, 200_000)
    points = []
    for label, d, layers, t, b in plan["mfu"]:
        cfg = ModelConfig(vocab_size=256, d_model=d, n_heads=max(1, d // 64), n_layers=layers, d_ff=4 * d,
                          max_seq_len=t, dropout=0.0, name=label)
        data = from_corpus(corpus, seq_len=t, batch_size=b, eval_max_windows=4, vocab_size=256)
        res = run_bench([BenchSpec(cfg, 0)], data, modes=["sequential"], steps_per_dispatch=plan["mfu_steps"],
                        repeats=plan["mfu_repeats"], peak=peak)
        m = res["modes"]["sequential"]
        g = m["groups"][0]
        points.append({"label": label, "d_model": d, "n_layers": layers, "seq_len": t, "batch_size": b,
                       "params": cfg.param_counts().total, "flops_per_step": res["models"][0]["flops_per_step"],
                       "step_ms": g["step_ms"], "tokens_per_s": m["tokens_per_s"],
                       "model_flops_per_s": m["model_flops_per_s"], "mfu": m["mfu"], "compile_s": m["compile_s"],
                       "recompiles": res["recompiles"]})
        log(f"  {label:<20} {cfg.param_counts().total:>10,} params  step {g['step_ms']['median']:9.2f} ms  "
            f"{m['model_flops_per_s'] / 1e9:6.2f} GFLOP/s  MFU {100 * m['mfu']:5.1f}%")
    return {"points": points}


def plot(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    ps = result["stack"]
    ks = [p["k"] for p in ps["points"]]
    seq = ps["sequential_tokens_per_s"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [p["stack_tokens_per_s"] for p in ps["points"]], "o-", label="stack of K (measured)")
    ax.plot(ks, [k * seq for k in ks], "--", color="gray", label="ideal: K x alone")
    ax.plot(ks, [0.8 * k * seq for k in ks], ":", color="gray", label="target: 0.8 K x alone")
    ax.plot(ks, [p["sequential_tokens_per_s"] for p in ps["points"]], "s-", color="C3", lw=1,
            label="one after another (measured)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("K (models in the stack)")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title(f"{ps['model']}, batch {ps['batch_size']}x{ps['seq_len']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tokens_per_s_vs_k.png", dpi=120)
    plt.close(fig)
    files.append("tokens_per_s_vs_k.png")

    pm = result["mfu"]["points"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["flops_per_step"] for p in pm], [100 * p["mfu"] for p in pm], "o-")
    for p in pm:
        ax.annotate(p["label"], (p["flops_per_step"], 100 * p["mfu"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(35, color="gray", ls=":", label="target 35%")
    ax.axhline(50, color="gray", ls="--", label="stretch 50%")
    ax.set_xscale("log")
    ax.set_xlabel("model FLOPs per training step")
    ax.set_ylabel("MFU (% of measured matmul peak)")
    ax.set_ylim(0, max(60, 5 + max(100 * p["mfu"] for p in pm)))
    ax.set_title(f"MFU vs model size ({result['device']['kind']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mfu_vs_size.png", dpi=120)
    plt.close(fig)
    files.append("mfu_vs_size.png")
    return files


def report(result: dict) -> str:
    ps, pm = result["stack"], result["mfu"]["points"]
    lines = [f"# Throughput ({result['mode']} run, {result['date']})", "",
             f"Device: {result['device']['kind']} ({result['device']['platform']}), {result['cpu_count']} cores; "
             f"{result['accelerator_note']}; host allocator {allocator_description()}. Load average {result['load_avg_1m'][0]:.2f} before, "
             f"{result['load_avg_1m'][1]:.2f} after. Peak: {result['peak_flops'] / 1e9:.1f} GFLOP/s "
             f"({result['peak_source']}).", "",
             f"FLOPs: {result['flop_formula']}.", "",
             f"## Stack of K overhead-bound models: {ps['model']}, batch {ps['batch_size']} x {ps['seq_len']} tokens",
             "", f"One model alone: {ps['sequential_tokens_per_s']:,.0f} tokens/s (median over the runs). Each K "
             "is one run: the stack and the same K models one after another, timed round-robin.",
             "", "| K | stack tokens/s | one after another tokens/s | x sequential | per model (target >= 0.8) "
             "| stack step ms | compile s |", "|---|---|---|---|---|---|---|"]
    for p in ps["points"]:
        if p["k"] == 1:
            lines.append(f"| 1 | {p['stack_tokens_per_s']:,.0f} | {p['sequential_tokens_per_s']:,.0f} | 1.00 | 1.00 | | |")
        else:
            lines.append(f"| {p['k']} | {p['stack_tokens_per_s']:,.0f} | {p['sequential_tokens_per_s']:,.0f} | "
                         f"{p['ratio_vs_sequential']:.2f} | {p['ratio_per_k']:.2f} "
                         f"{'(met)' if p['target_met'] else '(not met)'} | {p['step_ms']:.3f} | {p['compile_s']:.1f} |")
    lines += ["", "![tokens/s vs K](tokens_per_s_vs_k.png)", "", "## MFU against model size (one model, dropout off)",
              "", "| model | params | step ms (median) | GFLOP/s | MFU |", "|---|---|---|---|---|"]
    for p in pm:
        lines.append(f"| {p['label']} | {p['params']:,} | {p['step_ms']['median']:.2f} | "
                     f"{p['model_flops_per_s'] / 1e9:.2f} | {100 * p['mfu']:.1f}% |")
    lines += ["", "![MFU vs size](mfu_vs_size.png)", "",
              f"Recompiles after the first dispatch: {result['recompiles']}.", "",
              "Timings on a shared machine are noisy: compare figures only within one run.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="<= 2 minutes on the 2-core CPU")
    g.add_argument("--smoke", action="store_true", help="a few seconds (tests)")
    parser.add_argument("--out", default=None, help="output folder (default runs/throughput-<time>)")
    args = parser.parse_args(argv)
    _common.prepare_process(compilation_cache=False)  # compile times are measured cold
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    out = _common.script_output_folder(parser, Path(args.out or f"runs/throughput-{_dt.datetime.now():%Y%m%d-%H%M%S}"),
                                       "throughput", mode)
    log = lambda msg: print(msg, flush=True)

    import jax

    from jaxscale.bench import FLOP_FORMULA, device_peak

    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    plan = PLANS[mode]
    peak = device_peak("float32")
    log(f"device {peak['device']['kind']}; peak {peak['peak_flops'] / 1e9:.1f} GFLOP/s ({peak['peak_source']})")
    stack = part_stack(plan, peak, log)
    mfu = part_mfu(plan, peak, log)
    after = device_peak("float32")  # a shared machine: keep the higher of the two peak measurements
    peak_measurements = [peak["peak_flops"], after["peak_flops"]]
    if after["peak_flops"] > peak["peak_flops"]:
        peak = after
        for p in mfu["points"]:
            p["mfu"] = p["model_flops_per_s"] / peak["peak_flops"]
    recompiles = sum(p.get("recompiles", 0) for p in stack["points"]) + sum(p["recompiles"] for p in mfu["points"])
    result = {"mode": mode, "date": _dt.datetime.now().isoformat(timespec="seconds"),
              "device": peak["device"], "peak_flops": peak["peak_flops"],
              "peak_source": peak["peak_source"] + " (higher of the measurements before and after)",
              "peak_measurements": peak_measurements,
              "flop_formula": FLOP_FORMULA, "cpu_count": os.cpu_count(),
              "accelerator_note": "CPU only, no accelerator used" if jax.devices()[0].platform == "cpu"
              else f"accelerator: {jax.devices()[0].device_kind}",
              "load_avg_1m": [load0, os.getloadavg()[0]], "stack": stack, "mfu": mfu, "recompiles": recompiles,
              "seconds": time.perf_counter() - t0}
    result["figures"] = plot(result, out)
    (out / "throughput.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "report.md").write_text(report(result))
    log(f"wrote {out / 'report.md'}, {out / 'throughput.json'} and {', '.join(result['figures'])} "
        f"in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jaxscale.host import preload_allocator_or_exit

    preload_allocator_or_exit("throughput.py")  # restarts with jemalloc preloaded where installed (jaxscale/host.py)
    sys.exit(main())
