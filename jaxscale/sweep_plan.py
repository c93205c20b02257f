"""How a sweep is planned: the steps each model is planned for, which programs earlier runs left
compiled, and the plan's printed summary (``planner.py`` holds the cost model and the search).

Whether a persistent cache keeps this run's programs (``compile_cache.programs_kept``) decides
what the plan is for, unless the caller says (``plan_for``): with one, every later run of the
sweep loads the same programs, so the plan is made for those runs too (a shared program's
padding counted for them); without one, for this run alone. Either way a run that can stop
early is planned at its earliest stop (``planning_steps``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import jax

from jaxscale import program_cache
from jaxscale.compile_cache import check_plan_for, programs_kept
from jaxscale.data.source import TrainData
from jaxscale.device_profile import DeviceProfile
from jaxscale.devices import mesh_shape
from jaxscale.stack import envelope
from jaxscale.group_setup import evaluation_flops, train_program_key
from jaxscale.planner import Group, plan, plan_seconds, program_count, share_evaluations
from jaxscale.early_stop import earliest_stop
from jaxscale.runner import ModelSpec, RunSettings


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's plan: its groups, the steps each model was planned for, whether it was made for
    later runs too, the summary printed before training, and the device profile it was costed
    on (the given one with its batch splits, ``with_batch_shards``)."""

    groups: list[Group]
    planned_steps: list[int]
    reruns: bool
    summary: str
    profile: DeviceProfile | None = None


def plan_sweep(specs: Sequence[ModelSpec], data: TrainData, settings: RunSettings, profile: DeviceProfile,
               mode: str, plan_for: str = "auto") -> SweepPlan:
    """Plan ``specs`` on ``profile`` in ``mode`` (``planner.plan``; in ``auto``, shared
    evaluations too, ``planner.share_evaluations``).

    ``plan_for``: ``reruns`` plans for this run and the later ones that load its programs,
    ``once`` for this run alone, ``auto`` (default) for reruns exactly when a persistent cache
    keeps the programs. ``once`` with the cache on suits a sweep that will not be run again
    with these model shapes and settings (a new seed, learning rate or data seed reuses the
    programs; a code change does not). Measured on the 2-core CPU (2026-12-03, eighteenth
    session, ``jaxscale bench --preset notebook-emergence --vs-torch --modes auto --repeats 3
    --e2e-repeats 3``, medians of three interleaved rounds, the cache on): ``once`` (two
    programs) 16.6 s cold and 10.0 s for its warm rerun; ``reruns`` (four programs) 22.8 s and
    7.7 s."""
    check_plan_for(plan_for, "plan_sweep")
    profile = with_batch_shards(profile, data.batch_size, settings.batch_shards, jax.process_count())
    steps = [s.budget.steps(s.cfg, data.batch_size, data.seq_len) for s in specs]
    reruns = programs_kept() if plan_for == "auto" else plan_for == "reruns"
    horizon = planning_steps(steps, settings, data)
    keys = program_keys(specs, data, settings)
    groups = plan(specs, horizon, data.tokens_per_step, profile, mode=mode,
                  stored=stored_programs(specs, data, settings, keys), reruns=reruns, seq_len=data.seq_len,
                  program_key=lambda indices, kind: keys(indices, kind) or (kind, indices))
    if mode == "auto":  # --mode sequential keeps every model at its true shape, evaluation included
        groups = share_evaluations(groups, specs, lambda cfg, i: evaluation_flops(cfg, steps[i], data, settings),
                                   profile)
    n_programs = program_count(groups, specs)
    summary = (f"plan ({mode}, {profile.platform} ×{profile.devices}, effective {profile.flop_rate / 1e9:.1f} GFLOP/s, "
               f"{len(groups)} group{'s' if len(groups) != 1 else ''}, {n_programs} "
               f"program{'s' if n_programs != 1 else ''}, {profile.lanes} lane{'s' if profile.lanes != 1 else ''}, "
               f"est. {plan_seconds(groups):.1f}s{horizon_note(steps, horizon, settings, plan_for, reruns)}):\n"
               f"{describe(groups, specs)}")
    return SweepPlan(groups, horizon, reruns, summary, profile)


def with_batch_shards(profile: DeviceProfile, batch_size: int, batch_shards: int | None,
                      processes: int = 1) -> DeviceProfile:
    """``profile`` costing a model alone and a stack at the batch split their groups will run with
    (``devices.mesh_shape`` on its device count and ``processes``)."""
    alone = mesh_shape(1, batch_size, profile.devices, stacked=False, batch_shards=batch_shards,
                       processes=processes)[1]
    stack = (mesh_shape(2, batch_size, profile.devices, stacked=True, batch_shards=batch_shards)[1]
             if batch_shards is None or profile.devices % batch_shards == 0 else 1)
    return dataclasses.replace(profile, alone_batch_shards=alone, stack_batch_shards=stack)


