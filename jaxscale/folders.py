"""Output folders: made on demand, or refused with a message that names the argument.

Why: every command writes into a folder the user names (``--out``, ``--plot``), and ``mkdir``'s own
errors (``FileExistsError: [Errno 17] File exists: 'runs'``) name neither the argument nor what
is wrong with it, and reached the user as a traceback. A folder is checked and made before
anything is trained or written, so a bad path costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """The folder ``path``, created with its parents if missing. ``what`` names where the path
    came from (``--out``, ``out``) in the ``ValueError`` raised when it cannot be a folder: a file
    stands at it or on its way, or the system refuses to create it (permissions, a read-only
    disk)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "" if p == path else f" (on the way to {str(path)!r})"
            raise ValueError(f"{what}: {str(p)!r} is a file, not a folder{where}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what}: cannot create the folder {str(path)!r}: {err.strerror or err}") from None
    return path
