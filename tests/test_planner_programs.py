"""Which training programs a plan makes, and when the groups that reuse one can start.

* Models alone are one program only where the run keys them as one
  (``group_setup.train_program_key``): one config trained to budgets that give it other dispatch
  lengths or another fast-or-full compile choice makes a program per budget, each compiled.
* A group whose program another group compiles (a shared program's other members) waits for
  that compile: in the plan's estimate, on the sweep's lanes, and in its row (``waited_seconds``,
  not its compile)."""

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

from jaxscale.config import create_model_config
from jaxscale.device_profile import DeviceProfile
from jaxscale.planner import Group, plan, plan_seconds, program_count
from jaxscale.presets import make_preset
from jaxscale.runner import ModelSpec, RunSettings
from jaxscale.train import Budget, OptimConfig

CPU = DeviceProfile("cpu", flop_rate=25e9, overhead_s=2e-4, per_model_s=5e-5, compile_s=6.0, param_s=4.5e-9,
                    stack_compile=1.6)


def _data():
    from jaxscale.data.corpus import load_corpus
    from jaxscale.data.source import from_corpus

    return from_corpus(load_corpus(), seq_len=32, batch_size=4, eval_max_windows=8)


def _l1(steps: int, seed: int = 0) -> ModelSpec:
    return ModelSpec(create_model_config("ladder/l1"), seed=seed, optim=OptimConfig(lr=3e-3),
                     budget=Budget("steps", steps))


# ----- bug 1: one config alone, several budgets ------------------------------------------------

@pytest.mark.parametrize("budgets, dispatch, programs", [
    ((20, 200), 100, 2),      # dispatch lengths 20 and 100
    ((20, 20000), 10, 2),     # one dispatch length (10); the short run compiles fast, the long one full
    ((200, 200), 100, 1),     # two seeds, one budget: one program
])
def test_a_config_alone_makes_a_program_per_distinct_run_key(budgets, dispatch, programs, monkeypatch):
    """Reproduced by a reviewer: ``jaxscale sweep --family ladder --sizes l1 --steps 20 200 --mode
    sequential`` planned ``2 groups, 1 program`` with the second group costed without a compile
    (0.2 s), and the run compiled two training programs (its dispatch length is
    ``min(steps_per_dispatch, budget)``, and the fast-compile choice weighs the budget too)."""
    from jaxscale import program_cache, sweep_plan
    from jaxscale.group_setup import train_program_key

    monkeypatch.setattr(program_cache, "is_stored", lambda kind, key: False)  # a cold run
    data = _data()
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=8, progress=False, steps_per_dispatch=dispatch)
    specs = [_l1(n, seed=j) for j, n in enumerate(budgets)]
    keys = {train_program_key([s], data, settings, "alone") for s in specs}
    assert len(keys) == programs  # what the run will compile
    profile = dataclasses.replace(CPU, lanes=1)
    made = sweep_plan.plan_sweep(specs, data, settings, profile, "sequential", plan_for="once")
    assert program_count(made.groups, specs) == programs
    assert f"{programs} program{'s' if programs > 1 else ''}," in made.summary
    assert [g.compiles for g in made.groups].count(True) == programs
    compiled = [g for g in made.groups if g.compiles]
    assert all(g.estimated_s > CPU.compile_s for g in compiled)  # each costed with its compile
    if programs == 1:
        assert made.groups[1].compiled_by == made.groups[0].id and made.groups[1].estimated_s < CPU.compile_s


