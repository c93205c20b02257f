"""Turn CSV files (``csv_source``) and result rows into the arrays the fits take.

Result rows (``jaxscale.results``): diverged rows and rows without a finite loss are dropped with a
:class:`DivergedRowsWarning`; for each (size ``name``, token budget ``tokens``) the learning rate
with the lowest mean ``val_loss`` is kept (a rate that lost a seed to divergence only when every
rate did; a diverged row counts at its planned tokens, ``budget_tokens``); its seeds are averaged
(their individual losses are kept in ``seed_losses`` so a bootstrap can resample them). Rows from
more than one corpus are refused, as are a point's seeds trained with different settings
(``SETTING_FIELDS``), and a run given twice counts once (:class:`DuplicateRunsWarning`):
averaging would mix them silently. A field of the wrong type or value (a null or a string as
``tokens``, a list as ``seed``, a size <= 0) is refused naming its row and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxscale.fit.csv_source import CSV_ALIASES, _a_file, load_csv
from jaxscale.fit.sizes import size_clusters

__all__ = ["FitData", "DivergedRowsWarning", "DuplicateRunsWarning", "load_csv", "rows_to_data", "load_source",
           "budget_tokens", "planned_compute", "CSV_ALIASES"]

class DivergedRowsWarning(UserWarning):
    """Result rows were dropped because they diverged or have no finite loss."""


class DuplicateRunsWarning(UserWarning):
    """The same run was given more than once; it was counted once."""


@dataclasses.dataclass(frozen=True, eq=False)
class FitData:
    """Points for a fit: N (parameters), D (tokens, may be None), C (training FLOPs, may be
    None), loss; optional per-point names, run ids, intermediate flags and per-seed losses.

    ``budget``: the compute budget each point was planned at, where the source records one (may
    be None): for result rows C = 6·N_total·D_planned, N_total their ``params`` and D_planned
    the tokens they were asked for (the IsoFLOP budget ``jaxscale.study`` trains at, whatever
    ``x`` is); for a CSV its C column. Approach 2 groups IsoFLOP profiles by it
    (``fit_approach2(compute=...)``): 6·N·D with N non-embedding, or with tokens rounded up to
    whole steps, splits one budget's runs apart. ``C`` stays the training FLOPs the rows record
    (``flops``: FLOPs per token × tokens, attention included), which differ from the budget by
    size (0.66 to 0.94 of it across ladder l1-l8)."""
    N: np.ndarray
    loss: np.ndarray
    D: np.ndarray | None = None
    C: np.ndarray | None = None
    budget: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    run_ids: tuple[str, ...] | None = None
    intermediate: np.ndarray | None = None
    seed_losses: np.ndarray | None = None
    x_kind: str = "N"
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.N.size)

    @property
    def compute(self) -> np.ndarray:
        if self.C is not None:
            return self.C
        if self.D is None:
            raise ValueError("source: has neither tokens (D) nor compute (C)")
        return 6.0 * self.N * self.D

    def subset(self, mask: np.ndarray, note: str | None = None) -> "FitData":
        mask = np.asarray(mask)
        pick = (lambda v: None if v is None else v[mask])  # noqa: E731
        pick_t = (lambda v: None if v is None else tuple(np.asarray(v, object)[mask]))  # noqa: E731
        return dataclasses.replace(
            self, N=self.N[mask], loss=self.loss[mask], D=pick(self.D), C=pick(self.C), budget=pick(self.budget),
            names=pick_t(self.names), run_ids=pick_t(self.run_ids),
            intermediate=pick(self.intermediate), seed_losses=pick(self.seed_losses),
            notes=self.notes + ((note,) if note else ()))

    def drop_highest(self, k: int) -> "FitData":
        """Drop the points whose loss is at least the k-th largest (Besiroglu et al.'s filter)."""
        if k <= 0:
            return self
        if k >= self.n:
            raise ValueError(f"drop_highest: {k} would drop all {self.n} points")
        cut = np.sort(self.loss)[-k]
        return self.subset(self.loss < cut, f"dropped the {int((self.loss >= cut).sum())} "
                                            f"point(s) with loss >= {cut:.4g}")

    def longest_run_per_size(self) -> "FitData":
        """One point per size: the one with the most tokens (for a fit of loss against size).
        Sizes within ``sizes.SIZE_RTOL`` of each other are one size (float jitter made the 43
        sizes of the Chinchilla reference CSV 142)."""
        if self.D is None:
            return self
        labels, sizes = size_clusters(self.N)
        keep = np.zeros(self.n, bool)
        for k in range(sizes.size):
            idx = np.nonzero(labels == k)[0]
            keep[idx[np.argmax(self.D[idx])]] = True
        if keep.all():
            return self
        return self.subset(keep, f"kept the longest run of each size ({int(keep.sum())} of "
                                 f"{self.n} points)")


def _number(v) -> bool:
    """A real number: Python's or numpy's (rows built in memory may hold numpy scalars), no bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _finite(v) -> bool:
    return _number(v) and math.isfinite(v)


# What a result-row field must hold, by kind: (test, what the error says it must be).
_ROW_KINDS = {
    "positive": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "name": (lambda v: isinstance(v, str), "a string"),
    "lr": (lambda v: v is None or _finite(v), "a finite number or null"),
    "key": (lambda v: v is None or _finite(v) or isinstance(v, str), "a number, a string or null"),
    "loss": (lambda v: v is None or _number(v), "a number or null"),  # null, nan: no loss
    "flops": (lambda v: v is None or (_finite(v) and v > 0), "a finite number > 0 or null"),  # null: 6·N·D
}


def _check_row(i: int, r: dict, fields: Sequence[tuple[str, str]]) -> None:
    """Refuse a row whose ``fields`` (pairs of field and kind of ``_ROW_KINDS``) hold the wrong
    type or value, naming the row and field: a null or a string where a number is needed ended in
    a bare ``TypeError`` or "could not convert string to float"; a list as ``lr`` or ``seed`` (a
    ``key``: it only tells runs apart) in "unhashable type"; a size <= 0 in an error about an
    index of the points after sorting."""
    for field, kind in fields:
        test, want = _ROW_KINDS[kind]
        if not test(r.get(field)):
            rid = r.get("run_id")
            where = f"row {i} (from 0" + (f", run_id {rid!r})" if isinstance(rid, str) else ")")
            raise ValueError(f"rows: {where}: field {field!r} must be {want}, got {r.get(field)!r}")


# What a point's seeds must share: rows that differ here are different experiments, which the
# averaging would take for seeds (a weight-decay or dtype sweep's rows at one rate, say).
SETTING_FIELDS = ("batch_size", "seq_len", "optimizer", "config")


def _setting(r: dict, field: str):
    """A row's ``field`` of ``SETTING_FIELDS``; the optimiser without its rate (points are by rate)."""
    v = r.get(field)
    return {k: w for k, w in v.items() if k != "lr"} if field == "optimizer" and isinstance(v, dict) else v


def _one_experiment(rows: Sequence[dict], at: Sequence[int]) -> list[dict]:
    """The rows with each run once. Rows measured on different corpora are refused (a loss on one
    is no point on another's curve). The same run twice (same size, budget, rate, seed, data
    seed, steps and ``SETTING_FIELDS``: a results file appended to another, or one of the study's
    IsoFLOP runs that repeats a ladder run) is kept once with a :class:`DuplicateRunsWarning`:
    averaged as two seeds, it would shrink the bootstrap's intervals. ``at``: each row's index in the
    caller's list, for the warning."""
    corpora: dict[str, str] = {}
    for r in rows:
        corpus = r.get("corpus")
        if isinstance(corpus, dict) and corpus.get("fingerprint"):
            corpora.setdefault(str(corpus["fingerprint"]), str(corpus.get("name", "?")))
    if len(corpora) > 1:
        shown = ", ".join(f"{name} ({fp[:12]})" for fp, name in corpora.items())
        raise ValueError(f"rows: come from {len(corpora)} corpora: {shown}; losses on different corpora "
                         f"are not comparable: fit each corpus's rows on their own")
    seen: dict[tuple, int] = {}
    unique, repeats = [], []
    for i, r in zip(at, rows):
        key = (str(r["name"]), float(r["tokens"]), r.get("lr"), r.get("seed"), r.get("data_seed"), r.get("steps"),
               *(json.dumps(_setting(r, f), sort_keys=True, default=str) for f in SETTING_FIELDS))
        if key in seen:
            repeats.append(f"{r['name']} at {float(r['tokens']):g} tokens, lr {r.get('lr')}, seed {r.get('seed')} "
                           f"(rows {seen[key]} and {i}, from 0)")
        else:
            seen[key] = i
            unique.append(r)
    if repeats:
        warnings.warn(f"{len(repeats)} run(s) given more than once, each counted once (the first row kept): "
                      + "; ".join(repeats[:4]) + (" ..." if len(repeats) > 4 else ""),
                      DuplicateRunsWarning, stacklevel=3)
    return unique


def _check_seeds_of_one_setting(name: str, tokens: float, lr, rows: Sequence[dict]) -> None:
    """Refuse a point whose rows (its seeds) were trained with different settings, naming the
    first setting that differs."""
    first = rows[0]
    for r in rows[1:]:
        for field in SETTING_FIELDS:
            a, b = _setting(first, field), _setting(r, field)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                key = next(k for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k))
                field, a, b = f"{field}.{key}", a.get(key), b.get(key)
            raise ValueError(f"rows: {name} at {tokens:g} tokens, lr {lr}: its rows differ in {field} ({a!r} "
                             f"against {b!r}); a point averages seeds of one setting: fit each setting's rows "
                             f"on their own")


