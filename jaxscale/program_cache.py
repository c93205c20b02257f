"""Compiled programs kept on disk under what they are built from, so a warm run skips tracing.

Why: JAX's persistent compilation cache is keyed by the *lowered* program, so every run still
traces and lowers each program before it can look the binary up. On the 2-core development CPU
that was 3.7 s of a 14 s warm ``jaxscale sweep --preset notebook-emergence --mode sequential``
(``jax.monitoring`` durations: 2.05 s tracing and 1.69 s lowering of 22 programs, 1.27 s reading
binaries). This cache is keyed instead by everything a program is built from:

* the jaxscale source (sha256 of every ``.py`` file of the package as this process imported it,
  ``source_snapshot.py``: any code change is a miss; once the files on disk differ from what
  the process imported, nothing is loaded or stored for the rest of the run, with a warning);
* jax and jaxlib versions, the backend (platform, its version, device kinds and count), the
  ``XLA_FLAGS``, ``JAX_*`` and ``JAXSCALE_*`` environment variables and the jax settings that
  change programs (x64, default matmul precision, PRNG implementation);
* the program's static key: its kind and the frozen configs it closes over (model config,
  optimiser config, sampler, chunk length, ...), as ``repr``, with every ``ModelConfig``'s name
  (a label: the program never reads it) set to one placeholder (``unlabelled``), so that models
  of one shape under other names (a family's size and the same shape given by ``--sizes``, two
  families whose sizes coincide) share their programs;
* the abstract signature of the call: the pytree structure and each leaf's shape, dtype, weak
  type and sharding, the sharding written canonically (``sharding_key``: mesh axes, sizes and
  devices, and the partition spec without the mesh axes of one device), so that equivalent
  shardings give one key (a stack on a 1 x 4 mesh got its state back from its training program
  as ``P()`` where it went in as ``P('models')``, and its program was keyed and compiled twice).

A hit deserialises the binary (``jax.experimental.serialize_executable``) and never traces. A
miss traces, lowers and compiles, with JAX's own cache switched off for that compile: an
executable that JAX read from its cache serialises into a blob that fails when run ("Function ...
not found", checked with jax 0.10.2 on a CPU), so a program that JAX's cache already held is
compiled once more, the first time this cache meets it. The binary is then stored atomically. A
file that cannot be read back (truncated, from another build) is recompiled and overwritten.

The cache is on only where JAX's compilation cache is (``compile_cache.py``: the CLI and the
experiment scripts), in its folder's ``programs/`` subfolder; in a multi-process run it is off.
A program is loaded onto the devices it was compiled for (``deserialize_and_load``'s default,
every device, made a one-device program on a 4-device host reject its inputs).
``JAXSCALE_PROGRAM_CACHE=off`` turns it off alone; ``JAXSCALE_PROGRAM_CACHE=PATH`` keeps it in
``PATH`` instead (still only where JAX's cache is on).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import jax

_FOLDER: Path | None = None
_SOURCE_MOVED = False  # the package's files changed on disk since this process imported them
_LOCK = threading.Lock()
_TRACE_LOCK = threading.RLock()
ENV_PREFIXES = ("XLA_FLAGS", "JAX_", "JAXSCALE_")
# settings of the process that change no compiled program: the host allocator (``host.py``),
# this cache's own switch and folder (``/x`` and ``/x/``, or the default folder named or not,
# missed each other's programs), the corpus folder, the multi-process switch (the cache is off
# with several processes), a test hook and JAX's compile log
NOT_PROGRAM_ENV = frozenset({"JAXSCALE_PROGRAM_CACHE", "JAXSCALE_ALLOCATOR", "JAXSCALE_PRELOADED_ALLOCATOR",
                             "JAXSCALE_MALLOC", "JAXSCALE_COMPILATION_CACHE", "JAXSCALE_CACHE",
                             "JAXSCALE_DISTRIBUTED", "JAXSCALE_TEST_CRASH_IN_SAVE", "JAX_LOG_COMPILES"})
JAX_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl",
                "jax_threefry_partitionable")


_fresh_count = 0            # compiles now inside ``_fresh_compile`` (guarded by _LOCK)
_fresh_restore: bool = False  # the persistent cache's setting before the first of them


@contextlib.contextmanager
def _fresh_compile():
    """JAX's persistent cache switched off (and its once-per-process check reset) for one compile:
    an executable that JAX read from its own cache serialises into a blob that fails when run.

    The switch is process-wide, so it is counted, not held: the first compile to enter turns the
    cache off, the last to leave restores it, and the compiles of several lanes run at once in
    between. Holding a lock for the whole compile instead made the lanes compile one after
    another, though a compile runs its HLO passes and most of its code emission on one thread
    (on the 2-core CPU ~1.25 s of the notebook-emergence large model's 2.3 s; only LLVM's part
    uses both cores), so a waiting lane left a core idle, and more lanes would wait longer.
    Measured on the 2-core CPU (cold ``jaxscale sweep --preset notebook-emergence
    --no-save-weights``, four interleaved rounds): mean 21.0 s against 21.6 s with the lock,
    within this machine's noise."""
    from jax.experimental.compilation_cache import compilation_cache as jax_cache

    global _fresh_count, _fresh_restore
    with _LOCK:
        if _fresh_count == 0:
            _fresh_restore = bool(jax.config.jax_enable_compilation_cache)
            jax.config.update("jax_enable_compilation_cache", False)
            jax_cache.reset_cache()
        _fresh_count += 1
    try:
        yield
    finally:
        with _LOCK:
            _fresh_count -= 1
            if _fresh_count == 0:
                jax.config.update("jax_enable_compilation_cache", _fresh_restore)
                jax_cache.reset_cache()