def test_the_search_counts_a_compile_per_distinct_program_key():
    """``plan``'s ``program_key``: models alone of one config under two keys cost two compiles in
    the groups and in the partition search, under one key one. Three seeds of notebook-emergence
    small train alone on one program (a stack only adds its slower compile); were the third's
    program another, two compiles would cost more than one stack's."""
    spec = make_preset("notebook-emergence").specs[2]
    specs = [dataclasses.replace(spec, seed=i) for i in range(3)]
    one = lambda ix, kind: (kind, "one")  # noqa: E731
    two = lambda ix, kind: (kind, ix[0] == 2)  # noqa: E731 - the third model: a program of its own
    same = plan(specs, [6000] * 3, 4, CPU, mode="sequential", program_key=one)
    split = plan(specs, [6000] * 3, 4, CPU, mode="sequential", program_key=two)
    assert program_count(same, specs) == 1 and program_count(split, specs) == 2
    assert sum(g.estimated_s for g in split) == pytest.approx(sum(g.estimated_s for g in same) + CPU.compile_s)
    assert [g.compiled_by for g in split] == [None, "g00", None]
    assert [g.mode for g in plan(specs, [6000] * 3, 4, CPU, mode="auto", program_key=one)] == ["alone"] * 3
    assert [g.mode for g in plan(specs, [6000] * 3, 4, CPU, mode="auto", program_key=two)] == ["stack"]


# ----- bug 2: a shared program's other members wait for its compile -----------------------------

def test_members_of_a_shared_program_start_once_it_is_compiled():
    """Reproduced by a reviewer: cold notebook-scaling, five models on one shared program, two
    lanes, was estimated at 6.5 s with the four non-compiling models starting at once on the
    second lane; in the run they waited 3.5 s for the first lane's compile (the row recorded the
    wait as a 3.5 s compile)."""
    preset = make_preset("notebook-scaling")
    steps = [s.budget.steps(s.cfg, preset.data.batch_size, preset.data.seq_len) for s in preset.specs]
    groups = plan(preset.specs, steps, preset.data.tokens_per_step, dataclasses.replace(CPU, lanes=2))
    assert program_count(groups, preset.specs) == 1 and all(g.shared for g in groups)
    first, *members = groups
    assert first.compiles and not any(g.compiles for g in members)
    # nothing but the compile runs until the compile ends; then the five trainings share two lanes
    trainings = [g.estimated_s - (CPU.compile_s if g.compiles else 0.0) for g in groups]
    assert plan_seconds(groups) >= CPU.compile_s + sum(trainings) / 2 - 1e-9
    assert plan_seconds(groups) == pytest.approx(CPU.compile_s + 3 * members[0].estimated_s)
    assert first.compile_seconds == pytest.approx(CPU.compile_s)
    assert all(g.compiled_by == first.id for g in members)


def test_a_waiting_group_idles_its_lane_in_the_estimate():
    """Synthetic groups: ``c`` reuses ``a``'s program (6 s compile), ``b`` compiles its own. ``b``
    goes to the free lane first, and ``c`` starts when ``a``'s compile ends, not at once."""
    from jaxscale.planner import schedule

    a = Group("a", (0,), "alone", "m", 7.0, compile_seconds=6.0)
    b = Group("b", (1,), "alone", "m", 2.0, compile_seconds=1.0)
    c = Group("c", (2,), "alone", "m", 1.0, compiles=False, compiled_by="a")
    lanes = {g.id: g.lane for g in schedule([a, b, c], 2)}
    assert lanes == {"a": 0, "b": 1, "c": 1}
    assert plan_seconds(schedule([a, b, c], 2)) == pytest.approx(7.0)  # c: 6..7 on lane 1
    late = dataclasses.replace(c, estimated_s=3.0)
    assert plan_seconds(schedule([a, b, late], 2)) == pytest.approx(9.0)  # not max(7, 2 + 3)


def test_lanes_make_a_group_wait_for_the_compile_of_the_program_it_reuses():
    """``run_lanes`` hands the member a ``wait`` that returns once its compiler's
    ``on_compiled`` was called (the fake compiler 'compiles' for 0.3 s, then trains 0.3 s)."""
    from jaxscale.sweep_lanes import run_lanes

    groups = [Group("g00", (0,), "alone", "m", 7.0, shared=(0, 1)),
              Group("g01", (1,), "alone", "m", 1.0, shared=(0, 1), compiles=False)]
    events, rows_of = {}, {}

    def run_group(g, prepared, lane, wait=None, on_compiled=None):
        events[g.id, "start"] = time.perf_counter()
        if g.id == "g01":
            assert wait is not None, "the member was not told to wait"
        if wait is not None:
            wait()
        events[g.id, "compiled"] = time.perf_counter()
        if g.id == "g00":
            time.sleep(0.3)  # the compile
            events["g00", "compiled"] = time.perf_counter()
            on_compiled()
            time.sleep(0.3)  # the training
        return [{"id": g.id}]

    run_lanes(groups, 2, run_group, rows_of, threading.Event())
    assert set(rows_of) == {"g00", "g01"}
    assert events["g01", "compiled"] >= events["g00", "compiled"]
    assert events["g01", "compiled"] - events["g01", "start"] > 0.2


