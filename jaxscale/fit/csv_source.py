"""Runs from a CSV file, for the fits: columns matched case-insensitively through aliases
(``N``/``params``/``Model Size``, ``D``/``tokens``, ``C``/``Training FLOP``, ``loss``). When only
compute is given, tokens are derived as D = C/(6·N) and the returned notes say so. A column named
twice, two aliases of one measured quantity (``N`` and ``params``) and a row with more cells than
columns are refused: which to read is a guess. The exception: ``x`` names the size column to read
(``params`` or ``non_embedding_params``, as ``jaxscale fit --x`` does for result rows); the other
size columns are then ignored, and a CSV without that column is refused.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["CSV_ALIASES", "load_csv"]

CSV_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "params", "Model Size", "n_params", "parameters", "non_embedding_params"),
    "D": ("D", "tokens", "n_tokens", "Training Tokens"),
    "C": ("C", "Training FLOP", "flops", "compute", "FLOPs"),
    "loss": ("loss", "L", "test_loss", "final_loss"),
    "name": ("name", "size", "label"),
    "run_id": ("run_id", "run"),
    "intermediate": ("intermediate",),
}
MEASURED = ("N", "D", "C", "loss")  # the quantities read as numbers: no two aliases of one may be given


def _floats(rows, col, path, what):
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(float(r[col]))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: row {i + 2}, column {col!r} ({what}) is not a number: "
                             f"{r[col]!r}") from None
    return np.asarray(out, np.float64)


def _check_positive(arr, path, col, what):
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: column {col!r} ({what}) must be finite and > 0; row {i + 2} "
                         f"holds {float(arr[i])!r}")


def _a_file(path: Path, what: str) -> None:
    """Refuse a missing path, and a folder (whose open fails with a bare "[Errno 21] Is a
    directory" that names neither the argument nor what was expected)."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; a file is expected (a CSV named .csv or a "
                         f"JSON Lines result-row file)")


def _csv_columns(header: Sequence[str], path, x: str | None = None) -> dict[str, str | None]:
    """Each quantity's column. Refused: a column named twice (``csv.DictReader`` keeps the last,
    silently), and two aliases of one quantity (``N`` and ``params``, say: the first alias was
    taken without a word, and the other column's numbers ignored). Label columns (name, run id)
    may have several aliases present: the first is read, as no number depends on it. ``x``: the
    size (N) column to read, by name (matched ignoring case); it must be present, and other size
    columns are then ignored."""
    seen: dict[str, str] = {}
    for h in header:
        key = h.strip().lower()
        if not key:
            continue  # unnamed columns (trailing commas) are never read
        if key in seen:
            twice = f"column {h!r} appears twice" if h == seen[key] else \
                f"columns {seen[key]!r} and {h!r} are one column (names are matched ignoring case)"
            raise ValueError(f"{path}: {twice}; keep one")
        seen[key] = h
    cols = {}
    for k, aliases in CSV_ALIASES.items():
        found = [h for h in header if h.strip().lower() in {a.lower() for a in aliases}]
        if k == "N" and x is not None:
            named = [h for h in header if h.strip().lower() == x.strip().lower()]
            if not named:
                have = f"its size column is {found[0]!r}" if len(found) == 1 else (
                    f"its size columns are {', '.join(map(repr, found))}" if found else "it has no size column")
                raise ValueError(f"{path}: --x {x} names the size column {x!r}, which the CSV lacks ({have}); "
                                 f"name a column it has" + (", or leave --x out" if len(found) == 1 else ""))
            found = named
        if len(found) > 1 and k in MEASURED:
            hint = ", or choose one with --x (params or non_embedding_params)" if k == "N" else ""
            raise ValueError(f"{path}: columns {', '.join(map(repr, found))} are aliases of one "
                             f"quantity ({k}); keep one of them{hint}")
        cols[k] = found[0] if found else None
    return cols


def load_csv(path: str | os.PathLike, *, x: str | None = None):
    """Read a CSV of runs. Needs N and loss columns, and D or C for Chinchilla fits.

    ``x``: the size column to read as N, by name (``params``, ``non_embedding_params``, any
    column); None reads the one size column (any alias of N). A CSV without the named column is
    refused; with it, the other size columns are ignored (a note says which was read).

    Read as UTF-8 (a byte-order mark is skipped); a row with more cells than the header has
    columns is refused, as its extra cells would be dropped without a word.

    The C column, when present, is also each point's compute budget (``FitData.budget``), by
    which Approach 2 groups IsoFLOP profiles."""
    path = Path(path)
    _a_file(path, "CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); save the table as UTF-8 CSV") from None
    cols = _csv_columns(header, path, x)
    for i, r in enumerate(rows):
        if None in r:  # DictReader's restkey: the cells past the header's last column
            raise ValueError(f"{path}: row {i + 2} has {len(header) + len(r[None])} cells for "
                             f"{len(header)} columns")
    missing = [k for k in ("N", "loss") if cols[k] is None]
    if missing:
        raise ValueError(
            f"{path}: CSV lacks needed column(s) "
            + "; ".join(f"{k} (any of {', '.join(CSV_ALIASES[k])})" for k in missing)
            + f"; found {', '.join(header) or 'no header'}")
    if not rows:
        raise ValueError(f"{path}: CSV has no data rows")
    N = _floats(rows, cols["N"], path, "N")
    L = _floats(rows, cols["loss"], path, "loss")
    _check_positive(N, path, cols["N"], "N")
    _check_positive(L, path, cols["loss"], "loss")
    notes = []
    if x is not None:
        others = [h for h in header if h != cols["N"]
                  and h.strip().lower() in {a.lower() for a in CSV_ALIASES["N"]}]
        if others:
            notes.append(f"N read from column {cols['N']!r} (--x); ignored {', '.join(map(repr, others))}")
    D = C = None
    if cols["D"] is not None:
        D = _floats(rows, cols["D"], path, "D")
        _check_positive(D, path, cols["D"], "D")
    if cols["C"] is not None:
        C = _floats(rows, cols["C"], path, "C")
        _check_positive(C, path, cols["C"], "C")
        if D is None:
            D = C / (6.0 * N)
            notes.append(f"tokens derived as D = C/(6N) from column {cols['C']!r}")
    names = tuple(r[cols["name"]] for r in rows) if cols["name"] else None
    run_ids = tuple(r[cols["run_id"]] for r in rows) if cols["run_id"] else None
    inter = None
    if cols["intermediate"]:
        inter = np.asarray([str(r[cols["intermediate"]]).strip().lower() in ("1", "true", "yes")
                            for r in rows])
    from jaxscale.fit.sources import FitData

    return FitData(N=N, loss=L, D=D, C=C, budget=C, names=names, run_ids=run_ids, intermediate=inter,
                   x_kind=cols["N"], notes=tuple(notes))
