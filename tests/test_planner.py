"""The planner: every model planned once, modes honoured, auto never worse than its alternatives
under its own cost model, one stack for overhead-bound models on an accelerator."""

import dataclasses
import io

import pytest

from jaxscale.device_profile import DeviceProfile
from jaxscale.planner import plan, program_count
from jaxscale.presets import make_preset

CPU = DeviceProfile("cpu", flop_rate=25e9, overhead_s=2e-4, per_model_s=5e-5, compile_s=6.0, param_s=4.5e-9,
                    stack_compile=1.6)
GPU = DeviceProfile("gpu", flop_rate=3e13, overhead_s=5e-4, per_model_s=2e-6, compile_s=15.0, param_s=2e-11,
                    stack_compile=1.5)
FLAT_CPU = dataclasses.replace(CPU, stack_compile=1.0, param_s=3.5e-9)


def _steps(preset):
    return [s.budget.steps(s.cfg, preset.data.batch_size, preset.data.seq_len) for s in preset.specs]


@pytest.mark.parametrize("name", ["notebook-scaling", "notebook-emergence"])
@pytest.mark.parametrize("profile", [CPU, FLAT_CPU, GPU], ids=["cpu", "cpu-flat-compile", "gpu"])
def test_auto_is_never_worse_than_stack_or_sequential(name, profile):
    preset = make_preset(name)
    steps, tps = _steps(preset), preset.data.tokens_per_step
    cost = {m: sum(g.estimated_s for g in plan(preset.specs, steps, tps, profile, mode=m))
            for m in ("auto", "stack", "sequential")}
    assert cost["auto"] <= min(cost["stack"], cost["sequential"]) + 1e-9
    for mode in cost:
        groups = plan(preset.specs, steps, tps, profile, mode=mode)
        assert sorted(i for g in groups for i in g.indices) == list(range(len(preset.specs)))
    assert len(plan(preset.specs, steps, tps, profile, mode="sequential")) == 5
    assert len(plan(preset.specs, steps, tps, profile, mode="stack")) == 1


@pytest.mark.parametrize("name", ["notebook-scaling", "notebook-emergence"])
def test_accelerator_stacks_overhead_bound_models(name):
    """Under the test profile and under the shipped GPU defaults (``PLATFORM_DEFAULTS``, from the
    H200's measurements; there auto chose the one stack for both presets, 3.0x and 2.6x sequential)."""
    from jaxscale.device_profile import PLATFORM_DEFAULTS

    d = PLATFORM_DEFAULTS["gpu"]
    shipped = DeviceProfile("gpu", flop_rate=d["efficiency"] * 989e12, overhead_s=d["overhead_s"],
                            per_model_s=d["per_model_s"], compile_s=d["compile_s"], param_s=d["param_s"],
                            stack_compile=d["stack_compile"])
    preset = make_preset(name)
    for profile in (GPU, shipped):
        groups = plan(preset.specs, _steps(preset), preset.data.tokens_per_step, profile, mode="auto")
        assert len(groups) == 1 and groups[0].mode == "stack", profile


def test_incompatible_models_go_to_separate_groups():
    preset = make_preset("notebook-scaling")
    other = make_preset("notebook-emergence")
    specs = preset.specs + other.specs
    groups = plan(specs, [40] * 10, 96, GPU, mode="stack")
    assert len(groups) == 2
    with pytest.raises(ValueError, match="mode must be one of"):
        plan(specs, [40] * 10, 96, GPU, mode="fast")


def _seeds(spec, n):
    return [dataclasses.replace(spec, seed=i) for i in range(n)]


def test_models_of_one_config_alone_share_one_compile():
    """Seeds of one size trained one after another run one program: one compile, not one each."""
    specs = _seeds(make_preset("notebook-emergence").specs[2], 3)
    groups = plan(specs, [600] * 3, 4, CPU, mode="sequential")
    assert [g.mode for g in groups] == ["alone"] * 3
    first, *rest = [g.estimated_s for g in groups]
    assert rest[0] == pytest.approx(rest[1]) and first == pytest.approx(rest[0] + CPU.compile_s)
    assert program_count(groups, specs) == 1
    emergence = make_preset("notebook-emergence")
    steps = _steps(emergence)
    assert program_count(plan(emergence.specs, steps, 4, CPU, mode="sequential"), emergence.specs) == 5
    assert program_count(plan(emergence.specs, steps, 4, CPU, mode="stack"), emergence.specs) == 1


