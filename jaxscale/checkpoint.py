"""Atomic checkpoints of a training group (orbax v1), so a killed sweep resumes exactly.

A group's checkpoint folder holds numbered snapshots ``step-<N>/`` (an orbax ``save_pytree`` of
the arrays: parameters, optimiser state, step counters, dropout keys, the diverged and budget
masks, the loss history) each with a ``meta.json`` (global step, validation points, elapsed
time). A snapshot is written under a temporary name and renamed into place only when complete;
``LATEST`` (replaced atomically) names the newest complete snapshot, and older ones are deleted
only after that. A crash at any moment therefore leaves the previous snapshot usable.

Several processes (``jax.distributed``): ``save`` and ``load`` are collectives, called by every
process with the same arrays (gathered to every host first) and the same folder, which must be
on a filesystem they all see. orbax's save is itself one (it checks that every process saves to
the same path and waits for them all; called by process 0 alone it hung); process 0 alone
prepares the temporary folder, writes ``meta.json``, renames the snapshot into place, replaces
``LATEST`` and deletes the older snapshot, between barriers (``devices.barrier``) so that no
process reads or writes the folder while another is still changing it.

Test hook: with ``JAXSCALE_TEST_CRASH_IN_SAVE=N`` the process kills itself (``os._exit``) in
the middle of its N-th save, after the arrays are written but before the snapshot is renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import jax
import numpy as np

from jaxscale.devices import barrier, is_writer

CRASH_ENV = "JAXSCALE_TEST_CRASH_IN_SAVE"
_saves_done = 0
# a sweep's lanes (threads) save checkpoints and weights one at a time: orbax's save is not
# documented as safe to run twice at once in one process
ORBAX_LOCK = threading.RLock()


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class GroupCheckpoint:
    """Snapshots of one group under ``folder``."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def latest(self) -> Path | None:
        marker = self.folder / "LATEST"
        if not marker.exists():
            return None
        path = self.folder / marker.read_text().strip()
        return path if (path / "meta.json").exists() else None

    def latest_meta(self) -> dict | None:
        """The newest complete snapshot's ``meta.json`` (None if none): what its arrays hold
        (e.g. how many models), read before they are loaded into a template of that shape."""
        path = self.latest()
        return None if path is None else json.loads((path / "meta.json").read_text())

    def save(self, arrays: dict, meta: dict) -> Path:
        """Write a complete snapshot of ``arrays`` (a pytree) and ``meta`` (JSON). On several
        processes every process calls it, with the same arrays (see the module's docstring)."""
        from orbax.checkpoint import v1 as ocp

        global _saves_done
        name = f"step-{int(meta['step']):09d}"
        final, tmp = self.folder / name, self.folder / f".{name}.partial"
        writer = is_writer()
        if writer:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier(f"jaxscale-checkpoint-begin:{self.folder.name}/{name}")  # the empty temporary folder exists
        leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(arrays))]
        with ORBAX_LOCK:
            # a collective on several processes: each calls it on the same path
            ocp.save((tmp / "arrays").resolve(), {f"{i:05d}": x for i, x in enumerate(leaves)})
            _saves_done += 1
        if os.environ.get(CRASH_ENV) and int(os.environ[CRASH_ENV]) == _saves_done:
            os._exit(86)  # test hook: die mid-save, before the snapshot is complete
        if writer:
            _write_text_atomic(tmp / "meta.json", json.dumps(meta))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            previous = self.latest()
            _write_text_atomic(self.folder / "LATEST", name)
            if previous is not None and previous != final:
                shutil.rmtree(previous, ignore_errors=True)
        barrier(f"jaxscale-checkpoint-end:{self.folder.name}/{name}")  # LATEST names it on every process
        return final

    def load(self, abstract: dict) -> tuple[dict, dict] | None:
        """(arrays, meta) of the newest complete snapshot, shaped like ``abstract``; None if none.
        On several processes every process calls it (each reads the whole snapshot)."""
        path = self.latest()
        if path is None:
            return None  # before importing orbax: a fresh run that saves nothing never needs it
        from orbax.checkpoint import v1 as ocp

        meta = json.loads((path / "meta.json").read_text())
        # Leaves are stored flat and host-side (numpy), then put back into ``abstract``'s
        # structure: loading never depends on device placement or on optimiser state classes.
        stored = ocp.load((path / "arrays").resolve())
        leaves, treedef = jax.tree.flatten(abstract)
        if len(stored) != len(leaves):
            raise ValueError(f"checkpoint {path} holds {len(stored)} arrays, the run expects {len(leaves)}")
        restored = []
        for i, want in enumerate(leaves):
            got = np.asarray(stored[f"{i:05d}"])
            if got.shape != np.shape(want):
                raise ValueError(f"checkpoint {path}: array {i} has shape {got.shape}, expected {np.shape(want)}")
            restored.append(got)
        return jax.tree.unflatten(treedef, restored), meta

    def size_bytes(self) -> int:
        path = self.latest()
        return 0 if path is None else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
