"""Invariants 5 and 6: sweeps resume exactly after an interruption, a kill, or a kill inside a
checkpoint save; a resume with changed settings is refused; signals checkpoint and exit."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxscale.checkpoint import GroupCheckpoint
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.data.source import from_corpus
from jaxscale.results import read_rows
from jaxscale.runner import Interrupted, ModelSpec, RunSettings, train_group
from jaxscale.sweep import expand, run_sweep
from jaxscale.train import Budget, OptimConfig

SETTINGS = RunSettings(batch_size=4, seq_len=32, eval_windows=8, progress=False, steps_per_dispatch=10)


def _data():
    return from_corpus(load_corpus(), seq_len=32, batch_size=4, eval_max_windows=8)


def _specs():
    cfgs = [create_model_config("ladder/l1"), create_model_config("ladder/l2")]
    return [ModelSpec(c, seed=i, optim=OptimConfig(lr=3e-3), budget=Budget("steps", 40 + 10 * i))
            for i, c in enumerate(cfgs)]


def _curve(row):
    return [p["train_loss"] for p in row["curve"]]


def test_interrupted_group_resumes_to_the_same_rows(tmp_path):
    data, specs = _data(), _specs()
    reference = train_group(specs, data, SETTINGS, mode="stack", stack_id="g")
    ckpt = GroupCheckpoint(tmp_path / "ck")
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(Interrupted) as info:
        train_group(specs, data, SETTINGS, mode="stack", stack_id="g", checkpoint=ckpt, should_stop=stop_after_two)
    assert 0 < info.value.step < 50 and ckpt.latest() is not None
    resumed = train_group(specs, data, SETTINGS, mode="stack", stack_id="g", checkpoint=ckpt)
    for a, b in zip(reference.rows, resumed.rows):
        assert a["run_id"] == b["run_id"]
        np.testing.assert_allclose(_curve(a), _curve(b), rtol=0, atol=1e-6)
        assert abs(a["test_loss"] - b["test_loss"]) <= 1e-6
        assert [p.get("val_loss") for p in a["curve"]] == pytest.approx([p.get("val_loss") for p in b["curve"]])


def test_resume_with_changed_setting_is_refused(tmp_path):
    data = _data()
    specs = expand([create_model_config("ladder/l1")], seeds=[0], lrs=[3e-3], budgets=[Budget("steps", 5)])
    run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False,
              record={"lrs": [3e-3], "seeds": [0]}, log=open(os.devnull, "w"))
    assert len(read_rows(tmp_path / "results.jsonl")) == 1
    with pytest.raises(ValueError, match=r"`specs` holds the same model more than once: \['ladder/l1 seed=0"):
        run_sweep(specs * 2, data, SETTINGS, mode="sequential", out=tmp_path)
    with pytest.raises(ValueError, match=r"--lrs was \[0.003\], now \[0.001\]"):
        run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, record={"lrs": [1e-3], "seeds": [0]})
    with pytest.raises(ValueError, match="settings.batch_size"):
        run_sweep(specs, data, RunSettings(batch_size=8, progress=False), mode="sequential", out=tmp_path,
                  record={"lrs": [3e-3], "seeds": [0]})
    # the same command resumes: nothing retrained, no duplicate rows
    run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, record={"lrs": [3e-3], "seeds": [0]},
              log=open(os.devnull, "w"))
    assert len(read_rows(tmp_path / "results.jsonl")) == 1


# ----- the CLI in a subprocess: kills, crashes inside a save, signals -----------------------------

SWEEP = ["-m", "jaxscale.cli", "sweep", "--family", "ladder", "--sizes", "l1", "l2", "--seeds", "0", "1",
         "--steps", "240", "--batch-size", "4", "--seq-len", "32", "--eval-windows", "8", "--mode", "stack",
         "--checkpoint-every", "20", "--no-save-weights", "--quiet"]


def _env(**extra):
    env = dict(os.environ, JAXSCALE_COMPILATION_CACHE="off", **extra)
    env.pop("XLA_FLAGS", None)
    return env


def _sweep(out, **env):
    return subprocess.run([sys.executable, *SWEEP, "--out", str(out)], env=_env(**env), capture_output=True,
                          text=True, timeout=600)


def _wait_for_checkpoint(out: Path, proc, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list(out.glob("checkpoints/*/LATEST")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"sweep ended before its first checkpoint: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def sigterm_after_a_checkpoint(cmd, out: Path, attempts: int = 3) -> None:
    """Start the sweep ``cmd``, SIGTERM it once a checkpoint exists: it must exit at once with
    128 + SIGTERM, say how to resume, and leave its checkpoints.

    A signal that lands after the sweep's last step boundary (the test process stalled between
    seeing the checkpoint and sending it: once in CI on this shared machine) can only let the
    sweep finish, with status 0 and every row written; then the attempt is made again in a
    fresh folder, and the test fails unless an attempt is really interrupted."""
    for _ in range(attempts):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_checkpoint(out, proc)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert time.time() - t0 < 10
        if proc.returncode == 0 and "SIGTERM" in err and (out / "results.jsonl").exists():
            continue  # too late to interrupt: the sweep had finished training
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "resume with the same command" in err
        assert list(out.glob("checkpoints/*/LATEST"))
        return
    raise AssertionError(f"no attempt of {attempts} was interrupted: every sweep finished before its SIGTERM")


def _rows_by_id(out):
    return {r["run_id"]: r for r in read_rows(out / "results.jsonl")}


def _assert_same_rows(a_out, b_out):
    a, b = _rows_by_id(a_out), _rows_by_id(b_out)
    assert a.keys() == b.keys() and len(a) == 4
    for rid in a:
        np.testing.assert_allclose(_curve(a[rid]), _curve(b[rid]), rtol=0, atol=1e-6)
        assert abs(a[rid]["test_loss"] - b[rid]["test_loss"]) <= 1e-6


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    done = _sweep(out)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_sigkill_at_a_random_point_then_resume(tmp_path, uninterrupted):
    proc = subprocess.Popen([sys.executable, *SWEEP, "--out", str(tmp_path)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(tmp_path, proc)
    time.sleep(random.Random(os.getpid()).uniform(0.0, 2.0))
    proc.kill()
    proc.wait()
    done = _sweep(tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_same_rows(uninterrupted, tmp_path)


@pytest.mark.slow
def test_kill_inside_a_checkpoint_save_keeps_the_previous_one(tmp_path, uninterrupted):
    crashed = _sweep(tmp_path, JAXSCALE_TEST_CRASH_IN_SAVE="3")
    assert crashed.returncode == 86, crashed.stderr
    latest = (next(tmp_path.glob("checkpoints/*")) / "LATEST").read_text()
    assert latest == "step-000000040"  # the 2nd save; the 3rd died half-written
    assert list(tmp_path.glob("checkpoints/*/.step-000000060.partial"))
    done = _sweep(tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_same_rows(uninterrupted, tmp_path)


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_then_resumes(tmp_path, uninterrupted):
    sigterm_after_a_checkpoint([sys.executable, *SWEEP, "--out", str(tmp_path)], tmp_path)
    done = _sweep(tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_same_rows(uninterrupted, tmp_path)


def test_compile_ahead_gives_the_same_rows_and_survives_an_interruption(tmp_path):
    """``compile_ahead`` prepares the next group in a thread while one trains: the rows must be
    those of the plain sweep, and a stop inside the first group must leave a sweep that resumes
    to them (the prepared group is dropped, not half-used)."""
    import dataclasses

    data = _data()
    specs = _specs() + [ModelSpec(create_model_config("ladder/l1"), seed=5, optim=OptimConfig(lr=1e-3),
                                  budget=Budget("steps", 30))]
    ahead = dataclasses.replace(SETTINGS, compile_ahead=True)
    plain = run_sweep(specs, data, dataclasses.replace(SETTINGS, compile_ahead=False), mode="sequential",
                      save_weights=False, lanes=1).rows
    calls = {"n": 0}

    def stop_once():
        calls["n"] += 1
        return calls["n"] == 2

    with pytest.raises(Interrupted):
        run_sweep(specs, data, ahead, mode="sequential", out=tmp_path, save_weights=False, should_stop=stop_once,
                  lanes=1)
    resumed = run_sweep(specs, data, ahead, mode="sequential", out=tmp_path, save_weights=False, lanes=1).rows
    assert [r["stack"]["compiled_ahead"] for r in resumed] == [False, True, True]
    for a, b in zip(plain, resumed):
        assert _curve(a) == _curve(b) and a["test_loss"] == b["test_loss"]
    assert [r["run_id"] for r in read_rows(tmp_path / "results.jsonl")] == [r["run_id"] for r in resumed]


def test_a_sweep_of_shared_programs_resumes_and_saves_true_shape_weights(tmp_path):
    """A plan with a shared program (planner ``Group.shared``, forced here by a profile whose
    compiles are dear): on two lanes, stopped inside a group, resumed from ``plan.json`` to the
    rows of an uninterrupted one-lane run; the weights load back by name at the true shape."""
    import dataclasses

    from jaxscale.model import init_params
    from jaxscale.device_profile import DeviceProfile
    from jaxscale.sweep import load_weights

    data, specs = _data(), _specs()
    dear = DeviceProfile("cpu", flop_rate=25e9, overhead_s=2e-4, per_model_s=5e-5, compile_s=60.0, param_s=4.5e-9,
                         stack_compile=1.6, lanes=2)
    plain = run_sweep(specs, data, SETTINGS, mode="auto", save_weights=False, profile=dataclasses.replace(dear, lanes=1))
    assert [g.shared for g in plain.groups] == [(0, 1), (0, 1)] and [g.compiles for g in plain.groups] == [True, False]
    calls = {"n": 0}

    def stop_once():
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(Interrupted):
        run_sweep(specs, data, SETTINGS, mode="auto", out=tmp_path, should_stop=stop_once, profile=dear)
    resumed = run_sweep(specs, data, SETTINGS, mode="auto", out=tmp_path, profile=dear)
    assert [g.shared for g in resumed.groups] == [(0, 1), (0, 1)]
    assert [g.eval_shared for g in resumed.groups] == [(0, 1), (0, 1)]  # read back from plan.json
    for a, b in zip(plain.rows, resumed.rows):
        assert _curve(a) == _curve(b) and a["test_loss"] == b["test_loss"]
        assert b["stack"]["shared_program"] == [s.label for s in specs]
    for spec in specs:
        cfg, params, _ = load_weights(tmp_path, spec.cfg.name)
        assert {k: v.shape for k, v in params.items()} == {k: v.shape for k, v in init_params(cfg, 0).items()}
        # a bare size name finds it too, as model names do elsewhere ("no trained model named 'l1'")
        bare = spec.cfg.name.rsplit("/", 1)[-1]
        assert load_weights(tmp_path, bare)[2]["run_id"] == load_weights(tmp_path, spec.cfg.name)[2]["run_id"]


# ----- a folder left by a crash at an awkward moment, or holding something else ------------------

def _quiet():
    return open(os.devnull, "w")


def _two_groups():
    """Two tiny models trained alone: two groups, two rows."""
    return expand([create_model_config("ladder/l1")], seeds=[0, 1], lrs=[3e-3], budgets=[Budget("steps", 5)])


def test_resume_after_a_truncated_last_row_leaves_a_whole_results_file(tmp_path):
    """A results.jsonl cut inside its last row (a crash inside an older writer's append): the
    resume writes that row again on a line of its own, and every later resume reads the file
    (the row used to be glued onto the fragment, and the next resume found a corrupt middle line)."""
    import warnings

    from jaxscale.results import TruncatedRowWarning

    data, specs = _data(), _two_groups()
    run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False, log=_quiet())
    results = tmp_path / "results.jsonl"
    whole = results.read_bytes()
    first_end = whole.index(b"\n") + 1
    results.write_bytes(whole[:first_end + (len(whole) - first_end) // 2])
    with pytest.warns(TruncatedRowWarning):
        run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False, log=_quiet())
    for _ in range(2):  # the resume after the repair, and one more
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncatedRowWarning)
            run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False, log=_quiet())
            assert results.read_bytes() == whole


def test_a_kill_between_the_weights_and_rows_json_resumes(tmp_path):
    """Weights are saved before the group's rows.json: a kill in between leaves weights of a
    group that counts as unfinished. The resume trains it again and must save over them (orbax
    refused: "Destination ... already exists", at every resume)."""
    from jaxscale.sweep import load_weights

    data, specs = _data(), _two_groups()[:1]
    done = run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, log=_quiet())
    # the state of that kill: weights/g00 written, no rows.json, no row appended
    (next(tmp_path.glob("checkpoints/*")) / "rows.json").unlink()
    (tmp_path / "results.jsonl").unlink()
    assert list(tmp_path.glob("weights/*"))
    resumed = run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, log=_quiet())
    assert [r["test_loss"] for r in resumed.rows] == [r["test_loss"] for r in done.rows]
    _, params, row = load_weights(tmp_path, "ladder/l1")
    assert row["run_id"] == done.rows[0]["run_id"] and params


def test_a_resumed_row_from_rows_json_keeps_its_numbers(tmp_path):
    """rows.json is converted as results.jsonl is (``results._jsonable``): a numpy number a row
    hook adds was written as a string (``default=str``), and a resume appended that string."""
    def hook(row, spec, result, i):
        row["extra"] = np.float32(0.5)

    data, specs = _data(), _two_groups()[:1]
    run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False, row_hook=hook,
              log=_quiet())
    (tmp_path / "results.jsonl").unlink()  # a kill after rows.json, before the append
    rows = run_sweep(specs, data, SETTINGS, mode="sequential", out=tmp_path, save_weights=False, row_hook=hook,
                     log=_quiet()).rows
    assert rows[0]["extra"] == 0.5 and read_rows(tmp_path / "results.jsonl")[0]["extra"] == 0.5


def test_settings_of_a_sweep_that_trained_nothing_are_replaced(tmp_path):
    """A bad setting found only once the sweep started (a sequence longer than the models'
    context) came after sweep.json and plan.json recorded it, and every rerun with a good value
    was refused as a changed setting; with nothing trained there, the rerun replaces them. A
    sweep that trained something is still refused (``test_resume_with_changed_setting_is_refused``)."""
    import dataclasses
    import json

    specs = _two_groups()[:1]
    too_long = from_corpus(load_corpus(), seq_len=128, batch_size=4, eval_max_windows=8)
    with pytest.raises(ValueError, match="longer than the models' context"):
        run_sweep(specs, too_long, dataclasses.replace(SETTINGS, seq_len=128), mode="sequential", out=tmp_path,
                  save_weights=False, log=_quiet())
    assert (tmp_path / "sweep.json").exists() and not (tmp_path / "results.jsonl").exists()
    lines = []
    log = type("Log", (), {"write": lambda self, s: lines.append(s), "flush": lambda self: None})()
    run_sweep(specs, _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False, log=log)
    assert ("nothing was trained under the settings its sweep.json records (settings.seq_len was 128, now 32): "
            "replacing them and the plan") in "".join(lines)
    assert "resuming the sweep" not in "".join(lines)  # planned anew, not from the stale plan.json
    assert len(read_rows(tmp_path / "results.jsonl")) == 1
    assert json.loads((tmp_path / "sweep.json").read_text())["settings"]["seq_len"] == 32


@pytest.mark.parametrize("found", ["results.jsonl", "ladder/sweep.json"])
def test_a_sweep_into_another_commands_folder_is_refused(found, tmp_path):
    """``jaxscale train --out M`` then ``jaxscale sweep --out M`` mixed both commands' rows in one
    results.jsonl (the check was only against a sweep.json); a ``jaxscale run`` study's folder
    (ladder/sweep.json) gets its results.jsonl replaced at the study's end."""
    (tmp_path / found).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / found).write_text('{"run_id": "theirs"}\n')
    with pytest.raises(ValueError, match=rf"^--out '{tmp_path}' holds another command's output \({found}\) "
                                         r"and no sweep.json.*Give a new or empty --out folder"):
        run_sweep(_two_groups()[:1], _data(), SETTINGS, mode="sequential", out=tmp_path, save_weights=False,
                  log=_quiet())
    assert (tmp_path / found).read_text() == '{"run_id": "theirs"}\n'
    assert not (tmp_path / "sweep.json").exists() and not (tmp_path / "plan.json").exists()