def _budget_tokens_field(r: dict) -> str:
    """The field ``budget_tokens`` reads: ``planned_tokens`` for a diverged row that records it."""
    return "planned_tokens" if r.get("diverged") and "planned_tokens" in r else "tokens"


def budget_tokens(r: dict):
    """The tokens a result row stands for among the rows of its planned budget: a diverged row's
    ``planned_tokens``, any other row's ``tokens``.

    Why: a diverged row reports the tokens it trained (``tokens``, up to its divergence), fewer
    than its siblings of the same (size, budget) at other rates or seeds, with which it must still
    be grouped (a rate that lost a seed to divergence ranks last there). Rows written before
    ``planned_tokens`` was recorded gave a diverged model its planned tokens as ``tokens``, so
    they are read as before. A row stopped early (``RunSettings.early_stop``) keeps its
    ``tokens``: its point is where it stopped, as it always was."""
    return r[_budget_tokens_field(r)]


def planned_compute(r: dict) -> float | None:
    """The compute budget a result row was planned at: C = 6·N_total·D, N_total its ``params``
    and D the tokens it was asked for (its ``budget`` when that is a token count, as for the
    study's IsoFLOP runs, D = C/(6·N_total); else ``budget_tokens``), as
    ``isoflop_grid.budget_of`` reads it. None when the row has no usable ``params``."""
    p = r.get("params")
    if not _finite(p) or p <= 0:
        return None
    asked = r.get("budget")
    if isinstance(asked, dict) and asked.get("kind") == "tokens" and _finite(asked.get("value")) \
            and asked["value"] > 0:
        tokens = asked["value"]
    else:
        tokens = budget_tokens(r)
    return 6.0 * float(p) * float(tokens) if _finite(tokens) and tokens > 0 else None


