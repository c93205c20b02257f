"""The tidy result table: one JSON object per trained model, one line per object (JSON Lines).

Rows are appended with a single ``write`` of one whole line on a file opened in append mode, then
flushed to disk, so a reader never sees half a row from this version. A reader that meets a
truncated or unparsable last line (a crash of an older writer, a full disk) reports it and keeps
every complete row before it; a bad line in the middle is an error, because that is corruption,
not an interrupted append. So that such a line never becomes a middle one, the next append cuts it
off before writing (``append_rows``); a resume writes its row again.
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


def strict_json(value: Any, indent: int | None = 2) -> str:
    """``value`` as strict JSON: non-finite floats written null (``_jsonable``), never the bare
    ``NaN``/``Infinity`` that strict parsers refuse. What every JSON output file and ``--json``
    print goes through."""
    return json.dumps(_jsonable(value), indent=indent, allow_nan=False)


def missing_fields(row: dict) -> list[str]:
    """Names of the required fields a row lacks (empty when the row is complete)."""
    return [f for f in REQUIRED_FIELDS if f not in row]


def _line(row: dict) -> bytes:
    return (json.dumps(_jsonable(row), allow_nan=False, sort_keys=False) + "\n").encode()


def _last_line_start(fd: int, end: int) -> int:
    """Offset of the first byte after the last newline before ``end`` (0 if there is none),
    read backwards in chunks so that a long results file is not read whole at every append."""
    pos = end
    while pos > 0:
        start = max(0, pos - 65536)
        k = os.pread(fd, pos - start, start).rfind(b"\n")
        if k >= 0:
            return start + k + 1
        pos = start
    return 0


def _repair_tail(fd: int, path: Path) -> None:
    """Make the file end in a newline after its last complete row, before rows are appended.

    Why: ``read_rows`` skips an unreadable last line (a crash inside an append, a full disk) with
    a warning. Appending straight after such a line glued the new row onto the fragment, and at
    the next append that glued line became a middle line, which ``read_rows`` refuses as
    corruption: the whole file was lost to every later resume or fit. So a fragment that can only
    be an interrupted append (zero bytes a crash left, or a line with no newline after it that
    begins as a row does; and the line before it, if any, is a row) is cut off here: it is no row, and the resume that calls this writes
    its row again. A readable last row that only lacks its newline gets one. Any other
    unreadable last line means the file is not a results file (pretty-printed JSON, another
    tool's output): that is refused, and nothing in it is cut."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    ends_cleanly = os.pread(fd, 1, size - 1) == b"\n"
    end = size - 1 if ends_cleanly else size
    start = _last_line_start(fd, end)
    tail = os.pread(fd, end - start, start)
    if not tail.strip():
        if not ends_cleanly and start < size:
            os.ftruncate(fd, start)  # only blanks after the last newline
        return
    if _is_row(tail):
        if not ends_cleanly:
            os.write(fd, b"\n")
        return
    before = b""
    if start > 0:  # the line before the fragment: from the newline before it to the one ending it
        prev_start = _last_line_start(fd, start - 1)
        before = os.pread(fd, start - 1 - prev_start, prev_start)
    zeros = not tail.strip(b"\x00 \t\r")  # a crash can leave zero-filled blocks at the end
    interrupted = zeros or (not ends_cleanly and tail.lstrip(b"\x00").lstrip().startswith(b"{"))
    if interrupted and (start == 0 or _is_row(before)):
        warnings.warn(f"{path}: dropped the unreadable last line ({len(tail)} bytes, an interrupted append, no "
                      f"complete row) before appending", TruncatedRowWarning, stacklevel=3)
        os.ftruncate(fd, start)
        return
    raise ValueError(f"{path}: its last line is not a result row ({tail[:40]!r}...); not appending to a file that "
                     f"is not a jaxscale results file")


def _is_row(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows, each as one whole line written by one ``os.write`` and fsynced.

    An unreadable last line, which ``read_rows`` skips, is cut off first (``_repair_tail``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _repair_tail(fd, path)
        for row in rows:
            line = _line(row)
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - a full disk
                raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)


def append_row(path: str | os.PathLike, row: dict) -> None:
    append_rows(path, [row])


def write_rows(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Replace the file with ``rows``, atomically: written whole to a temporary file, fsynced, then
    renamed over ``path``, so a reader sees either the old rows or all the new ones. For a table
    that is recomputed whole (``selected.jsonl``, a study's combined ``results.jsonl``), where
    appending would repeat rows at every rerun."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        for row in rows:
            f.write(_line(row))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Read every complete row. A truncated last line is reported (warning) and skipped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"results file {str(path)!r} is a folder; give its results.jsonl")
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends_cleanly = data.endswith(b"\n") or not data
    rows: list[dict] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        is_last = i == len(lines) - 1 or (i == len(lines) - 2 and lines[-1] == b"")
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            if is_last or (i == len(lines) - 1 and not ends_cleanly):
                warnings.warn(
                    f"{path}: last line {i + 1} is truncated or unreadable ({err.msg if hasattr(err, 'msg') else err}); "
                    f"kept the {len(rows)} complete rows before it",
                    TruncatedRowWarning, stacklevel=2)
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON ({err}); the file is corrupt") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {i + 1} is not a result row (a JSON object), but {type(row).__name__} "
                             f"{raw[:40].decode(errors='replace')!r}")
        rows.append(row)
    return rows
