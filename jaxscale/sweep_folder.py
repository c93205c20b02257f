"""What a sweep's output folder holds, and whether a run may use it.

A sweep records its settings (``sweep.json``) and its plan (``plan.json``) before it trains
anything, then rows and snapshots. A rerun with the same settings resumes; one with other
settings is refused, naming the first difference, unless nothing was trained yet (then the new
settings replace the old); a folder that holds another command's output is refused, so that no
command's rows mix with another's. ``read_record`` and ``write_json`` read and write these
records (and ``study.json``) whole.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from jaxscale.checkpoint import _write_text_atomic

WEIGHTS_DIR = "weights"
# The marker an experiment script writes into its folder (script and mode; experiments/_common.py)
MADE_BY = "made_by.json"


def check_folder(out_path: Path, recorded: dict, log) -> bool:
    """Whether ``out_path``'s recorded settings and plan are stale and must be replaced (True:
    they differ from ``recorded`` but nothing was trained under them; a note goes to ``log``).
    Raises ValueError when the folder holds another command's output, or a sweep that trained
    under other settings."""
    if not (out_path / "sweep.json").exists():
        if foreign := foreign_results(out_path):
            raise ValueError(f"--out {str(out_path)!r} holds another command's output ({foreign}) and no "
                             f"sweep.json: a sweep there would mix its rows with those. Give a new or empty --out folder")
        return False
    was = read_record(out_path / "sweep.json", "--out", "a sweep record")
    if another_command(was, recorded):  # not a setting that changed: another command's folder
        what = ("study.json: an emergence study" if (out_path / "study.json").exists()
                else "its sweep.json was written by another command")
        raise ValueError(f"--out {str(out_path)!r} holds another command's output ({what}): a sweep there "
                         f"would mix its rows with those. Give a new or empty --out folder")
    changed = difference(was, recorded)
    if changed is None:
        return False
    if trained_anything(out_path):
        raise ValueError(f"{out_path} holds a sweep run with different settings: {changed}. Use the same "
                         f"command to resume, or a new --out folder")
    print(f"{out_path}: nothing was trained under the settings its sweep.json records ({changed}): "
          f"replacing them and the plan", file=log)
    return True


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, replaced whole (written aside, fsynced, renamed)."""
    _write_text_atomic(path, json.dumps(obj, indent=2, default=str))


def trained_anything(out_path: Path) -> bool:
    """Whether a sweep in ``out_path`` has written anything a resume would use: a row, a training
    snapshot, a group's rows.json or weights. Until then its sweep.json and plan.json may be
    replaced by a sweep with other settings without losing anything."""
    results = out_path / "results.jsonl"
    if results.exists() and results.stat().st_size > 0:
        return True
    return any(p.is_file() for sub in ("checkpoints", WEIGHTS_DIR) for p in (out_path / sub).rglob("*"))


def foreign_results(out_path: Path) -> str:
    """What in ``out_path`` (a folder without sweep.json) another command wrote, that a sweep
    there would mix its rows with: a ``results.jsonl`` (``jaxscale train``; a sweep writes its
    sweep.json before any row), a ``ladder/sweep.json`` (``jaxscale run``, whose combined
    results.jsonl replaces the folder's own at its end), a ``made_by.json`` (an experiment script's
    folder, ``experiments/_common.py``). Empty when none. Not ``study.json``:
    ``jaxscale emergence`` writes it, then runs its sweep in the same folder (an emergence
    folder that trained has a sweep.json, which ``check_folder`` compares)."""
    found = [name for name in ("results.jsonl", "ladder/sweep.json", MADE_BY) if (out_path / name).exists()]
    return ", ".join(found)


# settings that change neither the models nor their numbers, so a resume may change them
NOT_RECORDED = ("progress", "compile_mode", "compile_ahead")


def sweep_record(specs, data, settings, mode, record) -> dict:
    return {"command": record or {}, "mode": mode, "data": data.fingerprint,
            "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k not in NOT_RECORDED},
            "models": [{"label": s.label, "config": s.cfg.to_dict(), "budget": s.budget.to_dict(),
                        "optim": dataclasses.asdict(s.optim)} for s in specs]}


def read_record(path: Path, what: str, kind: str) -> dict:
    """The JSON object a command recorded in ``path`` (sweep.json, plan.json, study.json), or a
    ValueError naming ``what`` (the argument that gave the folder) and the file. Why: such a file
    edited by hand or left by another program was read as it came, and ``[]`` ended in a
    traceback (``'list' object has no attribute 'get'``), invalid JSON in json's message
    without the file's name. ``kind`` says what the file should be (``a sweep record``)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        detail = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise ValueError(f"{what}: {path} is not {kind} (expected a JSON object): {detail}") from None
    if not isinstance(value, dict):
        shown = json.dumps(value)
        raise ValueError(f"{what}: {path} is not {kind} (expected a JSON object): got "
                         f"{shown if len(shown) <= 40 else shown[:37] + '...'}")
    return value


def another_command(old: dict, new: dict) -> bool:
    """Whether recorded sweep settings ``old`` come from another command than ``new``: their
    ``command`` records share no option (a ``jaxscale sweep`` records its options, ``jaxscale
    run`` its study, ``jaxscale emergence`` none: its settings are in study.json). Why: a sweep
    on an emergence study's folder was refused as a changed setting (``--batch-size was None,
    now 16``), which reads as if the folder held a sweep."""
    a, b = old.get("command"), new.get("command")
    if not isinstance(a, dict) or not isinstance(b, dict) or (not a and not b):
        return False
    return not set(a) & set(b)


def difference(old: dict, new: dict) -> str | None:
    """The first difference between recorded sweep settings ``old`` and ``new``, in words (None
    when they are the same)."""
    old, new = json.loads(json.dumps(old)), json.loads(json.dumps(new, default=str))
    for section in ("command", "mode", "data", "settings", "models"):
        a, b = old.get(section), new.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    name = f"--{key.replace('_', '-')}" if section == "command" else f"{section}.{key}"
                    return f"{name} was {a.get(key)!r}, now {b.get(key)!r}"
        return f"{section} differs ({'corpus/task fingerprint' if section == 'data' else section})"
    return None


