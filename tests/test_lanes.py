"""Lanes: a sweep trains groups at once in threads. The rows must be those of the groups trained
one after another (each program computes the same numbers whoever else runs), a stop must leave a
sweep that resumes to them, and a failure in one lane must surface, not hang or vanish."""

import json

import pytest

from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.data.source import from_corpus
from jaxscale.results import read_rows
from jaxscale.runner import Interrupted, ModelSpec, RunSettings
from jaxscale.sweep import run_sweep
from jaxscale.train import Budget, OptimConfig

SETTINGS = RunSettings(batch_size=4, seq_len=32, eval_windows=8, progress=False, steps_per_dispatch=10)


def _data():
    return from_corpus(load_corpus(), seq_len=32, batch_size=4, eval_max_windows=8)


def _specs():
    names = ["ladder/l1", "ladder/l2", "ladder/l1"]
    return [ModelSpec(create_model_config(n), seed=i, optim=OptimConfig(lr=3e-3), budget=Budget("steps", 30 + 10 * i))
            for i, n in enumerate(names)]


def _numbers(row):
    return [p["train_loss"] for p in row["curve"]], [p.get("val_loss") for p in row["curve"]], row["test_loss"]


@pytest.fixture(scope="module")
def one_lane():
    return run_sweep(_specs(), _data(), SETTINGS, mode="sequential", save_weights=False, lanes=1)


def test_two_lanes_give_the_rows_of_one_lane(tmp_path, one_lane):
    two = run_sweep(_specs(), _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, lanes=2)
    assert {g.lane for g in two.groups} == {0, 1} and {g.lane for g in one_lane.groups} == {0}
    assert [r["run_id"] for r in two.rows] == [r["run_id"] for r in one_lane.rows]
    for a, b in zip(one_lane.rows, two.rows):
        assert _numbers(a) == _numbers(b)  # bit for bit
    on_disk = read_rows(tmp_path / "results.jsonl")
    assert sorted(r["run_id"] for r in on_disk) == sorted(r["run_id"] for r in two.rows)
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["profile"]["lanes"] == 2 and sorted(g["lane"] for g in plan["groups"]) == sorted(
        g.lane for g in two.groups)
    assert {r["stack"]["lane"] for r in two.rows} == {0, 1}


def test_a_stop_in_two_lanes_resumes_to_the_same_rows(tmp_path, one_lane):
    calls = {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(Interrupted):
        run_sweep(_specs(), _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, lanes=2,
                  should_stop=stop_soon)
    resumed = run_sweep(_specs(), _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, lanes=2)
    for a, b in zip(one_lane.rows, resumed.rows):
        assert _numbers(a) == _numbers(b)
    assert sorted(r["run_id"] for r in read_rows(tmp_path / "results.jsonl")) == sorted(
        r["run_id"] for r in one_lane.rows)


def test_a_failing_lane_raises_its_error_and_stops_the_other(tmp_path, one_lane):
    """A row hook that fails for one model: its error (not the other lane's stop) is raised, the
    other lane checkpoints and stops, and a rerun without the fault resumes to the same rows."""
    def hook(row, spec, result, i):
        if spec.seed == 1:
            raise ValueError("hook failed for seed 1")

    with pytest.raises(ValueError, match="hook failed for seed 1"):
        run_sweep(_specs(), _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, lanes=2,
                  row_hook=hook)
    resumed = run_sweep(_specs(), _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, lanes=2)
    for a, b in zip(one_lane.rows, resumed.rows):
        assert _numbers(a) == _numbers(b)


@pytest.mark.slow
def test_sigterm_stops_both_lanes_with_checkpoints_then_resumes(tmp_path):
    """The CLI on two lanes: SIGTERM reaches the main thread (waiting on the lanes), both lanes
    checkpoint and the process exits at once; the rerun ends with the rows of one lane."""
    import subprocess
    import sys

    from test_resume import SWEEP, _env, _rows_by_id, sigterm_after_a_checkpoint

    cmd = [sys.executable, *[a if a != "stack" else "sequential" for a in SWEEP]]
    ref = subprocess.run(cmd + ["--lanes", "1", "--out", str(tmp_path / "ref")], env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "two"
    sigterm_after_a_checkpoint(cmd + ["--lanes", "2", "--out", str(out)], out)
    done = subprocess.run(cmd + ["--lanes", "2", "--out", str(out)], env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    a, b = _rows_by_id(tmp_path / "ref"), _rows_by_id(out)
    assert a.keys() == b.keys() and len(a) == 4
    for rid in a:
        assert _numbers(a[rid]) == _numbers(b[rid])


def test_a_free_lane_takes_the_next_group_whatever_the_plan_said():
    """Groups are taken from one queue, longest estimate first, by whichever lane is free: a
    group estimated long that ends at once frees its lane for the next group (a fixed lane per
    group would queue `c` behind `b`, on the lane the estimates balance it to)."""
    import threading
    import time

    from jaxscale.planner import Group
    from jaxscale.sweep_lanes import run_lanes

    groups = [Group("c", (2,), "alone", "x", 1.0, lane=1), Group("a", (0,), "alone", "x", 3.0, lane=0),
              Group("b", (1,), "alone", "x", 2.0, lane=1)]
    actual = {"a": 0.2, "b": 1.5, "c": 0.0}  # a runs long enough for both lanes to start
    started, ran, rows_of = [], {}, {}

    def run_group(g, prepared, lane):
        started.append(g.id)
        ran[g.id] = lane
        time.sleep(actual[g.id])
        return [{"id": g.id}]

    run_lanes(groups, 2, run_group, rows_of, threading.Event())
    assert started[:2] in (["a", "b"], ["b", "a"]) and started[2] == "c"
    assert ran["c"] == ran["a"] != ran["b"]
    assert set(rows_of) == {"a", "b", "c"}