def test_a_plan_recorded_without_compiled_by_still_waits_for_its_shared_sets_compiler():
    from jaxscale.sweep_lanes import compilers

    groups = [Group("g00", (0,), "alone", "m", 7.0, shared=(0, 1)),
              Group("g01", (1,), "alone", "m", 1.0, shared=(0, 1), compiles=False),
              Group("g02", (2,), "alone", "m", 1.0)]
    assert compilers(groups) == {"g01": "g00"}


def test_a_member_records_its_wait_apart_from_its_compile():
    """Two models on one shared program, trained at once in two threads as two lanes do: the one
    that reuses the program waits for the other's compile, and its row says so
    (``waited_seconds``), with its own compile (a lookup in memory) as ``compile_seconds``."""
    from jaxscale.runner import train_group

    data = _data()
    # a dispatch length no other test uses: the programs are not in this process's memory yet
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=8, progress=False, steps_per_dispatch=7)
    a = _l1(7)
    b = ModelSpec(create_model_config("ladder/l2"), seed=1, optim=OptimConfig(lr=3e-3), budget=Budget("steps", 7))
    shared, compiled, results = [a, b], threading.Event(), {}

    def train(name, spec, **hooks):
        results[name] = train_group([spec], data, settings, mode="alone", stack_id=name, shared=shared, **hooks)

    threads = [threading.Thread(target=train, args=("ga", a), kwargs={"on_compiled": compiled.set}),
               threading.Thread(target=train, args=("gb", b), kwargs={"wait": compiled.wait})]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sa, sb = results["ga"].rows[0]["stack"], results["gb"].rows[0]["stack"]
    assert sa["compile_seconds"] > 0.2 and sa["waited_seconds"] < 0.05
    assert sb["compile_seconds"] < 0.25 * sa["compile_seconds"]
    assert sb["waited_seconds"] > 0.5 * sa["compile_seconds"]
    assert results["gb"].rows[0]["wall_seconds"] < results["ga"].rows[0]["wall_seconds"]


def test_the_bench_counts_one_compile_per_program(monkeypatch):
    """``jaxscale_sweep_e2e`` summed ``compile_seconds`` per group: one 3.6 s compile of
    notebook-scaling's shared program, recorded again as its member's 3.5 s wait, read 7.1 s."""
    from jaxscale import bench_torch

    def stack(gid, compile_s, shared, **more):
        return {"id": gid, "compile_seconds": compile_s, "shared_program": shared, **more}

    old = [stack("g00", 3.6, ["a", "b"]), stack("g01", 3.5, ["a", "b"]), stack("g02", 1.0, None)]
    new = [stack("g00", 3.6, ["a", "b"], waited_seconds=0.0), stack("g01", 0.01, ["a", "b"], waited_seconds=3.5),
           stack("g02", 1.0, None, waited_seconds=0.0)]
    for stacks, compile_s, waited in ((old, 4.6, 0.0), (new, 4.61, 3.5)):
        def fake_run(cmd, **kwargs):
            out = Path(cmd[cmd.index("--out") + 1])
            rows = [{"run_id": f"r{j}", "stack": s} for j, s in enumerate(stacks)]
            rows.append({"run_id": "r9", "stack": stacks[0]})  # a second row of one group counts once
            (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            return type("Done", (), {"returncode": 0, "stderr": ""})()

        monkeypatch.setattr(bench_torch.subprocess, "run", fake_run)
        res = bench_torch.jaxscale_sweep_e2e("notebook-scaling", "auto", None)
        assert res["compile_s_in_rows"] == pytest.approx(compile_s)
        assert res.get("waited_s_in_rows", 0.0) == pytest.approx(waited)
