"""When a plan's groups run: the order lanes take them in, the lane each gets, and the plan's
estimated wall time (``planner`` makes the groups; ``sweep_lanes`` runs them the same way).

A lane takes the groups that compile their program first, then the longest estimate first; a
group whose program another group compiles starts no earlier than that compile ends.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from jaxscale.planner import Group


def queue_order(groups: Sequence[Group]) -> list[Group]:
    """The order in which lanes take groups (the sweep's ``sweep_lanes.run_lanes`` and the estimates alike):
    the groups that compile their program first, then longest estimate first (stable: plan order
    among equals). A group whose program another compiles (``Group.compiled_by``) can only start
    once that compile is done, so its compiler must be taken before it."""
    return sorted(groups, key=lambda g: (not g.compiles, -g.estimated_s))


def _timeline(groups: Sequence[Group], lanes: int | None = None) -> tuple[dict[str, int], dict[int, float]]:
    """(lane of each group id, end time of each lane): the groups taken in ``queue_order``, each by
    its own lane (``lanes`` None) or by the lane free first (ties: the lowest), starting when the
    lane is free and, for a group whose program another compiles, no earlier than that compile
    ends (the compiler's start + ``compile_seconds``): a model of a shared program waits for the
    member that compiles it (the sweep's lanes make it wait)."""
    free: dict[int, float] = {j: 0.0 for j in range(lanes)} if lanes is not None else {}
    ready: dict[str, float] = {}  # group id -> when its compile (or load) ends
    lane_of: dict[str, int] = {}
    for g in queue_order(groups):
        lane = min(free, key=lambda j: (free[j], j)) if lanes is not None else g.lane
        start = max(free.get(lane, 0.0), ready.get(g.compiled_by, 0.0) if g.compiled_by else 0.0)
        ready[g.id] = start + g.compile_seconds
        free[lane] = start + g.estimated_s
        lane_of[g.id] = lane
    return lane_of, free


def schedule(groups: Sequence[Group], lanes: int) -> list[Group]:
    """The groups with lanes assigned, as the sweep's lanes take them (``queue_order``: compiling
    groups first, then longest first), each to the lane free first (ties: the lowest lane), so
    that the lanes end as close together as this greedy rule gets. A group waiting for another's
    compile (``Group.compiled_by``) keeps its lane idle until then."""
    lane_of, _ = _timeline(groups, lanes)
    return [replace(g, lane=lane_of[g.id]) for g in groups]


def plan_seconds(groups: Sequence[Group]) -> float:
    """Estimated wall time of a scheduled plan: its longest lane (its groups taken in
    ``queue_order``, a group waiting for another's compile idling its lane until then), and at
    least what the cores can do: FLOP-bound time keeps every core busy (the FLOP rate was measured
    so), the rest (compile, overhead, memory passes) about one core per lane, so with L lanes the
    plan takes at least Σ FLOP time + Σ other time / L."""
    _, loads = _timeline(groups)
    flop = sum(g.flop_seconds for g in groups)
    other = sum(g.estimated_s for g in groups) - flop
    return max(max(loads.values(), default=0.0), flop + other / max(len(loads), 1))