def enable(folder: str | os.PathLike | None) -> Path | None:
    """Store programs in ``folder`` (None: off), or where ``$JAXSCALE_PROGRAM_CACHE`` says:
    ``off`` turns this cache off alone, a path moves it there (it was silently ignored, and the
    programs went to ``folder``). Returns the folder in use."""
    global _FOLDER
    chosen = os.environ.get("JAXSCALE_PROGRAM_CACHE", "").strip()
    if folder is None or chosen.lower() == "off":
        _FOLDER = None
    else:
        _FOLDER = Path(chosen).expanduser() if chosen else Path(folder)
        try:
            _FOLDER.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            where = "$JAXSCALE_PROGRAM_CACHE" if chosen else "the program cache folder"
            raise ValueError(f"{where} {str(_FOLDER)!r} cannot be made ({err.strerror or err}); give a "
                             f"folder that can be, or 'off'") from None
    return _FOLDER


def in_use() -> bool:
    """Whether programs are stored on and loaded from disk (single process, folder set)."""
    import jax

    return _FOLDER is not None and jax.process_count() == 1


def source_hash() -> str:
    """sha256 over the package's Python files (relative path and content), as this process
    imported them (``source_snapshot.SNAPSHOT``, taken when the package was imported)."""
    from jaxscale.source_snapshot import SNAPSHOT

    return SNAPSHOT.digest


def source_current() -> bool:
    """Whether the package's files on disk are still those this process imported. Once they
    differ (an edit saved during a run), programs are neither loaded nor stored: this process
    may hold old and new modules at once, so no key names what it compiles. Warns once."""
    from jaxscale.source_snapshot import SNAPSHOT, unchanged

    global _SOURCE_MOVED
    if not _SOURCE_MOVED and not unchanged(SNAPSHOT):
        _SOURCE_MOVED = True
        warnings.warn("jaxscale's source files changed on disk since this process imported them: "
                      "compiled programs are no longer loaded from or stored in the program cache "
                      "for the rest of this run", RuntimeWarning, stacklevel=2)
    return not _SOURCE_MOVED


def _environment() -> tuple:
    import jaxlib

    devices = jax.devices()
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)
                       and k not in NOT_PROGRAM_ENV))
    settings = tuple((name, str(getattr(jax.config, name, None))) for name in JAX_SETTINGS)
    return (source_hash(), jax.__version__, jaxlib.__version__, devices[0].platform,
            devices[0].client.platform_version, tuple(d.device_kind for d in devices), env, settings)


PROGRAM_NAME = "program"  # the name every ModelConfig of a key is given (``unlabelled``)


def unlabelled(static: Any) -> Any:
    """``static`` with every ``ModelConfig`` in it (in tuples, lists and dict values, at any
    depth) named ``PROGRAM_NAME``: the name is a label that no program reads, so it must not
    tell two programs apart. Everything else is kept."""
    from jaxscale.config import ModelConfig

    if isinstance(static, ModelConfig):
        return static if static.name == PROGRAM_NAME else static.replace(name=PROGRAM_NAME)
    if isinstance(static, tuple):
        items = [unlabelled(x) for x in static]
        return type(static)(*items) if hasattr(static, "_fields") else tuple(items)
    if isinstance(static, list):
        return [unlabelled(x) for x in static]
    if isinstance(static, dict):
        return {k: unlabelled(v) for k, v in static.items()}
    return static


