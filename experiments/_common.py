"""Helpers shared by the experiment scripts: the common flags, the output folder, the combined
result file and the provenance lines every report starts with.

The scripts are thin layers over the library; this module holds only what every script would
otherwise repeat (argument parsing, formatting), never training or fitting logic.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
from pathlib import Path

MODES = ("smoke", "quick", "full")


def prepare_process(*, compilation_cache: bool = True) -> None:
    """What every script does first: the host allocator settings (before JAX starts its CPU
    threads; see ``jaxscale/host.py``) and, unless the script times compiles, the persistent
    compilation cache."""
    from jaxscale.host import tune_malloc

    tune_malloc()
    if compilation_cache:
        from jaxscale.compile_cache import enable_compilation_cache

        enable_compilation_cache()


def parse_args(doc: str, name: str, argv=None) -> tuple[argparse.Namespace, str, Path]:
    """The flags every script takes. Returns (args, run mode, output folder).

    ``--smoke`` (seconds of training: the test suite), ``--quick`` (≤ 2 minutes on a 2-core
    CPU), neither: the full run. ``--mode`` is the planner's (``auto`` groups models into
    stacks by its cost model; ``stack`` forces one program per sweep, which is what a
    seconds-long run wants because compiling dominates it).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short run: <= 2 minutes on a 2-core CPU")
    size.add_argument("--smoke", action="store_true", help="a few seconds of training (the test suite)")
    parser.add_argument("--out", default=None, help=f"output folder (default: a new runs/{name}-<mode>-<time>)")
    parser.add_argument("--mode", choices=("auto", "stack", "sequential"), default=None,
                        help="planner mode (default: stack for --smoke, auto otherwise)")
    args = parser.parse_args(argv)
    prepare_process()
    run_mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.mode is None:
        args.mode = "stack" if run_mode == "smoke" else "auto"
    out = Path(args.out) if args.out else Path("runs") / f"{name}-{run_mode}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    folder = script_output_folder(parser, out, name, run_mode)
    if any(p.name != MADE_BY for p in folder.iterdir()):
        print(f"note: {out} holds an earlier {name} --{run_mode} run; its finished sweeps are resumed, "
              f"not retrained", file=sys.stderr)
    return args, run_mode, folder


# Written into every experiment's folder when it is made: which script and mode own it (the name
# the sweep and train commands refuse a folder by).
from jaxscale.sweep_folder import MADE_BY  # noqa: E402
# What each script makes at the top of its folder, by which a folder made before ``MADE_BY``
# existed (2026-12-05) is still recognised as the script's own: every subfolder is one of these,
# and at least one entry is. (A sweep's folder holds checkpoints/ or weights/, a study's ladder/,
# a train's results.jsonl alone: none passes.) The sweeps inside still refuse another mode's
# settings.
EARLIER_RUN_PARTS = {"power_law": ("text", "random_tokens"), "chinchilla": ("race", "isoflop", "isoflop-ext*"),
                     "emergence": ("notebook", "transition"), "throughput": ("throughput.json",)}


def _earlier_run_of(out: Path, name: str) -> bool:
    """Whether ``out`` (without ``MADE_BY``) holds a run of script ``name`` made before the marker."""
    import fnmatch

    parts = EARLIER_RUN_PARTS.get(name, ())
    ours = lambda p: any(fnmatch.fnmatch(p.name, pattern) for pattern in parts)  # noqa: E731
    entries = list(out.iterdir())
    return any(ours(p) for p in entries) and all(ours(p) for p in entries if p.is_dir())


def script_output_folder(parser: argparse.ArgumentParser, out: Path, name: str, mode: str) -> Path:
    """``out`` made (``folders.output_folder``) and marked as ``name``'s ``mode`` run
    (``MADE_BY``), or the script stops with a usage error naming ``--out``.

    A folder that is not empty must be a run of the same script and mode. Why: a script writes
    its ``results.jsonl``, ``report.md`` and figures into the folder, replacing files of those
    names, so given a sweep's folder it replaced the sweep's rows (and a later ``jaxscale sweep``
    there appended its rows to the script's); given another mode's run, its sweeps were refused
    deep inside as changed settings."""
    import json

    from jaxscale.folders import output_folder

    marker = out / MADE_BY
    if out.is_dir() and any(out.iterdir()):
        try:
            owner = json.loads(marker.read_text()) if marker.is_file() else None
        except (OSError, ValueError):
            owner = {}
        if owner is None and _earlier_run_of(out, name):
            owner = {"script": name, "mode": mode}  # marked below
        if owner is None:
            shown = sorted(p.name for p in out.iterdir())
            listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
            parser.error(f"--out: {str(out)!r} is not empty ({listed}) and holds no run of experiments/"
                         f"{name}.py; the script writes results.jsonl, report.md and its figures there, "
                         f"replacing files of those names. Give a new or empty --out folder")
        if not isinstance(owner, dict) or (owner.get("script"), owner.get("mode")) != (name, mode):
            was = (f"experiments/{owner.get('script')}.py --{owner.get('mode')}" if isinstance(owner, dict)
                   and owner.get("script") else f"an unreadable {MADE_BY}")
            parser.error(f"--out: {str(out)!r} holds a run of {was}, not of experiments/{name}.py --{mode}; "
                         f"give a new or empty --out folder")
    try:
        folder = output_folder(out, "--out")
    except ValueError as err:
        parser.error(str(err))
    if not marker.exists():
        marker.write_text(json.dumps({"script": name, "mode": mode}) + "\n")
    return folder


def tag(rows: list, **fields) -> list:
    """Rows with extra fields (e.g. which part of the experiment made them); copies."""
    return [{**r, **fields} for r in rows]


def write_rows(path: Path, rows: list) -> Path:
    """All rows of an experiment as one JSON Lines file, replaced atomically."""
    from jaxscale.results import append_rows

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if tmp.exists():
        tmp.unlink()
    append_rows(tmp, rows)
    os.replace(tmp, path)
    return path


def est(e) -> str:
    """An Estimate as 'value [lo, hi]' (4 significant digits; a bound can be inf), or the value
    alone without an interval."""
    lo, hi = e.ci95 if e.ci95 is not None else (math.nan, math.nan)
    if math.isnan(lo) or math.isnan(hi):  # no interval; an infinite bound is shown as inf
        return f"{e.value:.4g}"
    return f"{e.value:.4g} [{lo:.4g}, {hi:.4g}]"


def provenance(rows: list, *, command: str, wall_seconds: float, mode: str) -> list[str]:
    """The report header: command, wall time, device, host allocator (it moves compile times on a
    CPU), versions and corpus fingerprint(s)."""
    from jaxscale.host import allocator_description

    first = rows[0]
    corpora = {}
    for r in rows:
        corpora.setdefault(r["corpus"]["fingerprint"], r["corpus"]["name"])
    dev = first["device"]
    lines = [f"Command: `{command}` ({mode} run)  ", f"Wall time: {wall_seconds:.0f} s  ",
             f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}  ",
             f"Device: {dev.get('kind')} ({dev.get('platform')} × {dev.get('count')})  ",
             f"Host allocator: {allocator_description()}  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in first["versions"].items()) + "  "]
    lines += [f"Corpus: {name}, fingerprint `{fp}`  " for fp, name in corpora.items()]
    return lines


def command_line(script: str, argv=None) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", f"experiments/{script}"] + args)


def log(msg: str) -> None:
    print(msg, flush=True)