def test_a_stack_pays_its_slower_compile():
    specs = _seeds(make_preset("notebook-emergence").specs[0], 2)
    slow = dataclasses.replace(CPU, stack_compile=3.0)
    (g,) = plan(specs, [10] * 2, 4, CPU, mode="stack")
    (g_slow,) = plan(specs, [10] * 2, 4, slow, mode="stack")
    assert g_slow.estimated_s - g.estimated_s == pytest.approx(CPU.compile_s * (3.0 - 1.6))


def test_auto_runs_seeds_alone_on_one_program_when_a_stack_saves_nothing():
    """On the CPU a step of K models costs about K steps of one (measured: 3 seeds of
    notebook-emergence small, stack 2.54 ms vs one after another 2.53 ms), so for models of one
    config a stack only adds its slower compile: auto trains them alone, on one program. Tiny
    models, whose step is mostly fixed overhead, still go in one stack."""
    emergence = make_preset("notebook-emergence").specs
    small = _seeds(emergence[2], 3)
    groups = plan(small, [6000] * 3, 4, CPU, mode="auto")
    assert [g.mode for g in groups] == ["alone"] * 3
    total = sum(g.estimated_s for g in groups)
    assert total == pytest.approx(sum(g.estimated_s for g in plan(small, [6000] * 3, 4, CPU, mode="sequential")))
    micro = _seeds(emergence[0], 8)
    assert [g.mode for g in plan(micro, [6000] * 8, 4, CPU, mode="auto")] == ["stack"]


# ----- lanes: several groups trained at once on a multi-core CPU ---------------------------------

def test_lanes_take_the_longest_groups_first_onto_the_least_loaded_lane():
    from jaxscale.planner import Group, plan_seconds, schedule

    groups = [Group(f"g{i}", (i,), "alone", "m", est) for i, est in enumerate([3.0, 9.0, 4.0, 5.0])]
    lanes = [g.lane for g in schedule(groups, 2)]
    assert lanes == [0, 0, 1, 1]  # 9 -> lane 0; 5, 4 -> lane 1 (9 and 9); 3 -> the tie's lowest lane, 0
    assert plan_seconds(schedule(groups, 2)) == pytest.approx(12.0)
    assert plan_seconds(schedule(groups, 1)) == pytest.approx(21.0)
    assert plan_seconds(schedule(groups, 8)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="lanes must be a positive int"):
        dataclasses.replace(CPU, lanes=0)


@pytest.mark.parametrize("name", ["notebook-scaling", "notebook-emergence"])
@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_auto_with_lanes_is_never_worse_than_stack_or_sequential(name, lanes):
    from jaxscale.planner import plan_seconds

    preset = make_preset(name)
    steps, tps = _steps(preset), preset.data.tokens_per_step
    profile = dataclasses.replace(CPU, lanes=lanes)
    cost = {m: plan_seconds(plan(preset.specs, steps, tps, profile, mode=m)) for m in ("auto", "stack", "sequential")}
    assert cost["auto"] <= min(cost["stack"], cost["sequential"]) + 1e-9
    for g in plan(preset.specs, steps, tps, profile, mode="auto"):
        assert 0 <= g.lane < lanes
    if lanes == 1:  # one lane: the summed cost, as before lanes existed
        assert cost["auto"] == pytest.approx(sum(g.estimated_s for g in plan(preset.specs, steps, tps, CPU)))


def test_two_cpu_lanes_train_the_emergence_models_alone_side_by_side():
    """Measured on the 2-core CPU (warm, in-process): emergence large and medium alone took 9.4 s
    one after another and 5.7 s in two threads, so with two lanes every model alone, spread over
    both lanes, beats the one-lane plan's stack of the three smallest."""
    from jaxscale.planner import plan_seconds

    preset = make_preset("notebook-emergence")
    steps = _steps(preset)
    two = plan(preset.specs, steps, 4, dataclasses.replace(CPU, lanes=2))
    assert [g.mode for g in two] == ["alone"] * 5 and {g.lane for g in two} == {0, 1}
    one = plan(preset.specs, steps, 4, CPU)
    assert plan_seconds(two) < 0.7 * plan_seconds(one)


