"""Output folders: made on demand, or refused with a message that names the argument.

Why: every command writes into a folder the user names (``--out``, ``--plot``), and ``mkdir``'s own
errors (``FileExistsError: [Errno 17] File exists: 'runs'``) name neither the argument nor what
is wrong with it, and reached the user as a traceback. A folder is checked before anything is
trained or read (``check_output_folder``), so a bad path costs nothing, and made when something is
about to be written into it (``output_folder``).
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder that ``output_folder`` can make, checked without creating anything;
    the same ``ValueError`` (naming ``what``) when a file stands at it or on its way, or when the
    nearest folder that exists on its way (itself, if it exists) is not writable.

    Why: a command checks its output folder before any work, so that a bad path costs nothing,
    but makes it only when something is about to be written into it (``output_folder``): made
    at the check, it was left behind empty when the command then failed on its inputs
    (``jaxscale fit power-law missing.csv --plot figs`` left ``figs/``)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            raise ValueError(f"{what}: {str(p)!r} is a link to nothing, not a folder"
                             + ("" if p == path else f" (on the way to {str(path)!r})"))
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" (on the way to {str(path)!r})"
                raise ValueError(f"{what}: {str(p)!r} is a file, not a folder{where}")
            if not os.access(p, os.W_OK | os.X_OK):
                if p == path:
                    raise ValueError(f"{what}: the folder {str(path)!r} is not writable")
                raise ValueError(f"{what}: cannot create the folder {str(path)!r}: {str(p)!r} is not writable")
            break  # the nearest existing folder: what lies above it is not written
    return path


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """The folder ``path``, created with its parents if missing. ``what`` names where the path
    came from (``--out``, ``out``) in the ``ValueError`` raised when it cannot be a folder: a file
    stands at it or on its way, or the system refuses to create it (permissions, a read-only
    disk). ``check_output_folder`` makes the same checks without creating the folder."""
    path = check_output_folder(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what}: cannot create the folder {str(path)!r}: {err.strerror or err}") from None
    return path