def rows_to_data(rows: Sequence[dict], *, x: str = "non_embedding_params", y: str = "test_loss",
                 select_by: str = "val_loss") -> FitData:
    """Result rows → one point per (size name, token budget): the learning rate with the lowest
    mean ``select_by`` loss is kept, and its seeds' ``y`` losses averaged."""
    if x not in ("non_embedding_params", "params"):
        raise ValueError(f"x: must be 'non_embedding_params' or 'params', got {x!r}")
    kept, kept_at, dropped = [], [], []
    failed_at: set[tuple] = set()  # (name, tokens, lr) where a seed diverged or has no loss
    for i, r in enumerate(rows):
        for field in (x, "tokens", "name"):
            if field not in r:
                raise ValueError(f"rows: row {i} lacks field {field!r}")
        # a diverged row is keyed (and checked) by its planned tokens: it may have trained none
        _check_row(i, r, (("name", "name"), (_budget_tokens_field(r), "positive"), ("lr", "lr"), ("seed", "key"),
                          ("data_seed", "key"), ("steps", "key"), (y, "loss")))
        if r.get("diverged") or not _finite(r.get(y)) or r[y] <= 0:
            dropped.append(str(r.get("run_id", r.get("name", i))))
            failed_at.add((str(r["name"]), float(budget_tokens(r)), r.get("lr")))
        else:
            # the size, the selection loss and the FLOPs are read from kept rows only
            _check_row(i, r, ((x, "positive"), (select_by, "loss"), ("flops", "flops")))
            kept.append(r)
            kept_at.append(i)
    if dropped:
        warnings.warn(f"dropped {len(dropped)} diverged row(s) or row(s) without a finite {y}: "
                      + ", ".join(dropped[:8]) + (" ..." if len(dropped) > 8 else ""),
                      DivergedRowsWarning, stacklevel=2)
    if not kept:
        raise ValueError("rows: no usable (non-diverged) rows")
    kept = _one_experiment(kept, kept_at)
    groups: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for r in kept:
        groups[(str(r["name"]), float(r["tokens"]))][r.get("lr")].append(r)
    for (name, tokens), by_lr in groups.items():
        for lr, rs in by_lr.items():
            _check_seeds_of_one_setting(name, tokens, lr, rs)
    N, D, C, L, names, seeds, n_lr_choices, passed_over = [], [], [], [], [], [], 0, 0
    planned: list[float | None] = []
    for (name, tokens), by_lr in groups.items():
        def score(lr):
            # a rate that lost a seed to divergence ranks after every rate that kept all its
            # seeds: its survivors' mean alone would favour the unstable rate
            vals = [rr.get(select_by) for rr in by_lr[lr]]
            vals = [v for v in vals if _finite(v)]
            return ((name, tokens, lr) in failed_at, float(np.mean(vals)) if vals else math.inf)
        if len(by_lr) > 1:
            n_lr_choices += 1
        best_lr = min(by_lr, key=score)
        passed_over += sum(score(lr)[1] < score(best_lr)[1] for lr in by_lr
                           if (name, tokens, lr) in failed_at and (name, tokens, best_lr) not in failed_at)
        best = by_lr[best_lr]
        losses = [float(rr[y]) for rr in best]
        N.append(float(best[0][x]))
        D.append(tokens)
        flops = best[0].get("flops")
        C.append(float(flops) if _finite(flops) else 6.0 * float(best[0][x]) * tokens)
        planned.append(planned_compute(best[0]))
        L.append(float(np.mean(losses)))
        names.append(name)
        seeds.append(losses)
    S = max(len(s) for s in seeds)
    seed_losses = None
    if S > 1:
        seed_losses = np.full((len(seeds), S), np.nan)
        for i, s in enumerate(seeds):
            seed_losses[i, :len(s)] = s
    notes = [f"x = {x}, y = {y}; {len(N)} (size, budget) points from {len(kept)} rows"]
    if n_lr_choices:
        notes.append(f"best learning rate by {select_by} chosen for {n_lr_choices} point(s)")
    if passed_over:
        notes.append(f"{passed_over} learning rate(s) whose surviving seeds scored best were passed over: "
                     "another seed of theirs diverged")
    if S > 1:
        notes.append(f"seeds averaged (up to {S} per point; the bootstrap resamples them)")
    order = np.lexsort((np.asarray(D), np.asarray(N)))
    arr = lambda v: np.asarray(v, np.float64)[order]  # noqa: E731
    budget = None if any(b is None for b in planned) else arr(planned)
    return FitData(N=arr(N), loss=arr(L), D=arr(D), C=arr(C), budget=budget,
                   names=tuple(np.asarray(names, object)[order]),
                   seed_losses=None if seed_losses is None else seed_losses[order],
                   x_kind=x, notes=tuple(notes))