def test_flop_bound_groups_gain_nothing_from_lanes():
    """The FLOP rate is measured with every core busy, so FLOP-bound groups on two lanes are
    estimated at no less than their summed FLOP time."""
    from jaxscale.planner import plan_seconds

    specs = [dataclasses.replace(s, seed=i) for i, s in enumerate(make_preset("notebook-scaling").specs[-1:] * 4)]
    fast_params = dataclasses.replace(CPU, param_s=0.0, overhead_s=0.0, per_model_s=0.0, compile_s=0.0,
                                      flop_rate=1e9)
    groups = plan(specs, [1000] * 4, 4096, dataclasses.replace(fast_params, lanes=4), mode="sequential")
    assert len({g.lane for g in groups}) == 4
    total_flop = sum(g.flop_seconds for g in groups)
    assert total_flop > 0 and plan_seconds(groups) == pytest.approx(total_flop)
    assert plan_seconds(groups) == pytest.approx(sum(g.estimated_s for g in groups))
    # one group alone on its lanes shares the cores with nobody: its own time
    (one,) = plan(specs[:1], [1000], 4096, dataclasses.replace(fast_params, lanes=4), mode="sequential")
    assert plan_seconds([one]) == pytest.approx(one.estimated_s)


def test_a_program_compiled_by_an_earlier_run_costs_a_load_not_a_compile():
    """Warm runs: cold, the scaling preset's five models share one program (five compiles cost
    more than its 40 steps; measured on the 2-core CPU, cold `jaxscale sweep --preset
    notebook-scaling`: 4.8-4.9 s against 5.8-6.9 s for one stack); once every program is on
    disk there is no compile to save and they train at their true shapes on both lanes; with
    only the stack's program on disk it is one stack."""
    from jaxscale.planner import plan_seconds

    preset = make_preset("notebook-scaling")
    steps, two = _steps(preset), dataclasses.replace(CPU, lanes=2)
    cold = plan(preset.specs, steps, 96, two)
    assert program_count(cold, preset.specs) == 1 and {g.lane for g in cold} == {0, 1}
    assert all(g.mode == "alone" and g.shared == (0, 1, 2, 3, 4) for g in cold)
    assert [g.compiles for g in cold].count(True) == 1  # one group compiles, the others reuse it
    warm = plan(preset.specs, steps, 96, two, stored=lambda ix, kind: kind == "alone")
    assert all(g.mode == "alone" and not g.shared for g in warm) and {g.lane for g in warm} == {0, 1}
    assert plan_seconds(warm) < plan_seconds(cold)
    only_stack = plan(preset.specs, steps, 96, two, stored=lambda ix, kind: kind == "stack" and len(ix) == 5)
    assert [g.mode for g in only_stack] == ["stack"]
    stack_cold = plan(preset.specs, steps, 96, two, mode="stack")
    assert only_stack[0].estimated_s == pytest.approx(stack_cold[0].estimated_s - CPU.compile_seconds(True)
                                                      + CPU.load_s)


def test_a_cpu_shares_programs_between_neighbouring_sizes_and_an_accelerator_does_not():
    """On a CPU a compile costs seconds and a small model's padded steps little: auto trains
    neighbouring emergence sizes alone on one program at their envelope, as long as the padding,
    counted for this run and the next, costs less than the compile saved (measured on the 2-core
    CPU: sharing {small, medium} as well made warm runs slower, see ``planner``). Each shared set
    is contiguous in size, compiled once, and counted as one program; an accelerator (not
    measured) never shares."""
    preset = make_preset("notebook-emergence")
    steps = _steps(preset)
    groups = plan(preset.specs, steps, 4, dataclasses.replace(CPU, lanes=2))
    assert all(g.mode == "alone" for g in groups) and sorted(i for g in groups for i in g.indices) == list(range(5))
    sets = {g.shared for g in groups if g.shared}
    assert sets == {(0, 1)}  # {micro, tiny}; {small, medium} pads too much for a warm rerun
    assert all(list(s) == list(range(s[0], s[-1] + 1)) for s in sets)
    assert program_count(groups, preset.specs) == len(sets) + sum(1 for g in groups if not g.shared) < 5
    for s in sets:
        members = [g for g in groups if g.shared == s]
        assert len(members) == len(s) and [g.compiles for g in members].count(True) == 1
        assert {g.envelope_name for g in members} == {"envelope"}
    assert not any(g.shared for g in plan(preset.specs, steps, 4, GPU))
    # with no cache to keep the programs for later runs the padding counts once, and the padding
    # of {small, medium} is worth sharing too
    once = plan(preset.specs, steps, 4, dataclasses.replace(CPU, lanes=2), reruns=False)
    assert {g.shared for g in once if g.shared} == {(0, 1), (2, 3)}
    assert program_count(once, preset.specs) == 3
    with pytest.raises(ValueError, match="reruns"):
        plan(preset.specs, steps, 4, CPU, reruns="no")