def planning_steps(steps: list[int], settings: RunSettings, data: TrainData) -> list[int]:
    """The steps each model is planned for: a run that can stop early is planned to stop at its
    earliest (``early_stop.earliest_stop``), any other at its whole budget.

    Why the earliest stop: where early stopping falls cannot be known before the run, but the
    notebook's rule ends a model as soon as its epoch loss is low enough, and the
    notebook-emergence models stopped after 7-9 of their 20 epochs, the earliest being 7. A later
    run of the same sweep (which loads the programs a cache kept) stops at the same steps: the
    same seeds, data and programs give the same losses. Planned at full budgets instead, 2.5x
    the steps trained, a shared program's padding looked 2.5x dearer than it is, so with a cache
    on the preset trained on four programs where two pay. Measured (2026-12-05, thirty-second
    session, ``jaxscale bench --preset notebook-emergence --vs-torch --modes auto --repeats 3
    --e2e-repeats 3``, three interleaved rounds, the cache on): the four programs planned at full
    budgets took 13.6 / 16.2 / 15.5 s cold and 5.1 / 6.2 / 4.9 s warm; the two planned at the
    earliest stop (then ``--plan-for once``) 9.9 / 11.9 / 10.5 s cold and 5.7 / 6.9 / 5.8 s warm:
    4-5 s less for the first run, 0.6-1.0 s more for each later one. Were a run to train on to
    its budget, a plan made so costs only the padding its fewer compiles traded, while its
    compiles are saved either way. (An earlier session planned at the earliest stop when stacks
    were the alternative to models alone: it chose stacks that were no faster cold and slower
    warm; shared programs have since replaced them on a CPU.)"""
    if not settings.early_stop or not data.steps_per_epoch:
        return list(steps)
    return [earliest_stop(n, settings.early_stop, data.steps_per_epoch) for n in steps]


def horizon_note(steps: list[int], horizon: list[int], settings: RunSettings, plan_for: str = "auto",
                 reruns: bool = False) -> str:
    """What the plan's estimate counts, for its printed line (``reruns``: the plan is also that of
    later runs that load its programs)."""
    if not settings.early_stop:
        return ""
    if horizon == list(steps):
        return " at full budgets; early stopping ends sooner"
    why = ("planned for this run alone (plan for: once)" if plan_for == "once"
           else "where a later run, which loads its programs, stops too" if reruns
           else "no cache keeps the programs, so the plan is for this run alone")
    return f" if early stopping ends every run at its earliest, step {min(horizon)}: {why}"


def program_keys(specs, data, settings) -> Callable[[tuple, str], tuple | None]:
    """The training program key of a group (``group_setup.train_program_key``: what the run keys
    its program by, dispatch length and compile choice included), memoised; None for a mesh the
    group cannot have (--batch-shards: a plan that keeps it is refused by name)."""
    memo: dict = {}

    def key(indices: tuple, kind: str) -> tuple | None:
        if (indices, kind) not in memo:
            try:
                memo[indices, kind] = train_program_key([specs[i] for i in indices], data, settings, kind)
            except ValueError:
                memo[indices, kind] = None
        return memo[indices, kind]

    return key


def stored_programs(specs, data, settings, keys=None) -> Callable[[tuple, str], bool]:
    """For the planner: whether a group's training program (``kind``: ``stack``, ``alone`` or
    ``shared``) was compiled on disk by an earlier run (``program_cache.note_stored``), so that
    it costs a load, not a compile. ``keys``: ``program_keys`` of these specs (made if None)."""
    keys = keys or program_keys(specs, data, settings)
    memo: dict = {}

    def stored(indices: tuple, kind: str) -> bool:
        if (indices, kind) not in memo:
            key = keys(indices, kind)  # None: a mesh this group cannot have; no program of it is stored
            memo[indices, kind] = key is not None and program_cache.is_stored("train_chunk", key)
        return memo[indices, kind]

    return stored


def _counted(names: Sequence[str]) -> str:
    """``a ×2, b`` for ``[a, a, b]``: a shared set of a large sweep names each size once."""
    return ", ".join(n if k == 1 else f"{n} ×{k}" for n, k in Counter(names).items())


def describe(groups: Sequence[Group], specs: Sequence) -> str:
    """The plan, one line per group. A set of models sharing a program is named in full once, on
    its first group; the others point to it (a sweep of 20 models on one program printed the 19
    others on each of its 20 lines)."""
    lines = []
    n_lanes = 1 + max((g.lane for g in groups), default=0)
    first_of: dict[tuple, str] = {}
    for g in groups:
        names = ", ".join(specs[i].label for i in g.indices)
        lane = f" lane {g.lane}" if n_lanes > 1 else ""
        share = ""
        if g.shared and g.shared in first_of:
            share = f" (padded to {g.envelope_name}, {first_of[g.shared]}'s program)"
        elif g.shared:
            first_of[g.shared] = g.id
            share = (f" (padded to {g.envelope_name}, one program for {len(g.shared)} models: "
                     f"{_counted([specs[i].cfg.name for i in g.shared])})")
        lines.append(f"  {g.id} {g.mode:<5} K={len(g.indices):<3}{lane} est {g.estimated_s:7.1f}s "
                     f"padded-FLOP util {g.padded_flops_util:5.1%}: {names}{share}")
    for members in dict.fromkeys(g.eval_shared for g in groups if g.eval_shared):
        env = envelope([specs[i].cfg for i in members])
        lines.append(f"  evaluated by one program at their envelope (d_model {env.d_model}, {env.n_layers} layers): "
                     f"{len(members)} models, {_counted([specs[i].cfg.name for i in members])}")
    return "\n".join(lines)