def test_a_sweep_record_of_another_kind_or_a_bad_plan_is_refused_naming_it(tmp_path):
    """An emergence study's sweep.json records no command options: a sweep with options there was
    refused as a changed setting ("--lrs was None"), as if the folder held a sweep. A plan.json
    that is not a plan ended in a KeyError or TypeError traceback."""
    import json

    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    (study / "sweep.json").write_text(json.dumps({"command": {}, "models": []}))
    with pytest.raises(ValueError, match=r"holds another command's output \(study.json: an emergence study\)"):
        run_sweep(_two_groups()[:1], _data(), SETTINGS, mode="sequential", out=study, save_weights=False,
                  record={"lrs": [3e-3]}, log=_quiet())
    for text, detail in (("null", r"\(expected a JSON object\): got null"),
                         ('{"groups": [{"x": 1}]}', r"\(its groups cannot be read: TypeError")):
        (tmp_path / "plan").mkdir(exist_ok=True)
        (tmp_path / "plan" / "plan.json").write_text(text)
        with pytest.raises(ValueError, match=rf"^--out: {tmp_path / 'plan' / 'plan.json'} is not a sweep plan {detail}"):
            run_sweep(_two_groups()[:1], _data(), SETTINGS, mode="sequential", out=tmp_path / "plan",
                      save_weights=False, log=_quiet())