def test_models_alone_share_an_evaluation_program_while_its_padding_costs_less_than_a_compile():
    """``share_evaluations``: the emergence models, alone, are evaluated by one program at their
    envelope when an evaluation program's compile costs more than the padded evaluations; a
    model whose padding would cost more stays on its own; a shared training set stays together;
    stacks keep their own (vmapped) evaluation; models that cannot share a stack never share."""
    from jaxscale.planner import Group, share_evaluations

    preset = make_preset("notebook-emergence")
    specs, steps = preset.specs, _steps(preset)
    alone = plan(specs, steps, 4, CPU, mode="sequential")
    per_token = lambda cfg, i: 1e3 * cfg.flops_per_token().total  # noqa: E731  evaluation FLOPs of model i at cfg
    cheap = share_evaluations(alone, specs, per_token, dataclasses.replace(CPU, eval_compile_s=0.5))
    assert {g.eval_shared for g in cheap} == {(0, 1, 2, 3, 4)}
    dear = share_evaluations(alone, specs, per_token, dataclasses.replace(CPU, eval_compile_s=0.0))
    assert all(g.eval_shared == () for g in dear)
    # padding to `large` (d 96, 6 layers) is worth it for `medium` (d 80, 5 layers) only; the
    # three smallest pad less to `small`
    flops = [s.cfg.flops_per_token().total for s in specs]
    rate = CPU.flop_rate
    medium_cost = 1e3 * (flops[4] - flops[3]) / rate
    some = share_evaluations(alone, specs, per_token, dataclasses.replace(CPU, eval_compile_s=medium_cost * 1.01))
    assert [g.eval_shared for g in some] == [(0, 1, 2)] * 3 + [(3, 4)] * 2
    # a shared training set joins as one, or not at all
    shared = [Group("a", (0,), "alone", "envelope", 1.0, shared=(0, 1)),
              Group("b", (1,), "alone", "envelope", 1.0, shared=(0, 1)), Group("c", (4,), "alone", "x", 1.0)]
    joined = share_evaluations(shared, specs, per_token, dataclasses.replace(CPU, eval_compile_s=1e9))
    assert [g.eval_shared for g in joined] == [(0, 1, 4)] * 3
    stacked = [Group("s", (0, 1), "stack", "envelope", 1.0), Group("c", (4,), "alone", "x", 1.0)]
    assert [g.eval_shared for g in share_evaluations(stacked, specs, per_token, CPU)] == [(), ()]
    other = [dataclasses.replace(specs[0], cfg=specs[0].cfg.replace(vocab_size=128)), specs[4]]
    apart = share_evaluations(plan(other, steps[:2], 4, CPU, mode="sequential"), other, per_token, CPU)
    assert all(g.eval_shared == () for g in apart)


@pytest.mark.parametrize("kept, plan_for, reruns", [
    (True, "auto", True), (False, "auto", False),  # auto: reruns exactly where a cache keeps the programs
    (True, "once", False), (False, "once", False), (True, "reruns", True), (False, "reruns", True)])
def test_a_sweep_plans_for_reruns_only_where_a_cache_keeps_its_programs(kept, plan_for, reruns, monkeypatch):
    """``run_sweep`` passes ``compile_cache.programs_kept()`` to the planner as ``reruns``, unless
    ``plan_for`` says what the plan is for; either way a run that can stop early is planned at
    its earliest stop (``sweep_plan.planning_steps``)."""
    import jaxscale.sweep as sweep
    import jaxscale.sweep_plan as sweep_plan

    seen = {}

    class Planned(Exception):
        pass

    def fake_plan(specs, steps, *args, **kwargs):
        seen.update(kwargs, steps=list(steps))
        raise Planned

    monkeypatch.setattr(sweep_plan, "programs_kept", lambda: kept)
    monkeypatch.setattr(sweep_plan, "plan", fake_plan)
    preset = make_preset("notebook-emergence")
    with pytest.raises(Planned):
        sweep.run_sweep(preset.specs, preset.data, preset.settings, profile=CPU, log=io.StringIO(),
                        plan_for=plan_for)
    assert seen["reruns"] is reruns
    assert seen["steps"] == [2100] * 5


