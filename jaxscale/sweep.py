"""Sweeps: sizes × seeds × learning rates × budgets, planned into stacks, rows written as each
stack finishes, final weights saved, and the best learning rate per (size, budget) selected on
the validation split.

Output folder layout:
  results.jsonl      one row per trained model (appended as each group finishes)
  plan.json          the groups the planner chose, with the device profile and cost estimates
  weights/<group>/   orbax (v1) checkpoint of {run_id: true-shape parameters} for the group
  sweep.json         the settings of the sweep, compared on resume
  checkpoints/<group>/  training snapshots of an unfinished group (orbax v1, atomic); rows.json
                     of a finished group
  selected.jsonl     with --select best-lr: the run_ids chosen per (size, budget)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import jax

from jaxscale.checkpoint import ORBAX_LOCK, GroupCheckpoint
from jaxscale.compile_cache import check_plan_for
from jaxscale.config import ModelConfig
from jaxscale.data.source import TrainData
from jaxscale.devices import barrier, host_mesh_shape, is_writer
from jaxscale.sweep_lanes import run_lanes
from jaxscale.group_setup import prepare_group
from jaxscale.device_profile import DeviceProfile, calibrate
from jaxscale.folders import output_folder
from jaxscale.planner import Group
from jaxscale.results import _jsonable, append_rows, read_rows
from jaxscale.runner import GroupResult, ModelSpec, RunSettings, run_id_for, train_group
from jaxscale.sweep_folder import WEIGHTS_DIR, check_folder, read_record, sweep_record, write_json
from jaxscale.sweep_plan import plan_sweep
from jaxscale.train import Budget, OptimConfig



def repeated(values: Sequence) -> list:
    """The values given more than once, each once, in order of first repeat: a sweep, a bench or
    a study refuses them (the same model trained twice)."""
    values = list(values)
    return list(dict.fromkeys(v for j, v in enumerate(values) if v in values[:j]))


def expand(cfgs: Sequence[ModelConfig], *, seeds: Sequence[int] = (0,), lrs: Sequence[float] = (1e-3,),
           budgets: Sequence[Budget] = (Budget("steps", 100),), optim: OptimConfig = OptimConfig()) -> list[ModelSpec]:
    """Every (config, budget, learning rate, seed) combination, in that nesting order.

    A repeated value in any of the four is refused: it would train the same model twice, for two
    identical rows that a fit counts once (``fit.sources``) and ``--select best-lr`` sees as a
    tie."""
    for name, values in (("sizes", cfgs), ("seeds", seeds), ("lrs", lrs), ("budgets", budgets)):
        if not values:
            raise ValueError(f"sweep: {name} is empty")
        if repeated(values):
            shown = [v.name if isinstance(v, ModelConfig) else f"{v.kind} {v.value:g}" if isinstance(v, Budget) else v
                     for v in repeated(values)]
            raise ValueError(f"sweep: {name} must not repeat; given more than once: {shown}")
    return [ModelSpec(cfg, seed, dataclasses.replace(optim, lr=lr), budget)
            for cfg, budget, lr, seed in itertools.product(cfgs, budgets, lrs, seeds)]


@dataclass(frozen=True)
class SweepResult:
    rows: list
    groups: list
    out: Path | None


def run_sweep(specs: Sequence[ModelSpec], data: TrainData, settings: RunSettings = RunSettings(), *,
              mode: str = "auto", out: str | os.PathLike | None = None, save_weights: bool = True,
              profile: DeviceProfile | None = None, row_hook: Callable[[dict, ModelSpec, GroupResult, int], None] | None = None,
              checkpoint_every: int | None = None, should_stop=None, record: dict | None = None,
              log=None, lanes: int | None = None, plan_for: str = "auto") -> SweepResult:
    """Plan ``specs`` into groups and train them; ``row_hook(row, spec, group_result, i)`` may add
    fields (e.g. task metrics) to each row before it is written.

    With ``out``, the sweep is resumable: rerunning it on the same folder skips finished groups,
    resumes an unfinished one from its last checkpoint (saved every ``checkpoint_every`` steps,
    at the end of each group, and when ``should_stop()`` turns true), and ends with the same rows
    as an uninterrupted run. A rerun whose settings (``record`` plus the models, data and run
    settings) differ from those recorded in ``out/sweep.json`` is refused, naming the setting,
    unless nothing was trained there yet (``_trained_anything``): then the recorded settings and
    plan are replaced, so that a bad setting caught only once the sweep started (a sequence
    longer than the models' context, a batch out of memory) does not lock the folder to it.
    A folder that holds another command's results (``_foreign_results``) is refused: the
    sweep's rows would be mixed with them.
    ``log`` gets the plan and a line per group (default: the ``sys.stdout`` of the moment).
    ``lanes``: groups trained at once, in threads (None: the planner's default for this host, one
    per core on a single-device CPU, else one; see ``planner``); ignored when ``profile`` is given.
    ``plan_for`` (``auto``, ``reruns`` or ``once``): whether the plan is made for later runs
    that load this run's programs too, or for this run alone; ``auto`` (default) plans for
    reruns exactly when a persistent cache is on (``sweep_plan.plan_sweep``). A resumed sweep
    keeps the plan it recorded.
    """
    log = log or sys.stdout
    if not specs:
        raise ValueError("run_sweep: no models")
    if repeated(specs):  # the same model twice: two identical rows (``expand``)
        raise ValueError(f"run_sweep: `specs` holds the same model more than once: "
                         f"{[s.label for s in repeated(specs)]}")
    check_plan_for(plan_for, "run_sweep")  # before anything is written, and on a resume too
    out_path = Path(out) if out is not None else None
    recorded = sweep_record(specs, data, settings, mode, record)
    plan_file = out_path / "plan.json" if out_path is not None else None
    replan = out_path is not None and check_folder(out_path, recorded, log)  # stale sweep.json and plan
    resume_plan = plan_file is not None and plan_file.exists() and not replan
    # Several processes: every process has read the folder before process 0 writes sweep.json
    # and plan.json below; one still reading could see them half-way (a stale sweep.json already
    # replaced, or a plan.json written this run) and plan otherwise, then wait for ever in
    # collectives the others never enter. Nothing on one process.
    barrier("jaxscale-sweep-folder-read")
    if resume_plan:
        plan = read_record(plan_file, "--out", "a sweep plan")
        try:
            groups = [Group(**{k: (tuple(v) if k in ("indices", "shared", "eval_shared") else v)
                               for k, v in g.items() if k != "models"})
                      for g in plan["groups"]]
        except (KeyError, TypeError, AttributeError) as err:  # a plan.json edited or written by hand
            raise ValueError(f"--out: {plan_file} is not a sweep plan (its groups cannot be read: "
                             f"{type(err).__name__}: {err})") from None
        _check_meshes(groups, data, settings)
        print(f"resuming the sweep in {out_path} ({len(groups)} groups planned)", file=log)
    else:
        profile = profile or calibrate(measure=mode == "auto", lanes=lanes)
        made = plan_sweep(specs, data, settings, profile, mode, plan_for)
        groups = made.groups
        _check_meshes(groups, data, settings)  # a bad --batch-shards is refused before anything is written
        print(made.summary, file=log)
        if out_path is not None and is_writer():
            output_folder(out_path, "out")
            write_json(out_path / "sweep.json", recorded)
            write_json(plan_file, {
                "mode": mode, "profile": dataclasses.asdict(made.profile), "data": data.info,
                "plan_for": plan_for, "planned_steps": made.planned_steps, "reruns": made.reruns,
                "groups": [{**dataclasses.asdict(g), "models": [specs[i].label for i in g.indices]} for g in groups]})
    written = _written_run_ids(out_path)

    def checkpoint_of(g: Group) -> GroupCheckpoint | None:
        return GroupCheckpoint(out_path / "checkpoints" / g.id) if out_path is not None else None

    def finished(g: Group) -> bool:
        ckpt = checkpoint_of(g)
        if ckpt is not None and (ckpt.folder / "rows.json").exists():
            return True
        ids = [run_id_for(specs[i], data, settings.data_seed, g.id, j) for j, i in enumerate(g.indices)]
        return out_path is not None and all(i in written for i in ids)

    # compile_ahead "auto": a CPU only loads programs ahead (compiling there fights the training
    # for the cores); an accelerator's host compiles while the device trains (RunSettings)
    load_only = settings.compile_ahead == "auto" and jax.devices()[0].platform == "cpu"

    def shared_of(g: Group) -> list | None:
        return [specs[i] for i in g.shared] if g.shared else None

    def eval_shared_of(g: Group) -> list | None:
        return [specs[i] for i in g.eval_shared] if g.eval_shared else None

    def prepare(g: Group):  # in the background, while the group before it trains
        return prepare_group([specs[i] for i in g.indices], data, settings, mode=g.mode, stack_id=g.id,
                             checkpoint=checkpoint_of(g), shared=shared_of(g),
                             eval_shared=eval_shared_of(g)).compile(only_stored=load_only)

    lock = threading.RLock()  # the rows file, `written` and the log, shared by the lanes
    abort = threading.Event()  # a lane failed: the others checkpoint and stop

    def stop_now() -> bool:
        return abort.is_set() or (should_stop is not None and should_stop())

    def run_group(g: Group, prepared, lane: int | None = None, wait=None, on_compiled=None) -> list:
        group_specs = [specs[i] for i in g.indices]
        ckpt = checkpoint_of(g)
        done_file = ckpt.folder / "rows.json" if ckpt is not None else None
        with lock:
            if done_file is None or not done_file.exists():
                if finished(g):
                    return [written[run_id_for(s, data, settings.data_seed, g.id, j)]
                            for j, s in enumerate(group_specs)]
        if done_file is not None and done_file.exists():
            group_rows = json.loads(done_file.read_text())
        else:
            result = train_group(group_specs, data, settings, mode=g.mode, stack_id=g.id, checkpoint=ckpt,
                                 checkpoint_every=checkpoint_every, should_stop=stop_now, prepared=prepared,
                                 shared=shared_of(g), eval_shared=eval_shared_of(g), wait=wait,
                                 on_compiled=on_compiled)
            group_rows = result.rows
            for i, (row, spec) in enumerate(zip(group_rows, group_specs)):
                row["stack"]["planned_seconds"] = g.estimated_s
                row["stack"]["lane"] = g.lane if lane is None else lane
                if row_hook is not None:
                    row_hook(row, spec, result, i)
            if out_path is not None and save_weights:
                # every process saves: orbax's save is a collective (called by process 0 alone,
                # it hung); each holds the whole final state (``runner``: gathered to every host)
                with ORBAX_LOCK:
                    save_group_weights(out_path / WEIGHTS_DIR / g.id,
                                       {row["run_id"]: result.params(i) for i, row in enumerate(group_rows)})
            if out_path is not None and is_writer():
                ckpt.folder.mkdir(parents=True, exist_ok=True)
                # the group's rows, before they are appended; converted as results.jsonl converts
                # them (``_jsonable``), so that a row a resume appends from here is the same row
                write_json(done_file, _jsonable(group_rows))
            with lock:
                _report_group(g, group_rows, log)
        with lock:
            if out_path is not None and is_writer():
                append_rows(out_path / "results.jsonl", [r for r in group_rows if r["run_id"] not in written])
                written.update({r["run_id"]: r for r in group_rows})
                _clear_checkpoint_arrays(ckpt)
        return group_rows

    n_lanes = 1 + max(g.lane for g in groups)
    rows_of: dict[str, list] = {}
    if n_lanes > 1 and jax.process_count() == 1:
        run_lanes(groups, n_lanes, run_group, rows_of, abort)
        return SweepResult([r for g in groups for r in rows_of[g.id]], groups, out_path)

    ahead = ThreadPoolExecutor(1, thread_name_prefix="jaxscale-ahead") \
        if settings.compile_ahead is not False and len(groups) > 1 and jax.process_count() == 1 else None
    futures: dict[str, Future] = {}
    try:
        for n, g in enumerate(groups):
            upcoming = next((h for h in groups[n + 1:] if not finished(h)), None)
            if ahead is not None and upcoming is not None and upcoming.id not in futures and not finished(g):
                futures[upcoming.id] = ahead.submit(prepare, upcoming)
            rows_of[g.id] = run_group(g, futures.pop(g.id).result() if g.id in futures else None)
    finally:
        if ahead is not None:  # an interrupted sweep waits for a compile under way, then drops it
            ahead.shutdown(wait=True, cancel_futures=True)
    return SweepResult([r for g in groups for r in rows_of[g.id]], groups, out_path)


def _check_meshes(groups: Sequence[Group], data: TrainData, settings: RunSettings) -> None:
    """Refuse ``settings.batch_shards`` where a group's mesh cannot hold it (``devices.mesh_shape``),
    naming the flag that sets it."""
    for g in groups:
        stacked = g.mode == "stack"
        try:
            host_mesh_shape(len(g.indices) if stacked else 1, data.batch_size, stacked=stacked,
                            batch_shards=settings.batch_shards)
        except ValueError as err:
            raise ValueError(f"--batch-shards (RunSettings.batch_shards): {err}") from None


MAX_RATES_SHOWN = 8  # a stack's per-model rates printed in its line (all of them are in the rows)


def _report_group(g: Group, group_rows: list, log) -> None:
    """The group's line: compile, wall, tokens/s in total and, for a stack, of each model (its own
    tokens over the group's wall: a model stopped early trained fewer)."""
    s = group_rows[0]["stack"]
    wall = max(group_rows[0]["wall_seconds"], 1e-9)
    total_tokens = sum(r["tokens"] for r in group_rows)
    per_model = ""
    if len(group_rows) > 1:
        shown = " ".join(f"{r['tokens'] / wall:,.0f}" for r in group_rows[:MAX_RATES_SHOWN])
        more = f" (+{len(group_rows) - MAX_RATES_SHOWN})" if len(group_rows) > MAX_RATES_SHOWN else ""
        per_model = f" (per model {shown}{more})"
    waited = s.get("waited_seconds") or 0.0
    waited = f", waited {waited:.1f}s for another lane's compile" if waited >= 0.05 else ""
    print(f"{g.id} done: {len(group_rows)} model(s), compile {s['compile_seconds'] or 0:.1f}s{waited}, "
          f"wall {group_rows[0]['wall_seconds']:.1f}s (planned {g.estimated_s:.1f}s), "
          f"{total_tokens / wall:,.0f} tok/s total{per_model}, "
          f"padded-FLOP util {s['padded_flops_util']:.1%}", file=log)


def _clear_checkpoint_arrays(ckpt: GroupCheckpoint | None) -> None:
    """A finished group needs only its rows.json; drop its training snapshots."""
    if ckpt is None or not ckpt.folder.exists():
        return
    for child in ckpt.folder.iterdir():
        if child.name != "rows.json":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


def _written_run_ids(out_path: Path | None) -> dict:
    if out_path is None or not (out_path / "results.jsonl").exists():
        return {}
    return {r["run_id"]: r for r in read_rows(out_path / "results.jsonl")}


def budget_key(row: dict) -> str:
    return json.dumps(row.get("budget") or {"kind": "steps", "value": row["steps"]}, sort_keys=True)


def select_best_lr(rows: Sequence[dict], metric: str = "val_loss") -> list[dict]:
    """Per (size, budget), the learning rate whose seed-mean ``metric`` is lowest (diverged runs
    excluded); returns every row (all seeds) of the chosen learning rate."""
    by_key: dict[tuple, dict[float, list[dict]]] = {}
    for r in rows:
        by_key.setdefault((r["name"], budget_key(r)), {}).setdefault(r["lr"], []).append(r)
    chosen = []
    for per_lr in by_key.values():
        scored = [(sum(r[metric] for r in rs) / len(rs), lr) for lr, rs in per_lr.items()
                  if all(not r["diverged"] and r[metric] is not None for r in rs)]
        if scored:
            chosen.extend(per_lr[min(scored)[1]])
    return chosen


# ----- weights -----------------------------------------------------------------------------------

def save_group_weights(path: Path, params_by_run: dict) -> None:
    """Save a group's final weights at ``path``, replacing a folder already there.

    Why replace: a sweep saves a group's weights before its ``rows.json``, so a sweep killed
    between the two left weights of a group that counts as unfinished; the resume trains the
    group again (to the same numbers) and saves again, and orbax v1 refuses a destination that
    exists unless told to overwrite ("Destination ... already exists"), which failed that sweep at
    every resume. The sweep saves only for a group without rows.json, whose weights folder, if
    any, is such a stale one.

    On several processes every process calls it, with the same weights and path (on a
    filesystem every process sees): orbax's save is a collective, in which process 0 writes."""
    from orbax.checkpoint import v1 as ocp

    ocp.save(path.resolve(), {rid: {k: v for k, v in p.items()} for rid, p in params_by_run.items()},
             overwrite=True)


def load_weights(out_dir: str | os.PathLike, name: str, *, seed: int | None = None, lr: float | None = None,
                 run_id: str | None = None) -> tuple[ModelConfig, dict, dict]:
    """(config, parameters, row) of a trained model of a sweep folder, found by name (and seed,
    learning rate or run id where the name is not unique). A bare size name (``l1``) finds a
    family's model (``ladder/l1``), as model names do everywhere else; where it names sizes of
    several families, the models of all of them match."""
    from orbax.checkpoint import v1 as ocp

    out = Path(out_dir)

    def named(r) -> bool:
        return r["name"] == name or ("/" not in name and r["name"].rsplit("/", 1)[-1] == name)

    rows = [r for r in read_rows(out / "results.jsonl")
            if (named(r) or run_id is not None) and (seed is None or r["seed"] == seed)
            and (lr is None or r["lr"] == lr) and (run_id is None or r["run_id"] == run_id)]
    if not rows:
        raise ValueError(f"no trained model named {name!r} (seed={seed}, lr={lr}, run_id={run_id}) in {out}")
    if len(rows) > 1:
        raise ValueError(f"{len(rows)} models match {name!r}; give seed=, lr= or run_id=: "
                         f"{[(r['seed'], r['lr'], r['run_id']) for r in rows]}")
    row = rows[0]
    path = out / WEIGHTS_DIR / row["stack"]["id"]
    if not path.exists():
        raise FileNotFoundError(f"weights of {name!r} were not saved ({path} missing; was --no-save-weights used?)")
    tree = ocp.load(path.resolve())
    return ModelConfig.from_dict(row["config"]), dict(tree[row["run_id"]]), row
