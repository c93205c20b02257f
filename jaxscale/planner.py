"""The planner: group a sweep's models into stacks by a cost model of this device.

Cost of one group (one compiled program):

    compile_s × (stack_compile if a stack) + max_steps × step_s,
    step_s = overhead_s + K · (per_model_s + padded FLOPs per step / flop_rate
                               + padded parameters × param_s)

where padded FLOPs and parameters are those of the group's envelope (every model pays for the
largest), ``overhead_s`` is the per-step cost that does not grow with the model (dispatch, loop
control, small-kernel launches) and ``param_s`` the memory traffic of a step per parameter (the
optimiser's passes and the copies around the matmuls: on a CPU this, not the FLOPs, bounds the
notebook's batch-of-one models). A program is compiled once however many models it trains: models
alone whose programs have one key share it (one compile; the sweep keys them as its run does,
``group_setup.train_program_key``: one config trained to budgets that give it other dispatch
lengths or another fast-or-full compile choice makes a program per budget), and a vmapped stack's
program takes longer to compile than its model alone's (``stack_compile``). On an accelerator the
notebook's models are far below the FLOP rate, so ``overhead_s`` dominates and one big stack wins;
on a CPU a step of K models costs about K times a step of the envelope, so what stacking saves is
compile time and per-step overhead, against padding waste and its slower compile. ``auto``
searches every partition of each compatible bucket into groups that are contiguous in model cost
(dynamic programming, O(M²) segments, each a stack, a *shared program* (below) or, for one
config, a run of models alone) and keeps the cheapest; ``stack`` puts each compatible bucket in
one stack; ``sequential`` trains every model alone at its true shape.

**Shared programs** (a CPU's choice). Models of neighbouring sizes can also be trained alone,
one after another or on different lanes, by one compiled program at their envelope's shape:
each is padded to it and masked exactly as in a stack (it computes what it computes alone, to
float rounding), but a step costs one envelope step, not K, and the program compiles as fast
as one model's alone. On a CPU, where a compile costs seconds and a small model's step well
under a millisecond, that trades a little padding for whole compiles. But where a persistent
cache keeps the programs, the padding is paid again by every later run that loads the program,
so ``auto`` counts it twice against the compile it saves (``SHARED_PADDING_WEIGHT``); with the
caches off (``JAXSCALE_COMPILATION_CACHE=off``: every run compiles), or when a sweep is
planned for itself alone (``--plan-for once``), it counts once (``plan``'s ``reruns``). Either
way the sweep plans a run that can stop early for its earliest stop
(``sweep_plan.planning_steps``), where a later run stops too. Measured on the 2-core CPU (2026-12-02/03,
interleaved, noisy): cold ``jaxscale sweep --preset notebook-scaling`` took 4.8-4.9 s with its
five models on one shared program, against 5.8-6.9 s as one stack. For notebook-emergence,
sharing {micro, tiny} and {small, medium} (padding counted once) took 19.3-19.5 s cold with
both caches off, against 24.3-29.7 s for ``--mode sequential``'s five programs, but its warm
runs were slower (9.9-11.7 s against 8.3-9.3 s); counted twice, only {micro, tiny} share
(four programs): cold 28.2-29.7 s against 29.5-33.8 s, warm 8.7-9.2 s against 8.3-9.3 s, with
a fresh cache folder (an hour when the machine ran slow). Each such model is its own group
(``Group.shared`` names the set; the first compiles, ``Group.compiles``), so lanes train them at
once, once it has compiled: the others wait for that compile (``Group.compiled_by``), on their
lanes and in the estimate (below). Accelerators keep stacks: sharing was not measured there, and their per-step overhead
favours one vmapped program.

**Shared evaluations.** The held-out (and a task's) evaluation of a model alone is a program of
its own per shape: about half a second of compile on the 2-core CPU, against milliseconds to run
the notebook's evaluations. After planning, ``auto`` lets models alone of one bucket share one
evaluation program at their envelope, with masks, whenever the padding a model adds to the
set's evaluations costs less than that compile (``share_evaluations``). Measured on the 2-core
CPU (2026-12-03, interleaved pairs, both caches off): notebook-emergence's cold sweep took
20.9-24.8 s with its five models evaluated by one program, against 21.9-25.6 s with four.

**Lanes.** On a CPU a program of the notebook's batch-of-one models keeps about one core busy:
XLA runs its hundreds of small ops one after another. So a sweep trains several groups at once,
one per *lane* (a host thread), and the plan assigns each group a lane (longest first, to the
least loaded lane); when the sweep runs, each lane takes the next group, longest estimate first,
as soon as it is free, so that early stops rebalance the lanes (the row records the lane that
trained it). Groups that compile their program are taken first, in the plan as in the sweep, and
a group whose program another compiles (``Group.compiled_by``) starts no earlier than that
compile ends: its lane idles until then (``schedule``, ``plan_seconds``). Estimated otherwise,
notebook-scaling's five models on one shared program were planned at 6.5 s with four of them
starting at once on the second lane, which in fact waited 3.5 s for the first lane's compile. Measured on the 2-core CPU: notebook-emergence ``large`` and ``medium`` alone,
warm, in-process, 9.4 s one after another against 5.7 s in two threads, each model within 7% of
its time alone. The estimate of a plan is then the longest lane, but never less than the sum of
its groups' FLOP-bound time plus the rest of their time shared over the lanes (the FLOP rate
was measured with every core busy: FLOP-bound groups gain nothing from sharing the cores). ``auto`` keeps the cheapest by that estimate of the
partition above, every model alone, and one stack per bucket. Accelerators and runs over several
devices or processes use one lane (several programs on one device were not measured).

**Warm runs.** A group whose training program an earlier run compiled to disk (the program
cache notes each one under a key made from the models and settings alone, which ``sweep`` checks
before planning) costs ``load_s`` instead of its compile, so a second run may choose differently:
on the 2-core CPU the notebook-scaling preset runs as one stack cold (five compiles would cost
more than its 40 steps) and, once its five programs are on disk, as five models alone on two lanes.

The device profile (``jaxscale/device_profile.py``) comes from a documented table of effective
rates and compile times per platform, with the FLOP rate calibrated by a short matmul measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Hashable, NamedTuple, Sequence

from jaxscale.device_profile import DeviceProfile
from jaxscale.lane_schedule import plan_seconds, schedule  # (importable from here too)
from jaxscale.stack import envelope, stack_key

MODES = ("auto", "stack", "sequential")


@dataclass(frozen=True)
class Group:
    """Models trained together: ``mode`` is ``stack`` (one padded program) or ``alone``."""

    id: str
    indices: tuple[int, ...]
    mode: str
    envelope_name: str
    estimated_s: float
    padded_flops_util: float = 1.0
    notes: dict = field(default_factory=dict)
    lane: int = 0             # the host thread the estimate puts it on (a sweep's lanes take groups from a queue)
    flop_seconds: float = 0.0  # the FLOP-bound share of estimated_s
    # a model alone that shares one compiled program with the models ``shared`` (indices, its
    # own included): every one of them is padded to their envelope and trained alone by it, masks
    # making it compute what it computes at its true shape; () when not shared
    shared: tuple[int, ...] = ()
    compiles: bool = True     # False: an earlier group of the plan compiles (or loads) its program
    # the group that compiles (or loads) this one's program, when that is another (``compiles``
    # False): this group starts no earlier than that compile ends (``schedule``, ``plan_seconds``;
    # the sweep's lanes wait for it, ``sweep_lanes.run_lanes``)
    compiled_by: str | None = None
    compile_seconds: float = 0.0  # the compile (or load) share of estimated_s
    # a model alone whose held-out (and task) evaluation runs on one compiled program with the
    # models ``eval_shared`` (indices, its own included), at their envelope with masks
    # (``share_evaluations``); () when it is evaluated at the shape it trains at
    eval_shared: tuple[int, ...] = ()
    # estimated_s is the group's time with the device to itself: on several lanes a FLOP-bound
    # group shares the cores and takes longer, which ``plan_seconds`` accounts for (a plan total)


class StepTokens(NamedTuple):
    """What one model trains on in one step: ``tokens`` (batch × sequence length), in sequences
    of ``seq_len`` tokens (None: each config's context length).

    Why the sequence length: a step's attention FLOPs grow with it, so a model trained on
    sequences shorter than its context costs fewer FLOPs per token than ``flops_per_token()``
    at the context says (the notebook's emergence models: 4 tokens of a 16-token context)."""

    tokens: int
    seq_len: int | None = None

    def flops(self, cfg) -> float:
        """Training FLOPs of one step of ``cfg`` (one model)."""
        t = None if self.seq_len is None else min(self.seq_len, cfg.max_seq_len)
        return cfg.flops_per_token(seq_len=t).total * self.tokens


def estimate_train_seconds(cfgs, steps, profile: DeviceProfile, tokens_per_step: int, *, alone: bool,
                           seq_len: int | None = None) -> float:
    """Estimated training time of one group (compile excluded): its longest run × the step cost.
    ``seq_len``: the trained sequence length (None: the context length)."""
    return _train_seconds(cfgs, steps, profile, StepTokens(tokens_per_step, seq_len), alone=alone)


def _train_seconds(cfgs, steps, profile: DeviceProfile, step_tokens: StepTokens, *, alone: bool) -> float:
    env = cfgs[0] if alone else envelope(cfgs)
    return max(steps) * profile.step_seconds(step_tokens.flops(env), len(cfgs), env.param_counts().total)


def _group_cost(cfgs, steps, profile: DeviceProfile, step_tokens: StepTokens, *, alone: bool,
                compiled: bool = False, stored: bool = False) -> tuple[float, float]:
    """(estimated seconds, padded-FLOP utilisation) of one group; ``compiled``: its program was
    already compiled for an earlier group of the plan (a model alone whose program key, ``plan``'s
    ``program_key``, an earlier model alone has)."""
    env = cfgs[0] if alone else envelope(cfgs)
    useful = sum(step_tokens.flops(c) for c in cfgs) / (len(cfgs) * step_tokens.flops(env))
    compile_s = _compile_seconds(profile, alone=alone, compiled=compiled, stored=stored)
    return compile_s + _train_seconds(cfgs, steps, profile, step_tokens, alone=alone), useful


def _compile_seconds(profile: DeviceProfile, *, alone: bool, compiled: bool, stored: bool) -> float:
    """A group's compile (``load_s`` where an earlier run stored its program; none where an
    earlier group of the plan compiles it)."""
    return 0.0 if compiled else profile.load_s if stored else profile.compile_seconds(stacked=not alone)


def config_program(specs: Sequence) -> Callable[[tuple, str], Hashable]:
    """``plan``'s default ``program_key``: a model alone's program named by its config alone (so
    models of one config alone share one). Approximate: the sweep's own key
    (``group_setup.train_program_key``, passed by ``sweep_plan.plan_sweep``) also holds the
    dispatch length and the fast-or-full compile choice, which a model's budget changes."""
    return lambda indices, kind: (kind, specs[indices[0]].cfg) if kind == "alone" else (kind, tuple(indices))


def plan(specs: Sequence, steps: Sequence[int], tokens_per_step: int, profile: DeviceProfile,
         mode: str = "auto", max_stack: int = 64, stored: Callable[[tuple, str], bool] | None = None,
         reruns: bool = True, seq_len: int | None = None,
         program_key: Callable[[tuple, str], Hashable] | None = None) -> list[Group]:
    """Groups covering every spec exactly once, each with its lane; a lane runs its groups in
    plan order. ``stored(indices, kind)``: whether the training program of those models as
    ``kind`` (``"stack"``, ``"alone"``, or ``"shared"``: trained alone by one program at their
    envelope, ``Group.shared``) is already compiled on disk (a warm run), so that it costs
    ``load_s`` instead of a compile. ``reruns``: whether later runs will load the programs this
    run compiles (a persistent cache is on), so that a shared program's padding counts
    ``SHARED_PADDING_WEIGHT`` times against the compile it saves; False (no cache: every run
    compiles, and pays the padding, once), once. ``seq_len``: the trained sequence length, at
    which a step's FLOPs are counted (None: each config's context length). ``program_key(indices,
    kind)``: what tells the training programs of models alone apart (kind ``"alone"``, one index):
    models alone whose keys are equal share one program, compiled once (the sweep passes
    ``group_setup.train_program_key``, under which the run keys its programs: one config trained
    to several budgets can make several programs, their dispatch lengths or compile choices
    differing); default ``config_program`` (one program per config)."""
    step_tokens = StepTokens(tokens_per_step, seq_len)
    stored = stored or (lambda indices, kind: False)
    key_of = program_key or config_program(specs)
    if not isinstance(reruns, bool):
        raise ValueError(f"plan: `reruns` must be True or False, got {reruns!r}")
    padding_weight = SHARED_PADDING_WEIGHT if reruns else 1.0
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(specs) != len(steps):
        raise ValueError("plan: specs and steps differ in length")
    buckets: dict[tuple, list[int]] = {}
    for i, s in enumerate(specs):
        buckets.setdefault(stack_key(s.cfg), []).append(i)
    # equal configs next to each other, so that a run of them alone is one segment
    orders = [sorted(members, key=lambda i: (step_tokens.flops(specs[i].cfg), repr(specs[i].cfg), i))
              for members in buckets.values()]

    def groups_for(how: str) -> list[Group]:
        parts = []
        for order in orders:
            if how == "sequential":
                parts.extend([i] for i in order)
            elif how == "stack":
                parts.extend(order[j:j + max_stack] for j in range(0, len(order), max_stack))
            else:  # "auto", or "alone": the same search without stacks (its best plan for several lanes)
                parts.extend(_best_partition(order, specs, steps, step_tokens, profile, max_stack, stored,
                                             stacks=how == "auto", padding_weight=padding_weight,
                                             key_of=key_of))
        return schedule(_make_groups(parts, specs, steps, step_tokens, profile, stored, key_of), profile.lanes)

    if mode != "auto":
        return groups_for(mode)
    # the DP minimises the summed cost; with several lanes a plan of models alone (on shared
    # programs or not), all-alone or one stack may end sooner
    return min((groups_for(how) for how in ("auto", "alone", "sequential", "stack")), key=plan_seconds)


# How many times a shared program's padding is counted against the compiles it saves: the
# programs a run compiles are kept (the compilation and program caches), so the next run of the
# same sweep loads them and pays the padding again, while a compile is paid once. Counted once,
# notebook-emergence shared {small, medium} too: cold 19.0 s but warm 9.5 s (8.6x eager PyTorch's
# 81.3 s, against 7.3 s at true shapes), in `jaxscale bench --preset notebook-emergence --vs-torch`
# (2026-12-02, thirteenth session). Again on jemalloc (2026-12-03, sixteenth session, two
# interleaved cold-then-warm pairs with a fresh cache folder each): counted once, 17.8 / 19.5 s
# cold and 9.5 / 9.9 s warm; counted twice, 23.2 / 21.4 s cold and 7.9 / 8.1 s warm. With both
# caches off there is no warm run to protect: four interleaved pairs (2026-12-03, seventeenth
# session, jemalloc) took 20.1 / 17.2 / 16.4 / 14.7 s counted once (three programs) against
# 19.4 / 20.5 / 17.1 / 16.6 s counted twice (four).
# Which sets to share, measured directly (2026-12-03, twenty-first session, `jaxscale sweep --preset
# notebook-emergence` with the cache on, a fresh cache folder per plan, each plan's cold run then its
# warm rerun; four plans forced in turn by a temporary patch of the partition search, two batches
# of four rounds, in seconds): the default's four programs ({micro, tiny}, small, medium,
# large) 18.5-22.0 cold and 6.6-8.4 warm in the first batch, 16.8-17.9 and 6.4-7.0 in the second;
# {micro, tiny, small}, medium, large 16.0-18.5 / 6.6-8.3, then 15.0-18.4 / 6.9-7.7; {micro,
# tiny}, {small, medium}, large 15.9-22.0 / 7.8-9.7, then 15.8-18.7 / 6.8-8.4; {micro, tiny,
# small}, {medium, large} (first batch only) 14.2-17.1 / 8.1-9.8. Only the last is reliably
# faster cold, and it is the slowest warm; the others' cold runs differ by less than the
# machine's drift between batches, so no plan was found that beats the default on both.
SHARED_PADDING_WEIGHT = 2.0


def _shared_program(part, specs, step_tokens, profile, stored) -> tuple:
    """(envelope, its training FLOPs per step, its step seconds, compile-or-load seconds) of the
    models of ``part`` trained alone by one program at their envelope's shape: one compile (a
    padded model alone compiled as fast as one at its true shape, measured on the 2-core CPU)."""
    env = envelope([specs[t].cfg for t in part])
    flops = step_tokens.flops(env)
    step = profile.step_seconds(flops, 1, env.param_counts().total)
    compile_s = profile.load_s if stored(tuple(part), "shared") else profile.compile_seconds(stacked=False)
    return env, flops, step, compile_s


def _shared_cost(part, specs, steps, step_tokens, profile, stored, padding_weight: float) -> float:
    """Cost, for choosing a plan, of a shared segment: its compile, every step at the envelope's
    cost, and the padding ``padding_weight`` times in all (``SHARED_PADDING_WEIGHT`` when later
    runs will reuse the program, ``plan``'s ``reruns``)."""
    _, _, step, compile_s = _shared_program(part, specs, step_tokens, profile, stored)
    own = sum(steps[t] * profile.step_seconds(step_tokens.flops(specs[t].cfg), 1,
                                              specs[t].cfg.param_counts().total) for t in part)
    padded = sum(steps[t] for t in part) * step
    return compile_s + own + padding_weight * (padded - own)


def _shared_groups(part, specs, steps, step_tokens, profile, stored, first_id: int) -> list[Group]:
    """One group per model of a shared segment (``Group.shared``), so that lanes can train them
    at once; the first carries the compile, and the others start once it is done
    (``Group.compiled_by``)."""
    env, flops, step, compile_s = _shared_program(part, specs, step_tokens, profile, stored)
    first = f"g{first_id:02d}"
    return [Group(f"g{first_id + j:02d}", (t,), "alone", env.name, (compile_s if j == 0 else 0.0) + steps[t] * step,
                  step_tokens.flops(specs[t].cfg) / flops,
                  flop_seconds=steps[t] * profile.flop_seconds(flops, 1), shared=tuple(part), compiles=j == 0,
                  compiled_by=None if j == 0 else first, compile_seconds=compile_s if j == 0 else 0.0)
            for j, t in enumerate(part)]


def _make_groups(parts, specs, steps, step_tokens, profile, stored, key_of=None) -> list[Group]:
    key_of = key_of or config_program(specs)
    groups: list[Group] = []
    compiled: dict = {}  # program key of a model alone -> the earlier group that compiles it
    for part in parts:
        if isinstance(part, tuple):  # a shared segment (``_best_partition``)
            groups.extend(_shared_groups(part, specs, steps, step_tokens, profile, stored, len(groups)))
            continue
        alone = len(part) == 1
        cfgs = [specs[i].cfg for i in part]
        part_steps = [steps[i] for i in part]
        key = key_of(tuple(part), "alone") if alone else None
        by = compiled.get(key) if alone else None
        is_stored = stored(tuple(part), "alone" if alone else "stack")
        cost, useful = _group_cost(cfgs, part_steps, profile, step_tokens, alone=alone,
                                   compiled=by is not None, stored=is_stored)
        gid = f"g{len(groups):02d}"
        if alone and by is None:
            compiled[key] = gid
        env = cfgs[0] if alone else envelope(cfgs)
        flop_s = max(part_steps) * profile.flop_seconds(step_tokens.flops(env), len(cfgs))
        compile_s = _compile_seconds(profile, alone=alone, compiled=by is not None, stored=is_stored)
        groups.append(Group(gid, tuple(part), "alone" if alone else "stack", env.name,
                            cost, useful, flop_seconds=flop_s, compiles=by is None, compiled_by=by,
                            compile_seconds=compile_s))
    return groups


def _segment_cost(part, specs, steps, step_tokens, profile, stored, stacks: bool = True,
                  padding_weight: float = SHARED_PADDING_WEIGHT, key_of=None) -> tuple[float, str]:
    """The cheapest way to train a contiguous segment: (seconds, how): ``stack``, ``alone`` (a
    segment of one config: its models alone, one after another, each distinct program key,
    ``plan``'s ``program_key``, compiled once) or ``shared`` (models of several configs alone, one
    after another, on one program at their envelope). ``stacks`` False: no stack (a plan of models
    alone only, for several lanes)."""
    key_of = key_of or config_program(specs)
    cfgs = [specs[t].cfg for t in part]
    if len(part) == 1:
        return _group_cost(cfgs, [steps[part[0]]], profile, step_tokens, alone=True,
                           stored=stored((part[0],), "alone"))[0], "alone"
    stack = _group_cost(cfgs, [steps[t] for t in part], profile, step_tokens, alone=False,
                        stored=stored(tuple(part), "stack"))[0] if stacks else float("inf")
    if any(c != cfgs[0] for c in cfgs):
        if profile.platform != "cpu":  # measured on a CPU only (an accelerator's lanes: one)
            return stack, "stack"
        shared = _shared_cost(part, specs, steps, step_tokens, profile, stored, padding_weight)
        return (stack, "stack") if stack <= shared else (shared, "shared")
    run, seen = 0.0, set()
    for c, t in zip(cfgs, part):
        key = key_of((t,), "alone")
        run += _group_cost([c], [steps[t]], profile, step_tokens, alone=True, compiled=key in seen,
                           stored=key not in seen and stored((t,), "alone"))[0]
        seen.add(key)
    return (stack, "stack") if stack <= run else (run, "alone")


def _best_partition(order, specs, steps, step_tokens, profile, max_stack, stored,
                    stacks: bool = True, padding_weight: float = SHARED_PADDING_WEIGHT,
                    key_of=None) -> list[list[int]]:
    """Cheapest split of ``order`` into contiguous segments (dynamic programming over prefixes),
    each a stack or a run of models alone (returned as one-model parts)."""
    m = len(order)
    best = [0.0] + [float("inf")] * m
    cut, how = [0] * (m + 1), ["stack"] * (m + 1)
    for j in range(1, m + 1):
        for i in range(max(0, j - max_stack), j):
            part = order[i:j]
            cost, way = _segment_cost(part, specs, steps, step_tokens, profile, stored, stacks, padding_weight,
                                      key_of)
            if best[i] + cost < best[j]:
                best[j], cut[j], how[j] = best[i] + cost, i, way
    parts, j = [], m
    while j > 0:
        seg = order[cut[j]:j]
        if how[j] == "shared":
            parts.append(tuple(seg))  # a tuple marks a shared segment for _make_groups
        else:
            parts.extend([seg] if how[j] == "stack" else [[t] for t in reversed(seg)])
        j = cut[j]
    return parts[::-1]


def share_evaluations(groups: Sequence[Group], specs: Sequence, eval_flops: Callable[[object, int], float],
                      profile: DeviceProfile) -> list[Group]:
    """The groups with ``Group.eval_shared`` set: models trained alone, of one bucket, that are
    evaluated by one compiled program at their envelope, with masks, instead of one program per
    shape. ``eval_flops(cfg, i)``: the FLOPs of model ``i``'s evaluations over its run at the
    shape ``cfg``.

    Why: an evaluation program compiles in about half a second on the 2-core CPU
    (``DeviceProfile.eval_compile_s``), and the held-out evaluations of the notebook's models
    run in milliseconds, so each evaluation program of its own costs more than the padding of
    evaluating at a larger shape. A model joins a set (largest models first) only if the padding
    it adds to the set's evaluations costs less than the compile it saves; a model on a shared
    training program joins with its whole set, so its evaluation shape holds its training shape.
    Stacks are left alone: their evaluation is one vmapped program already."""
    # each unit joins a set whole: a shared training set, or one model alone
    units = list(dict.fromkeys(g.shared or g.indices for g in groups if g.mode == "alone"))

    def cost(members, env) -> float:  # seconds of the members' evaluations at env
        return sum(eval_flops(env, i) for i in members) / profile.flop_rate

    sets: list[list[int]] = []
    by_size = sorted(units, key=lambda u: -envelope([specs[i].cfg for i in u]).flops_per_token().total)
    for unit in by_size:
        unit_env = envelope([specs[i].cfg for i in unit])
        for members in sets:
            if stack_key(specs[members[0]].cfg) != stack_key(unit_env):
                continue
            env = envelope([specs[i].cfg for i in members + list(unit)])
            old_env = envelope([specs[i].cfg for i in members])
            added = cost(members + list(unit), env) - cost(members, old_env) - cost(unit, unit_env)
            if added < profile.eval_compile_s:
                members.extend(unit)
                break
        else:
            sets.append(list(unit))
    set_of = {i: tuple(sorted(m)) for m in sets if len({specs[j].cfg for j in m}) > 1 for i in m}
    return [replace(g, eval_shared=set_of[g.indices[0]]) if g.mode == "alone" and g.indices[0] in set_of else g
            for g in groups]


def program_count(groups: Sequence[Group], specs: Sequence | None = None) -> int:
    """Distinct training programs of a plan: the groups that compile (or load) theirs
    (``Group.compiles``): one per stack, one per set of models sharing a program, one per
    distinct program key of models alone (``plan``'s ``program_key``: a config trained to budgets
    that give it other dispatch lengths or compile choices makes several). Counted as the plan
    costs them, one compile each. ``specs``: unused (kept for callers)."""
    return sum(1 for g in groups if g.compiles)
