"""The package's source as this process imported it, for the program cache's keys.

Why: the program cache (``program_cache.py``) keys each compiled program by a hash of the
package's ``.py`` files, so that a code change is a miss. Hashed from the files on disk when the
first program was keyed (after the imports, the corpus and the plan), an edit saved while a run
started was keyed as the new source with the program of the old: the next run, on the new source,
loaded the old code's program and reported its numbers (a reviewer's reproduction: LayerNorm's
epsilon edited during start-up, test loss 4.3026 from the cache against 4.2136 compiled). And a
module imported late (the task evaluation, after training) could load an edit made mid-run under
the hash of the source before it.

So the hash is taken once, when the package is imported (``jaxscale/__init__.py`` imports this
module first, before any module that builds a program), with each file's size and modification
time; :func:`unchanged` compares the files on disk with that record, and the program cache
neither loads nor stores a program once they differ. A file edited while it is hashed is caught
too: its record is the state before it was read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent


class Snapshot(NamedTuple):
    digest: str   # sha256 over every .py file's relative path and content
    stats: tuple  # ((relative path, size, mtime_ns), ...) of those files, taken before reading them


def _stats(root: Path) -> tuple:
    return tuple((str(p.relative_to(root)), st.st_size, st.st_mtime_ns)
                 for p in sorted(root.rglob("*.py")) for st in (p.stat(),))


def take(root: Path = ROOT) -> Snapshot:
    """The snapshot of the ``.py`` files under ``root``."""
    stats = _stats(root)
    h = hashlib.sha256()
    for rel, _, _ in stats:
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return Snapshot(h.hexdigest(), stats)


def unchanged(snapshot: Snapshot, root: Path = ROOT) -> bool:
    """Whether the ``.py`` files under ``root`` are still those of ``snapshot``: the same files,
    sizes and modification times (an edit, even one reverted since, changes the time)."""
    try:
        return _stats(root) == snapshot.stats
    except OSError:  # a file vanished while listed
        return False


SNAPSHOT = take()
