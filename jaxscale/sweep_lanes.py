"""A sweep's lanes: several groups trained at once, one per host thread.

On a CPU a program of the notebook's batch-of-one models keeps about one core busy, so a sweep
trains several groups at once (``planner`` assigns each a lane and estimates the plan by its
lanes). Here the lanes run: each takes the next group from one queue as soon as it is free, and a
group whose program another group compiles waits for that compile.
"""

from __future__ import annotations

import threading
from typing import Sequence

from jaxscale.lane_schedule import queue_order
from jaxscale.planner import Group
from jaxscale.runner import Interrupted


def run_lanes(groups: Sequence[Group], n_lanes: int, run_group, rows_of: dict, abort: threading.Event) -> None:
    """Train the groups on ``n_lanes`` threads at once (JAX releases the GIL while a program
    runs), each lane taking the next group as soon as it is free, longest estimate first.

    Why not each group on the lane the plan gave it: the plan balances the lanes by estimates at
    each model's earliest early stop (``sweep_plan.planning_steps``), and early stops fall
    unevenly (notebook-emergence's models stopped after 7 to 9 of their 20 epochs), so the fixed
    lanes ended seconds apart.
    Taking groups from one queue, longest first, is the plan's own greedy rule applied to the
    times as they turn out. Groups that compile their program go first: a compile's time is
    known, a training time at full budget may be cut short by an early stop, and a group
    whose program another group compiles (``Group.compiles``) can only start when that is done
    (measured on notebook-emergence's three-program plan, the longest-first queue left the
    {micro, tiny} program's compile for the end of one lane, which ended 5 s after the other).
    Such a group (``planner.Group.compiled_by``) waits, once set up, until its compiler's
    programs are compiled or loaded (``run_group``'s ``wait`` and ``on_compiled``, given to the
    groups they concern only), as the plan's estimate has it (``lane_schedule.schedule``); its row
    records the wait as ``stack.waited_seconds``, not as its compile.
    ``run_group(g, None, lane)`` trains one group. A lane that fails sets ``abort``: the others
    checkpoint at their next dispatch and stop (``Interrupted``); the first failure that was not
    such a stop is raised."""
    errors: list[BaseException] = []
    queue = queue_order(groups)  # compiling groups first, then longest first (stable: plan order among equals)
    take = threading.Lock()
    compiler = compilers(groups)
    ready = {c: threading.Event() for c in compiler.values()}  # a compiler's programs are compiled or loaded

    def waiter(c: str):
        def wait() -> None:
            while not ready[c].wait(0.05):
                if abort.is_set():
                    break
            if abort.is_set():  # another lane failed or stopped: nothing here has started yet
                raise Interrupted(0, None)
        return wait

    def lane(j: int) -> None:
        try:
            while not abort.is_set():
                with take:
                    if not queue:
                        return
                    g = queue.pop(0)
                hooks = {}
                if g.id in compiler:
                    hooks["wait"] = waiter(compiler[g.id])
                if g.id in ready:
                    hooks["on_compiled"] = ready[g.id].set
                try:
                    rows_of[g.id] = run_group(g, None, j, **hooks)
                except BaseException:
                    abort.set()  # before its waiters wake: they stop rather than compile its program
                    raise
                finally:
                    if g.id in ready:  # done, failed, or finished by an earlier run: waiters go on
                        ready[g.id].set()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)
            abort.set()

    threads = [threading.Thread(target=lane, args=(j,), name=f"jaxscale-lane{j}") for j in range(n_lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next((e for e in errors if not isinstance(e, Interrupted)), errors[0])
    missing = [g.id for g in groups if g.id not in rows_of]
    if missing:
        raise RuntimeError(f"sweep: groups {missing} did not run")


def compilers(groups: Sequence[Group]) -> dict[str, str]:
    """For each group whose training program another group of the plan compiles, that group's
    id: ``Group.compiled_by``, or, in a plan recorded before it existed, the group of its shared
    set that compiles (``Group.compiles``)."""
    ids = {g.id for g in groups}
    by_set = {g.shared: g.id for g in groups if g.shared and g.compiles}
    out = {}
    for g in groups:
        if g.compiles:
            continue
        c = g.compiled_by or by_set.get(g.shared)
        if c is not None and c in ids and c != g.id:
            out[g.id] = c
    return out