def test_plan_for_is_checked_by_name_before_anything_is_written(tmp_path):
    """A bad ``plan_for`` is refused by every entry point that takes it, naming it, before its
    output folder is made (and on a resume, which reads the recorded plan instead of planning)."""
    import jaxscale.emergence_study as emergence_study
    import jaxscale.study as study
    import jaxscale.sweep as sweep
    import jaxscale.sweep_plan as sweep_plan

    preset = make_preset("notebook-emergence")
    with pytest.raises(ValueError, match="plan_sweep: `plan_for` must be one of"):
        sweep_plan.plan_sweep(preset.specs, preset.data, preset.settings, CPU, "auto", plan_for="twice")
    with pytest.raises(ValueError, match="run_sweep: `plan_for` must be one of"):
        sweep.run_sweep(preset.specs, preset.data, preset.settings, profile=CPU, out=tmp_path / "new",
                        log=io.StringIO(), plan_for="twice")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "plan.json").write_text("{}")  # a sweep to resume: its plan is read, not made
    with pytest.raises(ValueError, match="run_sweep: `plan_for`"):
        sweep.run_sweep(preset.specs, preset.data, preset.settings, profile=CPU, out=tmp_path / "old",
                        log=io.StringIO(), plan_for="Once")
    with pytest.raises(ValueError, match="run_study: `plan_for`"):
        study.run_study(study.SCALES["smoke"], tmp_path / "study", plan_for=None)
    assert not (tmp_path / "study").exists()
    spec = emergence_study.StudySpec(task="addition", family="ladder", seeds=(0, 1, 2))
    with pytest.raises(ValueError, match="run_study: `plan_for`"):
        emergence_study.run_study(spec, tmp_path / "emergence", plan_for="rerun")
    assert not (tmp_path / "emergence").exists()


def test_a_split_batch_divides_the_flops_of_a_step_not_its_overheads():
    """On 8 devices a model alone splits its batch of 16 eight ways (``devices.mesh_shape``), so
    the planner costs its FLOPs at one eighth; a stack keeps its model axis on every device unless
    ``batch_shards`` says otherwise; per-step overheads and the optimiser's parameter pass stay."""
    from jaxscale.sweep_plan import with_batch_shards

    eight = dataclasses.replace(GPU, devices=8)
    flops, params = 1e12, 10**6
    fixed = eight.overhead_s + eight.per_model_s + params * eight.param_s
    one_device = fixed + flops / eight.flop_rate
    auto = with_batch_shards(eight, batch_size=16, batch_shards=None)
    assert (auto.alone_batch_shards, auto.stack_batch_shards) == (8, 1)
    assert auto.step_seconds(flops, 1, params) == pytest.approx(fixed + flops / eight.flop_rate / 8)
    assert auto.step_seconds(flops, 3, params) == pytest.approx(one_device)  # 3 models, one per device
    assert with_batch_shards(eight, batch_size=12, batch_shards=None).alone_batch_shards == 4
    two = with_batch_shards(eight, batch_size=16, batch_shards=2)
    assert (two.alone_batch_shards, two.stack_batch_shards) == (2, 2)
    # a stack of 6 on a 4 x 2 mesh: 2 models per device column, each at half the batch
    assert two.step_seconds(flops, 6, params) == pytest.approx(eight.overhead_s + 2 * (
        eight.per_model_s + flops / eight.flop_rate / 2 + params * eight.param_s))
    assert two.flop_seconds(flops, 6) == pytest.approx(2 * flops / eight.flop_rate / 2)
    with pytest.raises(ValueError, match="does not divide the batch"):
        with_batch_shards(eight, batch_size=16, batch_shards=3)
    with pytest.raises(ValueError, match="alone_batch_shards"):
        dataclasses.replace(eight, alone_batch_shards=0)


