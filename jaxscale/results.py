"""The tidy result table: one JSON object per trained model, one line per object (JSON Lines).

Rows are appended with a single ``write`` of one whole line on a file opened in append mode, then
flushed to disk, so a reader never sees half a row from this version. A reader that meets a
truncated or unparsable last line (a crash of an older writer, a full disk) reports it and keeps
every complete row before it; a bad line in the middle is an error, because that is corruption,
not an interrupted append.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

# The fields DESIGN.md §6 promises in every result row. Add fields freely; never rename these.
REQUIRED_FIELDS: tuple[str, ...] = (
    "run_id", "name", "config", "params", "embedding_params", "non_embedding_params",
    "flops_per_token", "seed", "lr", "batch_size", "seq_len", "steps", "tokens", "flops",
    "train_loss", "val_loss", "test_loss", "curve", "diverged", "corpus", "mode", "stack",
    "wall_seconds", "versions", "device",
)


class TruncatedRowWarning(UserWarning):
    """A results file ended in a partial line; the complete rows before it were kept."""


def _jsonable(value: Any) -> Any:
    """Non-finite floats become None: JSON has no NaN, and a diverged loss must stay readable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / jax scalars
        return _jsonable(value.item())
    return value


def missing_fields(row: dict) -> list[str]:
    """Names of the required fields a row lacks (empty when the row is complete)."""
    return [f for f in REQUIRED_FIELDS if f not in row]


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows, each as one whole line written by one ``os.write`` and fsynced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for row in rows:
            line = (json.dumps(_jsonable(row), allow_nan=False, sort_keys=False) + "\n").encode()
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - a full disk
                raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def append_row(path: str | os.PathLike, row: dict) -> None:
    append_rows(path, [row])


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Read every complete row. A truncated last line is reported (warning) and skipped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends_cleanly = data.endswith(b"\n") or not data
    rows: list[dict] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        is_last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == b"")
        try:
            rows.append(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            if is_last or (i == len(lines) - 1 and not ends_cleanly):
                warnings.warn(
                    f"{path}: last line {i + 1} is truncated or unreadable ({err.msg if hasattr(err, 'msg') else err}); "
                    f"kept the {len(rows)} complete rows before it",
                    TruncatedRowWarning, stacklevel=2)
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err}); the file is corrupt") from err
    return rows
