"""Emergence, done properly, on a CPU: the notebook's hunt reproduced, then a real transition.

    python experiments/emergence.py [--quick] [--smoke] [--out DIR]

Part 1 reproduces the notebook's 2×2 emergence figure on its own task and workload (the
``notebook-emergence`` preset: five sizes, arithmetic sequences, ±2 tolerance accuracy), and
adds what it lacks: exact match and the answer log-likelihood beside the tolerance accuracy,
Wilson intervals, an interpolated crossing instead of "first model above 0.6", and the
score of the non-learned heuristic "last term + 2", which passes the ±2 tolerance on every item.

Part 2 trains a size ladder on 2-digit addition (held-out (a, b) pairs, multi-token answers,
8 seeds per size, one token budget for every size) with ``jaxscale.emergence_study`` and reports
the transition in size: exact match, per-token accuracy and answer NLL side by side, the
logistic/Gompertz midpoints with bootstrap intervals, the verdict (is the sharpness in the
metric?) with its agreement over seed resamples, and the forecast backtest.

Modes: ``--smoke`` a few seconds of training (the default test suite), ``--quick`` ≤ 2 minutes
on an idle 2-core CPU (measured: 45 s wall with no compilation cache, 33 s warm), default ≤ 20
minutes (measured 2026-12-04: 480 s with 8 seeds per size, the transition's midpoint identified). Writes OUT/report.md, OUT/experiment.json,
OUT/notebook_emergence_2x2.png, OUT/notebook/ (sweep rows) and OUT/transition/ (the study
folder: rows, outputs, weights, summary.md, figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from jaxscale.host import allocator_description  # noqa: E402

# Transition study per mode, chosen by measurement on the idle 2-core development CPU: plain
# 2-digit addition, 400 steps × 256 items for every size of the two-layer "depth" models.
# Measured (`jaxscale emergence --task addition --task-arg n_digits=2 --family depth --sizes
# w16-l2 … w128-l2 --steps 400 --batch-size 256 --fit-floor`, 434 s): exact match 0.085 / 0.090 /
# 0.108 for 7k / 27k / 58k parameters, 0.36 at 102k (one seed of three learned it), 0.99 / 1.00 /
# 1.00 at 159k / 227k / 401k: logistic midpoint 1.1e5 [8.1e4, 1.5e5] above a fitted plateau of
# 0.094. Quick and smoke run the same pipeline on shortened budgets (too short for the
# transition; they test the plumbing) with 3 seeds.
# Eight seeds in the full mode, because a seed either learns the carry or does not, and with three
# the verdict followed the draw: the same command with --seeds 0-7 (2026-12-04, 459 s) gave
# "smooth" in 88% of seed resamples, while its three-seed subsets {0,1,2}, {3,4,5}, {5,6,7} read
# smooth (29% agreement), metric-induced (53%) and smooth (77%), and five seeds 67-83%.
TRANSITION = {
    "smoke": dict(knobs={"n_digits": 2, "n_train": 2000, "n_test": 200},
                  sizes=("w16-l1", "w32-l1", "w32-l2", "w64-l2"), steps=20, batch_size=32, n_boot=100),
    "quick": dict(knobs={"n_digits": 2, "n_test": 1000},
                  sizes=("w16-l1", "w32-l1", "w32-l2", "w64-l2"), steps=60, batch_size=64, n_boot=300),
    "full": dict(knobs={"n_digits": 2, "n_test": 1000},
                 sizes=("w16-l2", "w32-l2", "w48-l2", "w64-l2", "w80-l2", "w96-l2", "w128-l2"), steps=400,
                 batch_size=256, n_boot=1000, seeds=tuple(range(8))),
}
NOTEBOOK_STEPS = {"smoke": 30, "quick": 600, "full": None}  # None: the preset's own budget
SEEDS = (0, 1, 2)  # unless the mode's TRANSITION entry says otherwise


def run_notebook(out: Path, mode: str) -> dict:
    """The notebook-emergence preset (shortened in quick/smoke), its rows and the 2×2 figure."""
    from jaxscale.data.tasks import make_task
    from jaxscale.presets import make_preset
    from jaxscale.sweep import run_sweep
    from jaxscale.train import Budget

    preset = make_preset("notebook-emergence")
    specs = preset.specs
    if NOTEBOOK_STEPS[mode] is not None:
        specs = [dataclasses.replace(s, budget=Budget("steps", NOTEBOOK_STEPS[mode]))
                 for s in specs]
    t0 = time.perf_counter()
    result = run_sweep(specs, preset.data, dataclasses.replace(preset.settings, progress=False),
                       mode="auto", out=out / "notebook", save_weights=False,
                       row_hook=preset.row_hook)
    rows = sorted(result.rows, key=lambda r: r["params"])
    task = make_task("notebook-arithmetic", seed=42)
    test = task.test
    last_term = test.tokens_NT[:, test.answer_start_N[0] - 1] - 10
    heuristics = {name: float(np.mean(np.abs(pred - test.target_value_N) <= 2))
                  for name, pred in (("last term + 2", last_term + 2),
                                     ("copy the last term", last_term))}
    figure = plot_notebook_2x2(rows, heuristics, out / "notebook_emergence_2x2.png")
    return {"rows": rows, "heuristics": heuristics, "figure": figure.name,
            "seconds": time.perf_counter() - t0, "fingerprint": rows[0]["corpus"]["fingerprint"],
            "steps": [r["steps"] for r in rows]}


def plot_notebook_2x2(rows, heuristics: dict, path: Path) -> Path:
    """The notebook's 2×2 emergence figure, with its honest additions (see the panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxscale.fit.emergence import threshold_crossing

    params = np.array([r["params"] for r in rows], float)
    tol = np.array([r["metrics"]["tolerance_match"] for r in rows])
    tol_lo = np.array([r["metrics"]["tolerance_match_lo"] for r in rows])
    tol_hi = np.array([r["metrics"]["tolerance_match_hi"] for r in rows])
    em = np.array([r["metrics"]["exact_match"] for r in rows])
    names = [r["name"].split("/")[-1] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    for ax, log in ((axes[0, 0], False), (axes[0, 1], True)):
        ax.errorbar(params, tol, yerr=[tol - tol_lo, tol_hi - tol], fmt="o-", capsize=3,
                    label="±2 tolerance accuracy (the notebook's metric)")
        ax.plot(params, em, "s--", label="exact match")
        ax.axhline(heuristics["last term + 2"], color="k", ls=":", lw=1,
                   label=f"'last term + 2' heuristic: {heuristics['last term + 2']:.0%}")
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("parameters" + (" (log scale)" if log else ""))
        ax.set_ylabel("accuracy on the test sequences")
        if log:
            ax.set_xscale("log")
    for lo, hi, colour, label in ((0, 0.3, "red", "no capability"), (0.3, 0.7, "yellow",
                                   "emerging"), (0.7, 1.0, "green", "mastered")):
        axes[0, 0].axhspan(lo, hi, color=colour, alpha=0.12, label=label)
    for i, n in enumerate(names):
        axes[0, 0].annotate(n, (params[i], tol[i]), textcoords="offset points", xytext=(4, -12))
    axes[0, 0].set_title("Arithmetic-sequence accuracy vs size (linear axis)")
    first = next((p for p, a in zip(params, tol) if a >= 0.6), None)
    if first is not None:
        axes[0, 1].axvline(first, color="red", ls="--", label=f"notebook: first model ≥ 0.6 "
                           f"({first:,.0f})")
    c = threshold_crossing(params, tol, 0.6)
    title = "Log axis: crossing of 0.6 interpolated in log size"
    if c.identified:
        axes[0, 1].axvline(c.scale, color="C3", label=f"interpolated crossing {c.scale:,.0f}")
    else:
        title += f"\n({c.status})"
    axes[0, 1].set_title(title)
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="lower right")
    mid = (params[:-1] + params[1:]) / 2
    axes[1, 0].plot(mid, np.diff(tol) / np.diff(params), "o-", color="green")
    axes[1, 0].axhline(0, color="k", lw=0.6)
    axes[1, 0].set_xlabel("parameters (midpoint between sizes)")
    axes[1, 0].set_ylabel("accuracy gain per parameter")
    axes[1, 0].set_title("The notebook's 'improvement rate' (Δaccuracy / Δparams)")
    levels = np.digitize(tol, [0.2, 0.5])
    colours = np.array(["red", "gold", "green"])[levels]
    labels = np.array(["random guessing", "pattern recognition", "arithmetic reasoning"])[levels]
    axes[1, 1].barh(np.arange(len(names)), 1, color=colours, alpha=0.7, edgecolor="k")
    for i, lab in enumerate(labels):
        axes[1, 1].text(0.5, i, f"{lab} (±2 acc {tol[i]:.2f})", ha="center", va="center")
    axes[1, 1].set_yticks(np.arange(len(names)), names)
    axes[1, 1].set_xticks([])
    axes[1, 1].set_title("The notebook's capability levels — met by 'last term + 2' as well")
    fig.suptitle("The notebook's emergence hunt, reproduced (its task, sizes and ±2 metric), "
                 "with exact match and the 'last term + 2' heuristic added")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_transition(out: Path, mode: str) -> dict:
    """The addition size ladder through ``jaxscale.emergence_study.run_study``."""
    from jaxscale.emergence_study import StudySpec, run_study

    cfg = TRANSITION[mode]
    seeds = cfg.get("seeds", SEEDS)
    spec = StudySpec(task="addition", family="depth", seeds=seeds, task_knobs=cfg["knobs"],
                     sizes=cfg["sizes"], budget={"kind": "steps", "value": cfg["steps"]},
                     batch_size=cfg["batch_size"], n_boot=cfg["n_boot"], mode="auto",
                     fit_floor=True)  # small models plateau near 0.09 (sums without a carry)
    t0 = time.perf_counter()
    analysis = run_study(spec, out / "transition")
    seconds = time.perf_counter() - t0
    em = analysis["series"]["exact_match"]
    fits = {k: em[k] for k in ("logistic", "gompertz") if em[k] is not None}
    best = fits.get(em["best_fit"])  # None when the AICs tie (ΔAIC < 2): no single midpoint
    bt = analysis.get("backtest") or {}
    return {"folder": str(out / "transition"), "task": "addition", "knobs": cfg["knobs"],
            "sizes": [e["name"] for e in analysis["sizes"]], "n_sizes": analysis["n_sizes"],
            "seeds": len(seeds), "steps": cfg["steps"], "batch_size": cfg["batch_size"],
            "fit": em["best_fit"], "delta_aic": em["delta_aic"],
            "fits": {k: {"midpoint": f["midpoint"], "midpoint_ci": f["midpoint_ci"],
                         "identified": f["identified"], "aic": f["aic"]} for k, f in fits.items()},
            "midpoint": float("nan") if best is None else best["midpoint"],
            "midpoint_ci": [float("nan")] * 2 if best is None else best["midpoint_ci"],
            # the headline midpoint's, or with tied fits both midpoints'
            "identified": bool(best["identified"] if best else fits and all(
                f["identified"] for f in fits.values())),
            "crossing": em["crossing"], "crossing_ci": em["crossing_ci"],
            "verdict": analysis["verdict"], "backtest": bt, "analysis": analysis,
            "seconds": seconds}