def static_key(static: Any) -> str:
    """The string a program's static part is keyed by: ``repr`` of it ``unlabelled``."""
    return repr(unlabelled(static))


def sharding_key(sharding: Any, ndim: int) -> str:
    """A canonical string for how an array of ``ndim`` dimensions is laid out, equal for
    equivalent shardings. A ``NamedSharding``: its mesh (axis names, sizes, types, the devices'
    ids in order), its memory kind, and its partition spec, each dimension's mesh axes without
    those of size one (they split nothing: on a 1 x 4 ('models', 'batch') mesh ``P('models')``,
    ``P('models', None)`` and ``P()`` are one layout) and without trailing unsplit dimensions.
    Other shardings (one device): their ``repr``."""
    from jax.sharding import NamedSharding

    if not isinstance(sharding, NamedSharding):
        return repr(sharding)
    mesh, spec = sharding.mesh, sharding.spec
    sizes = dict(mesh.shape)
    dims: list = []
    for entry in tuple(spec) + (None,) * max(0, ndim - len(spec)):
        if entry is None or isinstance(entry, (str, tuple)):
            axes = entry if isinstance(entry, tuple) else () if entry is None else (entry,)
            dims.append(tuple(a for a in axes if sizes.get(a) != 1))
        else:  # e.g. P.UNCONSTRAINED: kept as it is
            dims.append(repr(entry))
    while dims and dims[-1] == ():
        dims.pop()
    extra = tuple((name, tuple(sorted(getattr(spec, name)))) for name in ("unreduced", "reduced")
                  if getattr(spec, name, None))
    devices = tuple(int(d.id) for d in mesh.devices.flat)
    return (f"NamedSharding(axes={tuple(mesh.axis_names)}, shape={tuple(mesh.devices.shape)}, "
            f"types={getattr(mesh, 'axis_types', None)}, devices={devices}, spec={tuple(dims)}{extra or ''}, "
            f"memory_kind={sharding.memory_kind})")


def signature(args: tuple) -> tuple | None:
    """The abstract signature of ``args`` (with the default device, where host arrays go); None
    when a leaf is not an array (not cacheable). Shardings are written by ``sharding_key``."""
    leaves, treedef = jax.tree.flatten(args)
    sig = [("default device", str(jax.config.jax_default_device or jax.devices()[0]))]
    for x in leaves:
        if isinstance(x, jax.Array):
            sig.append((x.shape, str(x.dtype), bool(getattr(x.aval, "weak_type", False)),
                        sharding_key(x.sharding, x.ndim)))
        elif hasattr(x, "shape") and hasattr(x, "dtype"):  # numpy arrays and scalars: uncommitted inputs
            sig.append((tuple(x.shape), str(x.dtype), False, "host"))
        else:
            return None
    return (str(treedef), tuple(sig))


