"""Whether an IsoFLOP grid brackets each budget's loss minimum, and which size to train next.

Approach 2 fits a parabola in log N to each budget's losses and takes its vertex as N_opt(C).
When the lowest loss of a budget is its smallest or largest size, the parabola extrapolates: its
vertex is biased, and ``fit_approach2`` warns. A fixed size list cannot serve every budget: the
optimum moves with compute (N_opt ∝ C^a, a ≈ 0.5), so a list centred on the middle budget has
the small budget's minimum at its small end and the large budget's at its large end. Measured on
the 2-core CPU (``jaxscale run``, 2026-12-04): all three budgets of the default grid (6e10,
1.5e11 and 4e11 FLOPs × ladder l2-l6) had their lowest loss at an edge, l2, l2 and l6.

The remedy mirrors the learning-rate grid's (``lr_grid.py``): for each budget whose lowest
validation loss sits at an end of the sizes tried there, train the family's next size beyond that
end at that budget, and look again. Selection uses the validation split, as everywhere else; the
test split is left for the fits.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["budget_of", "family_order", "isoflop_edges", "sizes_beyond", "isoflop_extension_note"]


def family_order(family: str) -> list[str]:
    """The family's model names, smallest first (``config.family_configs``): the order in which
    ``isoflop_edges`` looks for the next size out."""
    from jaxscale.config import family_configs

    return [c.name for c in family_configs(family)]


def budget_of(row: dict, budgets: Sequence[float], rtol: float = 0.1) -> float | None:
    """The IsoFLOP budget (of ``budgets``) a row was trained at: C = 6·N·D with N its total
    parameters and D the tokens it was asked for (its ``budget``, when that is a token count; else
    the tokens it trained on, which whole steps round up: by 16% for ladder l4 at 5e8 FLOPs and
    batch 8 × 64; for a diverged row, those it was planned to train, ``fit.sources.budget_tokens``:
    it stopped at its divergence, and counts as a failed run of its budget), within ``rtol``
    (relative); None when it matches none."""
    from jaxscale.fit.sources import budget_tokens

    asked = row.get("budget") or {}
    tokens = asked["value"] if asked.get("kind") == "tokens" else budget_tokens(row)
    c = 6.0 * float(row["params"]) * float(tokens)
    for b in budgets:
        if abs(math.log(c / b)) <= math.log1p(rtol):
            return b
    return None


def _mean_val_by_size(rows: Sequence[dict], budgets: Sequence[float], metric: str,
                      select_by: str | None = None) -> dict:
    """{budget: {name: seed-mean ``metric`` at the learning rate chosen by ``select_by``}} (default:
    ``metric`` itself). Where a point was trained at several rates (a grid per point, as in
    ``experiments/chinchilla.py``), the rate with the lowest seed mean of ``select_by`` stands
    for it, a rate that lost a seed to divergence only when every rate did: as the fits choose
    (``fit.sources.rows_to_data``), so that a note on the test losses describes the points the
    fits use, not each size's luckiest rate on the test split."""
    select_by = select_by or metric
    acc: dict[tuple, list[tuple[float, float]]] = {}
    failed: set[tuple] = set()
    for r in rows:
        b = budget_of(r, budgets)
        if b is None:
            continue
        key = (b, r["name"], r.get("lr"))
        v, s = r.get(metric), r.get(select_by)
        if r.get("diverged") or not _finite(v) or not _finite(s):
            failed.add(key)
            continue
        acc.setdefault(key, []).append((float(v), float(s)))
    best: dict[tuple, tuple] = {}
    for (b, name, lr), vals in acc.items():
        rank = ((b, name, lr) in failed, sum(s for _, s in vals) / len(vals))
        if (b, name) not in best or rank < best[(b, name)][0]:
            best[(b, name)] = (rank, sum(v for v, _ in vals) / len(vals))
    out: dict[float, dict[str, float]] = {}
    for (b, name), (_, mean) in best.items():
        out.setdefault(b, {})[name] = mean
    return out


def _finite(v) -> bool:
    return v is not None and math.isfinite(float(v))