def load_source(path: str | os.PathLike, *, x: str | None = None,
                y: str = "test_loss") -> FitData:
    """A CSV (``.csv``) or a result-row file (anything else: JSON Lines). Errors in the rows are
    prefixed with the file's path, which ``rows_to_data`` does not know.

    ``x``: the size measure. For result rows, the field (``non_embedding_params`` when None, or
    ``params``); for a CSV, the column to read (``load_csv``), None reading its one size column.

    A file whose first line is no JSON (a CSV not named .csv, or bytes that are not UTF-8) is
    refused as such: ``read_rows`` would call it a corrupt results file, or, when that line is
    the only one, skip it as a truncated last line and leave no rows."""
    path = Path(path)
    _a_file(path, "source")
    if path.suffix.lower() == ".csv":
        return load_csv(path, x=x)
    _check_first_line(path)
    from jaxscale.results import read_rows
    rows = read_rows(path)
    try:
        return rows_to_data(rows, x=x or "non_embedding_params", y=y)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _check_first_line(path: Path) -> None:
    """Refuse a file given as JSON Lines whose first non-blank line is neither a JSON object's
    start nor JSON: not UTF-8 text, or (a header, say) not JSON Lines at all."""
    start, line = 0, b""
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                line = raw.strip()
                break
            start += len(raw)
    if not line or line.startswith(b"{"):
        return  # rows (a truncated one included), or an empty file: read_rows's to judge
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = start + len(raw) - len(raw.lstrip()) + err.start
        raise ValueError(f"{path}: not UTF-8 text (byte {byte})") from None
    try:
        json.loads(text)
        return  # JSON, though no object: read_rows's to refuse
    except json.JSONDecodeError:
        pass
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise ValueError(f"{path}: not JSON Lines (its first line is {shown!r}); a CSV file must be named .csv")