def _f(x, d=3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{d}g}"


def midpoint_headline(tr: dict, unit: str = "parameters", bold: str = "") -> str:
    """The exact-match midpoint of ``run_transition``'s result, in a line. When the logistic and
    Gompertz AICs are within 2 (``jaxscale.fit.emergence.table.AIC_TIE``) the data prefer
    neither shape, and the midpoints can differ by several times (2.6x in the smoke run), so
    both are given instead of the one with the marginally lower AIC. ``bold``: the markup around
    each midpoint ("**" in markdown)."""
    def one(f):
        return (f"{bold}{_f(f['midpoint'])} {unit} [{_f(f['midpoint_ci'][0])}, "
                f"{_f(f['midpoint_ci'][1])}]{bold} ({'identified' if f['identified'] else 'NOT identified'})")

    fits = tr["fits"]
    if not fits:
        return "exact-match midpoint: no fit (fewer than 3 sizes)"
    if tr["fit"] is None:
        both = "; ".join(f"{'Gompertz' if k == 'gompertz' else k} {one(f)}" for k, f in fits.items())
        return (f"exact-match midpoint: logistic ≈ Gompertz (ΔAIC {_f(tr['delta_aic'], 2)}, "
                f"no preference): {both}")
    return (f"exact-match midpoint ({tr['fit']} fit, lower AIC by {_f(tr['delta_aic'], 2)}): "
            f"{one(fits[tr['fit']])}")


