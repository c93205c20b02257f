"""Timing compiled training programs in steady state, for ``bench.py``.

A program (a stack, or one model alone) is built through the engine's ``make_train_chunk``,
compiled by its first dispatch (timed separately), then timed dispatch by dispatch, synchronised
with ``jax.block_until_ready``. Several programs are timed round-robin so that a shared machine's
slow spells fall on all of them alike. Compilations are counted with JAX's monitoring event, so
that a recompile after the first dispatch is reported rather than silently timed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Sequence

# ----- compile counting ------------------------------------------------------------------------------

class _CompileCounter:
    """Counts XLA backend compilations (JAX's monitoring event), process-wide."""

    count = 0
    _registered = False

    @classmethod
    def ensure(cls) -> None:
        if cls._registered:
            return
        import jax

        def listener(event, duration, **kwargs):
            if event == "/jax/core/compile/backend_compile_duration":
                cls.count += 1

        jax.monitoring.register_event_duration_secs_listener(listener)
        cls._registered = True


# ----- timing one group -----------------------------------------------------------------------------

@dataclass
class GroupTiming:
    """One compiled program (a stack, or one model alone) timed in steady state."""

    names: list
    seeds: list
    mode: str                  # "stack" or "alone"
    k: int
    envelope: str
    steps_per_dispatch: int
    first_dispatch_s: float    # compile + one dispatch of steps_per_dispatch steps
    compile_s: float           # first_dispatch_s − the steady time of one dispatch
    compiles_first: int        # backend compilations during the first dispatch (0: program reused)
    recompiles: int            # backend compilations after the first dispatch (must be 0)
    step_s: list               # per-step seconds, one sample per timed dispatch
    padded_flops_util: float
    profile: dict | None = None  # op_profile.op_table of one traced dispatch (bench --profile)
    env: object = None           # the config the program runs at (a stack's or shared program's envelope)
    fast_compile: bool = False   # compiled the fast way, as the sweep compiles it (compile_mode.py)

    @property
    def step_s_median(self) -> float:
        return statistics.median(self.step_s)

    def summary(self) -> dict:
        s = sorted(self.step_s)
        # "inclusive": the quartiles of the samples themselves; the default "exclusive" method
        # extrapolates past them for small samples (with 2 repeats, an IQR of 1.5x the range)
        q = statistics.quantiles(s, n=4, method="inclusive") if len(s) >= 2 else [s[0], s[0], s[0]]
        return {"models": self.names, "seeds": self.seeds, "mode": self.mode, "k": self.k,
                "envelope": self.envelope, "steps_per_dispatch": self.steps_per_dispatch,
                "first_dispatch_s": self.first_dispatch_s, "compile_s": self.compile_s,
                "compiles_first_dispatch": self.compiles_first, "recompiles_after_first": self.recompiles,
                "step_ms": {"median": 1e3 * self.step_s_median, "min": 1e3 * s[0], "max": 1e3 * s[-1],
                            "iqr": 1e3 * (q[2] - q[0]), "spread_pct": 100 * (s[-1] - s[0]) / self.step_s_median,
                            "repeats": len(s)},
                "padded_flops_util": self.padded_flops_util, "fast_compile": self.fast_compile,
                "profile": self.profile}


class _GroupRunner:
    """One program ready to time: state built, first dispatch (compilation) done."""

    def __init__(self, cfgs: Sequence, seeds: Sequence[int], data, optim, *, stacked: bool,
                 steps_per_dispatch: int, max_repeats: int, padded_to=None, fast_compile: bool = False):
        import jax
        import numpy as np

        from jaxscale.data.stream import data_key
        from jaxscale.group_setup import initial_state
        from jaxscale.stack import envelope, padded_flops_utilisation, stack_trees
        from jaxscale.train import Hyper, flat_state_host, layout_for, make_train_chunk

        if not stacked and len(cfgs) != 1:
            raise ValueError("time_group: a model alone means one config")
        _CompileCounter.ensure()
        self.cfgs, self.seeds, self.stacked = list(cfgs), list(seeds), stacked
        # padded_to: one model alone at a shared program's envelope (planner.Group.shared)
        self.env = envelope(cfgs) if stacked else padded_to or cfgs[0]
        n = self.n = int(steps_per_dispatch)
        big = 2**30  # budgets far beyond the measurement, so no model freezes
        hypers = [Hyper.make(optim, big) for _ in cfgs]
        hyper = jax.device_put(stack_trees(hypers) if stacked else hypers[0])
        state, dims = initial_state(cfgs, seeds, self.env, optim, stacked=stacked, padded=padded_to is not None)
        state = jax.device_put(flat_state_host(state, layout_for(self.env, optim.decay_all)))
        self.fast = bool(fast_compile)  # the sweep's compile choice for this program (``group_setup.program_fast``)
        self.chunk = make_train_chunk(self.env, optim, data.sampler, n, stacked=stacked, fast_compile=self.fast)
        self.args = (hyper, dims, data.arrays, data_key(0))
        self.starts = [jax.device_put(np.int32(i * n)) for i in range(max_repeats + 2)]  # made before timing
        self.count = jax.device_put(np.int32(n))
        jax.block_until_ready((state, self.args, self.starts, self.count))
        self.util = padded_flops_utilisation(cfgs, data.seq_len, env=self.env)
        c0 = _CompileCounter.count
        t0 = time.perf_counter()
        self.state, losses = self.chunk(state, *self.args, self.starts[0], self.count)
        jax.block_until_ready((self.state, losses))
        self.first = time.perf_counter() - t0
        self.compiles_first = _CompileCounter.count - c0
        self.times: list[float] = []
        self.recompiles = 0
        self.profile: dict | None = None

    def once(self) -> float:
        """One timed dispatch; returns and records seconds per step."""
        import jax

        c0 = _CompileCounter.count
        t0 = time.perf_counter()
        self.state, losses = self.chunk(self.state, *self.args, self.starts[len(self.times) + 1], self.count)
        jax.block_until_ready((self.state, losses))
        dt = (time.perf_counter() - t0) / self.n
        self.recompiles += _CompileCounter.count - c0
        self.times.append(dt)
        return dt

    def dispatch(self) -> None:
        """One untimed dispatch (for timings of several programs at once)."""
        import jax

        self.state, losses = self.chunk(self.state, *self.args, self.starts[-1], self.count)
        jax.block_until_ready((self.state, losses))

    def traced(self, folder, top: int) -> dict:
        """One more dispatch, under the profiler (not one of the timed samples): its op table."""
        from jaxscale import op_profile

        trace = op_profile.capture(self.dispatch, folder)
        events, names = op_profile.load_events(trace)
        return {**op_profile.op_table(events, names, steps=self.n, top=top), "trace": str(trace)}

    def timing(self) -> GroupTiming:
        med = statistics.median(self.times)
        return GroupTiming([c.name for c in self.cfgs], self.seeds, "stack" if self.stacked else "alone",
                           len(self.cfgs), self.env.name, self.n, self.first,
                           max(self.first - med * self.n, 0.0), self.compiles_first, self.recompiles, self.times,
                           self.util, self.profile, self.env, self.fast)


def time_groups(groups: Sequence[tuple[Sequence, Sequence[int], bool]], data, optim, *, steps_per_dispatch: int,
                repeats: int, log=None, profile_dir=None, profile_top: int = 15) -> list[GroupTiming]:
    """Time several programs ``(cfgs, seeds, stacked)`` side by side: each is compiled (its first
    dispatch timed), then the timed dispatches go round-robin (one dispatch of every program per
    round, ``repeats`` rounds), so a busy machine's slow spells fall on every program alike.
    ``profile_dir``: afterwards, one traced dispatch per program, its trace kept in a subfolder
    and its ``profile_top`` ops by time reported (``op_profile``)."""
    return time_plans(groups, data, optim, steps_per_dispatch=steps_per_dispatch, repeats=repeats, log=log,
                      profile_dir=profile_dir, profile_top=profile_top)[0]


def time_plans(groups: Sequence[tuple], data, optim, *, steps_per_dispatch: int,
               repeats: int, lanes_of: Sequence[Sequence[Sequence[int]]] = (), log=None, profile_dir=None,
               profile_top: int = 15, fast: Sequence[bool] = ()) -> tuple[list[GroupTiming], list[float]]:
    """``time_groups`` (each group ``(cfgs, seeds, stacked)`` or, for one model alone at a shared
    program's envelope, ``(cfgs, seeds, False, envelope)``), then for each entry of ``lanes_of`` (a plan's lanes, each a list of
    indices into ``groups``) the seconds of one step of all its models with the lanes running at
    once in threads, as a sweep runs them: per round every lane dispatches each of its programs
    once; the wall time of ``repeats`` rounds / (``repeats`` × steps per dispatch). ``fast``: per
    group, whether its program is compiled the fast way (default: none are)."""
    say = log or (lambda *_: None)
    runners = []
    fast = list(fast) or [False] * len(groups)
    if len(fast) != len(groups):
        raise ValueError(f"time_plans: `fast` holds {len(fast)} choices for {len(groups)} groups")
    for (cfgs, seeds, stacked, *padded_to), fast_compile in zip(groups, fast):
        padded_to = padded_to[0] if padded_to else None
        say(f"  compiling {'a stack of ' + str(len(cfgs)) if stacked else 'alone'}"
            f"{' (padded to a shared envelope)' if padded_to is not None else ''}"
            f"{' (fast compile)' if fast_compile else ''}: "
            f"{', '.join(f'{c.name} seed={s}' for c, s in zip(cfgs, seeds))}")
        runners.append(_GroupRunner(cfgs, seeds, data, optim, stacked=stacked, steps_per_dispatch=steps_per_dispatch,
                                    max_repeats=repeats, padded_to=padded_to, fast_compile=fast_compile))
    for _ in range(repeats):
        for r in runners:
            r.once()
    lane_steps = [_time_lanes([[runners[i] for i in lane] for lane in lanes], repeats) for lanes in lanes_of]
    if profile_dir is not None:
        from pathlib import Path

        for i, r in enumerate(runners):
            r.profile = r.traced(Path(profile_dir) / f"program{i:02d}", profile_top)
    return [r.timing() for r in runners], lane_steps


def _time_lanes(lanes: Sequence[Sequence["_GroupRunner"]], repeats: int) -> float:
    import threading

    def lane(rs):
        for _ in range(repeats):
            for r in rs:
                r.dispatch()

    threads = [threading.Thread(target=lane, args=(rs,)) for rs in lanes if rs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) / (repeats * lanes[0][0].n)


def time_group(cfgs: Sequence, seeds: Sequence[int], data, optim, *, stacked: bool, steps_per_dispatch: int,
               repeats: int) -> GroupTiming:
    """Time ``cfgs`` trained together as one padded stack (``stacked``) or, for one config, alone
    at its true shape, through the engine's ``make_train_chunk``."""
    return time_groups([(cfgs, seeds, stacked)], data, optim, steps_per_dispatch=steps_per_dispatch,
                       repeats=repeats)[0]