def isoflop_edges(rows: Sequence[dict], budgets: Sequence[float], family_order: Sequence[str],
                  metric: str = "val_loss") -> list[dict]:
    """The budgets whose lowest seed-mean ``metric`` is at the smallest or largest size tried
    there (budgets with at least 3 sizes). Each entry: ``budget``, ``name`` (the minimum's model),
    ``edge`` ("smallest" or "largest"), ``tried`` (names in ``family_order``, smallest first) and
    ``next`` (the family's next size beyond that edge, or None when the family has none).
    ``family_order``: the family's model names, smallest first (``config.list_families``)."""
    return _edges(_mean_val_by_size(rows, budgets, metric), family_order)


def _edges(by_budget: dict, family_order: Sequence[str]) -> list[dict]:
    rank = {n: i for i, n in enumerate(family_order)}
    out = []
    for b, by in sorted(by_budget.items()):
        unknown = sorted(set(by) - set(rank))
        if unknown:
            raise ValueError(f"isoflop_edges: models {unknown} are not in family_order")
        if len(by) < 3:
            continue
        tried = sorted(by, key=rank.__getitem__)
        best = min(tried, key=by.__getitem__)
        if best not in (tried[0], tried[-1]):
            continue
        edge = "smallest" if best == tried[0] else "largest"
        i = rank[best] + (-1 if edge == "smallest" else 1)
        nxt = family_order[i] if 0 <= i < len(family_order) else None
        out.append({"budget": b, "name": best, "edge": edge, "tried": tried, "next": nxt})
    return out


def sizes_beyond(rows: Sequence[dict], budgets: Sequence[float], family_order: Sequence[str],
                 metric: str = "val_loss") -> list[tuple[float, str]]:
    """For each budget whose minimum sits at an end of its sizes (``isoflop_edges``), the next
    size out as (budget, model name), in budget order; budgets already at the family's end are
    left out (nothing beyond to train)."""
    return [(e["budget"], e["next"]) for e in isoflop_edges(rows, budgets, family_order, metric)
            if e["next"] is not None]


def isoflop_extension_note(rows: Sequence[dict], budgets: Sequence[float], family_order: Sequence[str],
                           base_sizes: Sequence[str], metric: str = "val_loss") -> str:
    """One sentence for a report: which sizes were added to which budget beyond ``base_sizes``
    (short names), which budgets still have their minimum at an edge, and (``metric`` being the
    validation loss) which budgets have their *test* loss lowest at an edge though validation's
    is inside: there Approach 2, fitted to the test loss, warns of an edge that the extension,
    decided on validation, did not act on ("" when none of these)."""
    by_budget = _mean_val_by_size(rows, budgets, metric)
    base = set(base_sizes)
    added = []
    for b in sorted(by_budget):
        extra = [n.split("/")[-1] for n in family_order if n in by_budget[b] and n.split("/")[-1] not in base]
        if extra:
            added.append(f"{', '.join(extra)} at {b:.1e}")
    edges = _edges(by_budget, family_order)
    parts = []
    if added:
        parts.append("IsoFLOP grid extended where a budget's lowest validation loss sat at an end of its "
                     "sizes: " + "; ".join(added) + ".")
    if edges:
        parts.append("Still at an edge: " + "; ".join(
            f"{e['budget']:.1e} ({e['name'].split('/')[-1]}, its {e['edge']} size"
            + ("" if e["next"] else ", the family's end") + ")" for e in edges)
            + ": those budgets' parabola vertices are extrapolated.")
    if metric == "val_loss":
        at_edge = {e["budget"] for e in edges}
        test_by = _mean_val_by_size(rows, budgets, "test_loss", select_by="val_loss")
        split = [e for e in _edges(test_by, family_order) if e["budget"] not in at_edge and e["budget"] in by_budget]
        if split:
            short = lambda name: name.split("/")[-1]  # noqa: E731

            def disagreement(e) -> str:
                test, val = test_by[e["budget"]], by_budget[e["budget"]]
                val_best = min(val, key=val.get)
                return (f"{e['budget']:.1e} ({short(e['name'])}; validation's lowest is {short(val_best)}, whose "
                        f"test loss is {test[val_best] - test[e['name']]:.3f} nats higher)")

            parts.append("On the test split, which the fits use, the lowest loss is at an edge at "
                         + "; ".join(disagreement(e) for e in split)
                         + ": the splits disagree on the profile's minimum, so Approach 2 warns of an edge there "
                         "that the validation split, which decides the extensions, does not show.")
    return " ".join(parts)