class CachedProgram:
    """``jitted(*args)``, with its compiled binary looked up on disk by the static key and the
    call's signature before anything is traced. Thread-safe."""

    def __init__(self, jitted: Callable, kind: str, static: Any):
        self.jitted, self.kind, self.static = jitted, kind, static_key(static)
        self._loaded: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.last = "off"  # where the last call's program came from: off | memory | disk | compiled

    def __call__(self, *args):
        if not self._loaded and (_FOLDER is None or jax.process_count() > 1):
            self.last = "off"  # nothing to look up: no per-call signature work
            return self.jitted(*args)
        sig = signature(args)
        compiled = self._loaded.get(sig) if sig is not None else None
        if compiled is not None:
            self.last = "memory"
        elif sig is None or _FOLDER is None or jax.process_count() > 1:
            self.last = "off"
            return self.jitted(*args)
        else:
            compiled = self._ensure(sig, args)
        return compiled(*args)

    def stored(self, *args) -> bool:
        """Whether the program for ``args`` is loaded or compiled on disk already (so that
        ``compile_for`` would only load it)."""
        sig = signature(args)
        if sig is None:
            return False
        if sig in self._loaded:
            return True
        return _FOLDER is not None and jax.process_count() == 1 and self._path(sig).exists()

    def compile_for(self, *args) -> str:
        """Compile (or load) the program for ``args`` without running it, so that a later call
        with arguments of the same signature starts at once (with the disk cache off, the
        program is compiled through JAX's own cache and kept in memory). Returns where it came
        from: ``memory``, ``disk``, ``compiled``, or ``off`` (arguments that cannot be keyed)."""
        sig = signature(args)
        if sig is None:
            return "off"
        if sig in self._loaded:
            return "memory"
        if _FOLDER is None or jax.process_count() > 1:
            with self._lock:  # checked again under the lock: another lane may have compiled it meanwhile
                if sig in self._loaded:
                    return "memory"
                self._loaded[sig] = _lower(self.jitted, args).compile()
            return "compiled"
        self._ensure(sig, args)
        return self.last

    def _ensure(self, sig: tuple, args: tuple):
        with self._lock:
            compiled = self._loaded.get(sig)
            if compiled is None:
                compiled = self._loaded[sig] = self._load_or_compile(sig, args)
            else:
                self.last = "memory"
            return compiled

    def _path(self, sig: tuple) -> Path:
        key = repr((self.kind, self.static, sig, _environment()))
        return _FOLDER / f"{self.kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.pkl"

    def _load_or_compile(self, sig: tuple, args: tuple):
        from jax.experimental.serialize_executable import deserialize_and_load, serialize

        path = self._path(sig)
        current = source_current()
        if current and path.exists():
            try:
                payload, in_tree, out_tree, device_ids = pickle.loads(path.read_bytes())
                by_id = {d.id: d for d in jax.devices()}
                compiled = deserialize_and_load(payload, in_tree, out_tree,
                                                execution_devices=[by_id[i] for i in device_ids])
                self.hits += 1
                self.last = "disk"
                return compiled
            except Exception:  # unreadable or from another build: compile again and overwrite
                pass
        lowered = _lower(self.jitted, args)
        with _fresh_compile():
            compiled = lowered.compile()
        self.misses += 1
        self.last = "compiled"
        if not current or not source_current():  # checked again: the compile took seconds
            return compiled
        try:
            device_ids = [d.id for d in compiled.runtime_executable().local_devices()]
            blob = pickle.dumps((*serialize(compiled), device_ids))
        except Exception:  # this backend or program cannot be serialised: run it uncached
            return compiled
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return compiled


def _lower(jitted: Callable, args: tuple):
    """``jitted.lower(*args)``, one lane at a time.

    Tracing and lowering are Python and hold the GIL, so lanes that trace at once only take turns,
    and every one of their compiles starts when the last of them is done; one at a time, the
    first lane's compile (XLA's, mostly outside the GIL) runs while the next lane traces. In a
    cold ``jaxscale sweep --preset notebook-emergence`` on the 2-core CPU (``jax.monitoring``
    timestamps, 2026-12-04) the first training program's compile started 1.2 s into the run
    instead of 2.1 s, and its model finished training ~2 s sooner; the end-to-end gain was
    within that day's noise (ten interleaved pairs: median 0.35 s faster, mean 0.7 s)."""
    with _TRACE_LOCK:
        return jitted.lower(*args)


def _note_path(kind: str, key: Any) -> Path | None:
    if _FOLDER is None or jax.process_count() > 1:
        return None
    digest = hashlib.sha256(repr((kind, static_key(key), _environment())).encode()).hexdigest()[:32]
    return _FOLDER / "index" / f"{kind}-{digest}"


def note_stored(kind: str, key: Any) -> None:
    """Record that a program described by ``key`` (what a planner knows before any argument
    exists: configs, settings, stack size) is compiled on disk, so that ``is_stored`` can tell
    a warm run from a cold one before anything is built (the programs themselves are keyed by
    their arguments' signature)."""
    path = _note_path(kind, key)
    if path is not None and source_current():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def is_stored(kind: str, key: Any) -> bool:
    """Whether ``note_stored(kind, key)`` was called with this source and environment."""
    path = _note_path(kind, key)
    return path is not None and source_current() and path.exists()


_WRAPPED: dict[tuple, CachedProgram] = {}


def cached(jitted: Callable, kind: str, static: Any) -> CachedProgram:
    """Wrap a ``jax.jit`` function whose program is fully determined by ``static`` (frozen
    configs, whose ``repr`` is stable; their labels do not count, ``unlabelled``) and its
    arguments' signature. One wrapper per (function, kind, static), so programs loaded once stay
    loaded for the process."""
    key = (jitted, kind, static_key(static))
    with _LOCK:
        if key not in _WRAPPED:
            _WRAPPED[key] = CachedProgram(jitted, kind, static)
        return _WRAPPED[key]
