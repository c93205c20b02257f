"""Whether a learning-rate grid brackets the optimum it selects.

``sweep.select_best_lr`` keeps, per (size, budget), the learning rate with the lowest seed-mean
validation loss. When that is the largest (or smallest) rate tried, the grid has not bracketed
the optimum: a rate beyond it might do better, so that size's loss is an upper bound on its
tuned loss, and a law fitted over sizes mixes tuned and under-tuned points (the optimum moves
with size, so the bias is not uniform). Measured on the 2-core CPU (2026-12-04,
``jaxscale sweep --family ladder --sizes l1 l4 l8 --lrs 1e-2 2.5e-2 5e-2 --seeds 0
--tokens-per-param 20 --batch-size 16 --seq-len 64``): the validation loss was lowest at 5e-2 for
l1, 2.5e-2 for l4 and 1e-2 for l8, while ``experiments/power_law.py`` tries 4e-3 and 1e-2 and so
chose its largest rate for every size. The reports say so instead of leaving it to the reader.
"""

from __future__ import annotations

from typing import Sequence

from jaxscale.sweep import budget_key, select_best_lr

__all__ = ["lr_grid_edges", "lr_edge_note", "rates_beyond"]


def lr_grid_edges(rows: Sequence[dict], metric: str = "val_loss") -> tuple[list[dict], int]:
    """The (size, budget) groups whose selected learning rate is an end of the rates tried there
    (only groups where at least two rates were tried), and the number of groups with such a
    choice to make. Each entry: ``name``, ``budget`` (``sweep.budget_key``), ``lr``, ``edge``
    ("largest" or "smallest") and ``tried`` (sorted).

    A rate that diverged counts as tried: its loss is, in effect, infinite, so it brackets the
    optimum on its side (the selection itself never picks it). Leaving it out called the rate
    below it "the largest tried", and ``rates_beyond`` then proposed the diverged rate again."""
    tried: dict[tuple, set] = {}
    for r in rows:
        tried.setdefault((r["name"], budget_key(r)), set()).add(r["lr"])
    edges, seen, groups = [], set(), 0
    for r in select_best_lr(rows, metric):
        key = (r["name"], budget_key(r))
        if key in seen or len(tried.get(key, ())) < 2:
            continue
        seen.add(key)
        groups += 1
        lrs = sorted(tried[key])
        if r["lr"] in (lrs[0], lrs[-1]):
            edges.append({"name": r["name"], "budget": key[1], "lr": r["lr"],
                          "edge": "largest" if r["lr"] == lrs[-1] else "smallest", "tried": lrs})
    return edges, groups


def lr_edge_note(rows: Sequence[dict], metric: str = "val_loss") -> str:
    """One sentence for a report when some selected learning rates sit at an end of their grid
    ("" when every selection is bracketed or there is no choice to make)."""
    edges, groups = lr_grid_edges(rows, metric)
    if not edges:
        return ""
    parts = []
    for side in ("largest", "smallest"):
        at = [e for e in edges if e["edge"] == side]
        if at:
            names = sorted({e["name"].split("/")[-1] for e in at})
            parts.append(f"the {side} rate tried for {len(at)} of {groups} choices ({', '.join(names)})")
    if all(len(e["tried"]) == 2 for e in edges) and len(edges) == groups:
        return ("Learning-rate grid: two rates per choice cannot bracket an optimum; the selected rate is "
                + " and ".join(parts) + ". A third rate beyond the selected one would show whether those "
                "losses are tuned; until then they are upper bounds on tuned ones.")
    return ("Learning-rate grid: the selected rate is " + " and ".join(parts) + ", so the grid does not "
            "bracket their optimum; a rate beyond it may train those models to a lower loss, and their "
            "losses are upper bounds on tuned ones.")


def rates_beyond(rows: Sequence[dict], factor: float, metric: str = "val_loss") -> list[tuple[str, float]]:
    """For each size whose selected rate is an end of its grid (``lr_grid_edges``), the next rate
    out: the largest tried × ``factor``, or the smallest ÷ ``factor``; as (name, rate), in the
    rows' order. Training those and selecting again brackets the optimum or moves the edge."""
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    edges, _ = lr_grid_edges(rows, metric)
    out = []
    for e in edges:
        lr = float(f"{e['tried'][-1] * factor if e['edge'] == 'largest' else e['tried'][0] / factor:.6g}")
        if (e["name"], lr) not in out:  # one size at several budgets may ask for the same rate
            out.append((e["name"], lr))
    return out