def test_a_sweep_plan_records_the_batch_splits_it_was_costed_with():
    from jaxscale import sweep_plan

    preset = make_preset("notebook-scaling")  # batch of 4
    made = sweep_plan.plan_sweep(preset.specs, preset.data, preset.settings, dataclasses.replace(GPU, devices=8),
                                 "auto")
    assert (made.profile.alone_batch_shards, made.profile.stack_batch_shards) == (4, 1)
    assert made.profile.devices == 8 and made.profile.flop_rate == GPU.flop_rate


def test_the_plan_names_a_shared_set_once_and_points_to_it_after():
    """A program shared by many models is listed in full (each size counted) on its first group
    only: a sweep of 20 models on one program printed the other 19 on each of its 20 lines."""
    from jaxscale.planner import Group
    from jaxscale.sweep_plan import describe

    preset = make_preset("notebook-emergence")
    specs = [dataclasses.replace(preset.specs[i], seed=s) for i in (0, 1) for s in (1, 2)]
    members = (0, 1, 2, 3)
    groups = [Group(f"g{i:02d}", (i,), "alone", "envelope", 1.0, shared=members, compiles=i == 0, eval_shared=members)
              for i in members]
    lines = describe(groups, specs).splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("seed=1 lr=0.001 (padded to envelope, one program for 4 models: "
                             "notebook-emergence/micro ×2, notebook-emergence/tiny ×2)"), lines[0]
    assert all(line.endswith("(padded to envelope, g00's program)") for line in lines[1:4]), lines
    assert lines[4].endswith("4 models, notebook-emergence/micro ×2, notebook-emergence/tiny ×2"), lines[4]


@pytest.mark.parametrize("mode", ["sequential", "stack"])
def test_step_flops_are_counted_at_the_trained_sequence_length(mode):
    """The emergence models train on 4-token sequences of a 16-token context: a step's attention
    FLOPs are those of 4 tokens, not 16 (the planner once counted them at the context, 1.5-15% too
    many), and every estimate (time, FLOP-bound share, padded-FLOP utilisation) reads them so."""
    from jaxscale.planner import estimate_train_seconds
    from jaxscale.stack import envelope

    preset = make_preset("notebook-emergence")
    steps, t = _steps(preset), preset.data.seq_len
    assert t < preset.specs[0].cfg.max_seq_len  # the premise: shorter than the context
    tps = preset.data.tokens_per_step
    cfgs = [s.cfg for s in preset.specs]
    groups = plan(preset.specs, steps, tps, GPU, mode=mode, seq_len=t)
    for g in groups:
        members = [cfgs[i] for i in g.indices]
        env = members[0] if g.mode == "alone" else envelope(members)
        at_t = env.flops_per_token(seq_len=t).total * tps
        assert at_t < env.flops_per_token().total * tps
        assert g.flop_seconds == pytest.approx(max(steps[i] for i in g.indices) * GPU.flop_seconds(at_t, len(members)))
        useful = sum(c.flops_per_token(seq_len=t).total for c in members) / (len(members) * env.flops_per_token(seq_len=t).total)
        assert g.padded_flops_util == pytest.approx(useful)
        est = estimate_train_seconds(members, [steps[i] for i in g.indices], GPU, tps, alone=g.mode == "alone", seq_len=t)
        assert est == pytest.approx(max(steps[i] for i in g.indices) * GPU.step_seconds(at_t, len(members),
                                                                                          env.param_counts().total))
    # without seq_len the context length is assumed, as before (the public default)
    (ctx,) = plan(preset.specs[-1:], steps[-1:], tps, GPU, mode="sequential")
    (trained,) = plan(preset.specs[-1:], steps[-1:], tps, GPU, mode="sequential", seq_len=t)
    assert trained.flop_seconds < ctx.flop_seconds


def test_a_sweep_is_planned_at_its_trained_sequence_length():
    """``plan_sweep`` hands the data's sequence length to the planner (the sweep's own plan, not
    only the planner's API)."""
    from jaxscale import sweep_plan

    preset = make_preset("notebook-emergence")
    made = sweep_plan.plan_sweep(preset.specs, preset.data, preset.settings, GPU, "stack")
    (g,) = made.groups
    from jaxscale.stack import envelope

    env = envelope([s.cfg for s in preset.specs])
    at_t = env.flops_per_token(seq_len=preset.data.seq_len).total * preset.data.tokens_per_step
    assert g.flop_seconds == pytest.approx(max(made.planned_steps) * GPU.flop_seconds(at_t, len(preset.specs)))
