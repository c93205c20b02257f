"""The Chinchilla experiment's figures: the race's four panels, and the IsoFLOP figures.

Split out of ``experiments/chinchilla.py`` (which re-exports every name here) so that the
plotting, which is most of the script's length, reads apart from the training and fitting.
Imported by ``chinchilla.py`` after it has put this folder on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _chinchilla_setup import notebook_race_counted


def plot_race(race: dict, notebook: list, path: Path) -> Path:
    """The notebook's four race panels, counted fairly: validation loss against training FLOPs,
    final losses, the FLOPs each strategy spent (own formula vs 6·N·D vs the notebook's plan),
    and tokens per parameter against Hoffmann's 20."""
    from jaxscale.plots._common import plt, save

    entries = [e for e in race["entries"] if not e["diverged"]]
    colors = {"small, overtrained": "C0", "balanced": "C2", "big, undertrained": "C3"}
    labels = [f"{e['strategy']}\n({e['name'].split('/')[-1]}, {e['params']:,} params)" for e in entries]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    ax = axes[0, 0]
    for e in entries:
        curves = e["curves"]
        n = min(len(c) for c in curves)
        x = [p[0] for p in curves[0][:n]]
        y = np.mean([[p[1] for p in c[:n]] for c in curves], axis=0)
        ax.plot(x, y, "o-", ms=3, color=colors[e["strategy"]],
                label=f"{e['strategy']} ({e['name'].split('/')[-1]}, lr {e['lr']:g}): final {e['val_mean']:.3f}")
    ax.axvline(race["flops"], color="k", ls=":", lw=1, label=f"the race's budget {race['flops']:.3g} FLOPs")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs so far (model's own formula)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Validation loss against compute spent (seed mean)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    pos = np.arange(len(entries))
    for i, e in enumerate(entries):
        ax.bar(i - 0.2, e["val_mean"], 0.4, color=colors[e["strategy"]], alpha=0.8,
               label="validation" if i == 0 else None)
        ax.bar(i + 0.2, e["test_mean"], 0.4, color=colors[e["strategy"]], alpha=0.4, hatch="//",
               label="test" if i == 0 else None)
        ax.scatter([i - 0.2] * len(e["val"]), e["val"], color="k", s=10, zorder=3)
        ax.annotate(f"{e['val_mean']:.3f}", (i - 0.2, e["val_mean"]), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{e['test_mean']:.3f}", (i + 0.2, e["test_mean"]), ha="center", va="bottom", fontsize=8)
    lo = min(min(e["val_mean"], e["test_mean"]) for e in entries)
    hi = max(max(e["val_mean"], e["test_mean"]) for e in entries)
    ax.set_ylim(lo - 0.5 * (hi - lo) - 0.02, hi + 0.3 * (hi - lo) + 0.02)
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("final loss (nats/token; dots: seeds)")
    ax.set_title(f"Final loss at equal FLOPs: lowest validation loss = {race['winner_val']}")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    own = [e["flops"] for e in entries]
    six = [e["flops_6nd"] for e in entries]
    nb = {r["strategy"]: r["flops"] for r in notebook}
    ax.bar(pos - 0.27, own, 0.27, color="C2", label="this race: model's own formula (equal by design)")
    ax.bar(pos, six, 0.27, color="C7", label="this race: 6·N·D (N total parameters)")
    ax.bar(pos + 0.27, [nb[e["strategy"]] for e in entries], 0.27, color="C1",
           label="the notebook's race (its models and steps), own formula")
    ax.set_yscale("log")
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("training FLOPs")
    ax.set_title("Compute spent per strategy")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.bar(pos, [e["tokens_per_param"] for e in entries], color=[colors[e["strategy"]] for e in entries], alpha=0.8)
    for i, e in enumerate(entries):
        ax.annotate(f"{e['tokens_per_param']:.1f}", (i, e["tokens_per_param"]), ha="center", va="bottom", fontsize=8)
    ax.axhline(20, color="k", ls="--", label="Hoffmann et al.: ~20 tokens per parameter")
    ax.set_yscale("log")
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("training tokens per (total) parameter")
    ax.set_title("Data per parameter")
    ax.legend(fontsize=7)
    fig.suptitle(f"The allocation race at equal training FLOPs ({race['flops']:.3g}) on real text")
    fig.tight_layout()
    return save(fig, path)


def write_figures(out: Path, race: dict, fits: dict) -> dict:
    from jaxscale.report import write_chinchilla_figures

    paths = {"race": plot_race(race, notebook_race_counted(), out / "race.png")}
    paths.update(write_chinchilla_figures(out, fits["_objects"]))
    return {k: Path(v).name for k, v in paths.items()}