def write_report(out: Path, mode: str, nb: dict, tr: dict, total_s: float) -> Path:
    rows = nb["rows"]
    a = tr["analysis"]
    lines = [f"# Emergence experiment ({mode})", "",
             f"- Date: {_dt.datetime.now().isoformat(timespec='seconds')}; total runtime "
             f"{total_s:.0f} s (notebook part {nb['seconds']:.0f} s, transition {tr['seconds']:.0f} s)",
             f"- Device: {rows[0]['device']}", f"- Host allocator: {allocator_description()}",
             f"- Versions: {rows[0]['versions']}",
             f"- Notebook task fingerprint (sha256 of train + test tokens): {nb['fingerprint']}",
             f"- Addition task fingerprint: {a['models'] and _study_fingerprint(tr['folder'])}", "",
             "## 1. The notebook's emergence hunt, reproduced", "",
             f"Preset `notebook-emergence` (steps per model: {nb['steps']}); 100 test sequences "
             "drawn from the same 42 (start, step) pairs as training.", "",
             "| model | params | ±2 accuracy [95% Wilson] | exact match | answer NLL |",
             "|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['name']} | {r['params']:,} | {m['tolerance_match']:.2f} "
                     f"[{m['tolerance_match_lo']:.2f}, {m['tolerance_match_hi']:.2f}] | "
                     f"{m['exact_match']:.2f} | {-m['answer_log_likelihood']:.3f} |")
    lines += ["", "Non-learned heuristics under the same ±2 metric: " + ", ".join(
        f"{k}: {v:.0%}" for k, v in nb["heuristics"].items()) + ". A ±2-tolerant one-token "
        "answer on a memorisable test set cannot show emergence; see part 2.", "",
        f"![notebook 2x2]({nb['figure']})", "",
        "## 2. A measured transition in size: multi-digit addition", "",
        f"Task: addition, knobs {tr['knobs']} (test (a, b) pairs held out of training); family "
        f"`depth` (head size 16) fitted to the task (vocab 14), sizes {tr['sizes']}, {tr['seeds']} seeds each, "
        f"{tr['steps']} steps × batch {tr['batch_size']} for every size.", "",
        "### Metric comparison (mean over seeds, 95% interval)", "",
        "| size | params | exact match | per-token accuracy | answer NLL (nats/token) | "
        "predicted EM (Π p_t) |", "|---|---|---|---|---|---|"]
    for e in a["sizes"]:
        cells = []
        for k in ("exact_match", "token_accuracy", "answer_nll_per_token"):
            cells.append(f"{_f(e[k]['mean'])} [{_f(e[k]['lo'])}, {_f(e[k]['hi'])}]")
        lines.append(f"| {e['name']} | {e['scale']:,.0f} | " + " | ".join(cells)
                     + f" | {_f(e['predicted_exact_match']['mean'])} |")
    headline = midpoint_headline(tr, bold="**")
    lines += ["", "### Transition", "",
              f"- {headline[0].upper()}{headline[1:]} (95% hierarchical bootstrap intervals)",
              f"- Crossing of exact match = 0.5 (isotonic, log-interpolated): {_f(tr['crossing'])}"
              f" [{_f(tr['crossing_ci'][0])}, {_f(tr['crossing_ci'][1])}]"]
    for key in ("token_accuracy",):
        s = a["series"][key]
        if s["logistic"] is not None:
            lg = s["logistic"]
            lines.append(f"- Per-token accuracy, logistic midpoint {_f(lg['midpoint'])} "
                         f"[{_f(lg['midpoint_ci'][0])}, {_f(lg['midpoint_ci'][1])}], width "
                         f"{_f(lg['width_decades'])} decades"
                         f"{'' if lg['identified'] else ' (not identified: ' + lg['reason'] + ')'}"
                         " (exact match: "
                         f"{_f(a['series']['exact_match']['logistic']['width_decades'])})")
    if tr["verdict"]:
        from jaxscale.emergence_report import verdict_text

        lines += ["", "### Verdict", "", verdict_text(tr["verdict"])]
    bt = tr["backtest"]
    if bt:
        lines += ["", "### Forecast backtest", "",
                  f"{bt['n_holdout']} largest size(s) held out: observed crossing "
                  f"{_f(bt['observed'])}; two-stage forecast {_f(bt['forecast'])} "
                  f"[{_f(bt['forecast_ci'][0])}, {_f(bt['forecast_ci'][1])}], error "
                  f"**{_f(bt['forecast_error_decades'])} decades**; naive logistic on exact match "
                  f"{_f(bt['naive'])}, error {_f(bt['naive_error_decades'])} decades."]
    lines += ["", f"Full study: `{Path(tr['folder']).name}/summary.md`; figures: "
              + ", ".join(f"`transition/{p}`" for p in a["figures"])]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _study_fingerprint(folder: str) -> str:
    return json.loads((Path(folder) / "study.json").read_text())["data"]["fingerprint"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="<= 2 minutes on a CPU")
    parser.add_argument("--smoke", action="store_true", help="a few seconds of training")
    parser.add_argument("--out", default=None, help="output folder (default runs/emergence-…)")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    out = _common.script_output_folder(parser, Path(args.out or f"runs/emergence-{mode}-{_dt.datetime.now():%Y%m%d-%H%M%S}"),
                                       "emergence", mode)
    _common.prepare_process()
    t0 = time.perf_counter()
    nb = run_notebook(out, mode)
    tr = run_transition(out, mode)
    total = time.perf_counter() - t0
    report = write_report(out, mode, nb, tr, total)
    summary = {"mode": mode, "seconds": total,
               "notebook": {k: v for k, v in nb.items() if k != "rows"},
               "transition": {k: v for k, v in tr.items() if k != "analysis"}}
    from jaxscale.emergence_report import verdict_word
    from jaxscale.results import _jsonable

    (out / "experiment.json").write_text(json.dumps(_jsonable(summary), indent=2, default=str))
    print(f"\ntransition: {midpoint_headline(tr)}; verdict {verdict_word(tr['verdict'])}; "
          f"runtime {total:.0f} s")
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    from jaxscale.host import preload_allocator_or_exit

    preload_allocator_or_exit("emergence.py")  # restarts with jemalloc preloaded where installed (jaxscale/host.py)
    sys.exit(main())
