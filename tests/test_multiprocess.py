"""Several processes (``jax.distributed``): a sweep on two CPU processes checkpoints, stops on a
signal that reaches one process only, survives a crash inside a checkpoint save, resumes, and
saves its weights, ending with the rows and weights of an uninterrupted two-process run.

Before this was fixed, the first checkpoint hung: orbax's save, called by process 0 alone, waited
for the other process in a broadcast (its directory check) that it never entered.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jaxscale import devices
from jaxscale.results import read_rows

# Each process joins the job explicitly (as ``--distributed`` does from the environment), so
# that this runs the same way on code that read the process count and id or not. With
# ``JAXSCALE_TEST_SIGTERM_AFTER_SAVE=<process id>`` that process alone sends itself SIGTERM
# after its first checkpoint: the other one is never signalled.
LAUNCHER = r"""
import os, signal, sys
import jax
port, pid = sys.argv[1], int(sys.argv[2])
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
if os.environ.get("JAXSCALE_TEST_SIGTERM_AFTER_SAVE") == str(pid):
    from jaxscale.checkpoint import GroupCheckpoint
    real, sent = GroupCheckpoint.save, []
    def save(self, arrays, meta):
        path = real(self, arrays, meta)
        if not sent:
            sent.append(1)
            signal.raise_signal(signal.SIGTERM)
        return path
    GroupCheckpoint.save = save
from jaxscale.cli import main
sys.exit(main(sys.argv[3:]))
"""

SWEEP = ["sweep", "--family", "ladder", "--sizes", "l1", "--seeds", "0", "1", "--steps", "30",
         "--batch-size", "4", "--seq-len", "32", "--eval-windows", "8", "--eval-every", "5",
         "--mode", "stack", "--checkpoint-every", "10", "--quiet"]
TIMEOUT = 120  # seconds per two-process run: a hang fails the test instead of holding CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(out, **extra_env) -> list[tuple[int, str]]:
    """Run the sweep on two processes; [(status, stderr)] of process 0 and 1."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAXSCALE_COMPILATION_CACHE="off", JAXSCALE_PROGRAM_CACHE="off",
               **extra_env)
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", LAUNCHER, str(port), str(i), *SWEEP, "--out", str(out)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT)
            results.append((p.returncode, err))
    except subprocess.TimeoutExpired:
        errs = []
        for p in procs:
            p.kill()  # SIGKILL: SIGTERM would only ask for a checkpoint
            errs.append(p.communicate()[1][-2000:])
        pytest.fail(f"two-process sweep did not finish in {TIMEOUT} s (hung?); stderr: {errs}")
    return results


def _rows(out):
    return {r["run_id"]: r for r in read_rows(out / "results.jsonl")}


@pytest.mark.slow
def test_two_processes_checkpoint_stop_crash_resume_and_weights(tmp_path):
    from jaxscale.sweep import load_weights

    ref = tmp_path / "ref"
    for status, err in _two_processes(ref):
        assert status == 0, err
    ref_rows = _rows(ref)
    assert len(ref_rows) == 2 and all(not r["diverged"] for r in ref_rows.values())
    assert all(r["stack"]["devices"] == 2 for r in ref_rows.values())  # the stack ran across both processes
    assert [p.name for p in (ref / "checkpoints").glob("*/*")] == ["rows.json"]  # snapshots cleared
    weights = {rid: load_weights(ref, r["name"], run_id=rid)[1] for rid, r in ref_rows.items()}

    # SIGTERM reaches process 1 alone, after its first checkpoint (step 10): both processes stop at
    # the next boundary (step 15), agreed, with a checkpoint
    out = tmp_path / "run"
    for status, err in _two_processes(out, JAXSCALE_TEST_SIGTERM_AFTER_SAVE="1"):
        assert status == 143, err
        assert "interrupted at step 15" in err and "resume with the same command" in err, err
    latest = list(out.glob("checkpoints/*/LATEST"))
    assert len(latest) == 1 and latest[0].read_text() == "step-000000015"
    assert not (out / "results.jsonl").exists()

    # the resume dies inside its first save (step 25), after the arrays, before the rename
    statuses = _two_processes(out, JAXSCALE_TEST_CRASH_IN_SAVE="1")
    assert statuses[0][0] == 86 and statuses[1][0] != 0, statuses
    assert latest[0].read_text() == "step-000000015"
    assert list(latest[0].parent.glob(".step-000000025.partial"))

    # and the next resume (from step 15) ends with the uninterrupted run's rows and weights
    for status, err in _two_processes(out):
        assert status == 0, err
    rows = _rows(out)
    assert rows.keys() == ref_rows.keys()
    for rid, r in rows.items():
        a = [p["train_loss"] for p in ref_rows[rid]["curve"]]
        np.testing.assert_allclose([p["train_loss"] for p in r["curve"]], a, rtol=0, atol=1e-6)
        assert [p.get("val_loss") for p in r["curve"]] == pytest.approx(
            [p.get("val_loss") for p in ref_rows[rid]["curve"]], abs=1e-6)
        assert r["test_loss"] == pytest.approx(ref_rows[rid]["test_loss"], abs=1e-6)
        got = load_weights(out, r["name"], run_id=rid)[1]
        for name, w in weights[rid].items():
            np.testing.assert_allclose(np.asarray(got[name]), np.asarray(w), rtol=0, atol=1e-6)


def test_init_distributed_passes_the_process_count_and_id_from_the_environment(monkeypatch):
    """jax 0.10 reads only JAX_COORDINATOR_ADDRESS itself; the README's multi-node example sets
    JAX_NUM_PROCESSES and JAX_PROCESS_ID too, and failed ('Number of processes must be defined')."""
    calls = []
    monkeypatch.setattr(devices.jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(devices.init_distributed, "_done", False, raising=False)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    devices.init_distributed()
    assert calls == [{"num_processes": 2, "process_id": 1}]
    devices.init_distributed()  # idempotent
    assert len(calls) == 1

    calls.clear()
    monkeypatch.setattr(devices.init_distributed, "_done", False)
    monkeypatch.delenv("JAX_NUM_PROCESSES")
    monkeypatch.delenv("JAX_PROCESS_ID")
    devices.init_distributed()  # a cluster jax detects (SLURM, TPU pods, Open MPI): nothing passed
    assert calls == [{}]

    monkeypatch.setattr(devices.init_distributed, "_done", False)
    monkeypatch.setenv("JAX_PROCESS_ID", "one")
    with pytest.raises(ValueError, match="JAX_PROCESS_ID must be a whole number, got 'one'"):
        devices.init_distributed()


def test_one_process_pays_nothing_for_agreement(monkeypatch):
    """On one process, ``any_process`` and ``barrier`` run no collective."""
    from jax.experimental import multihost_utils

    def refuse(*a, **k):
        raise AssertionError("a collective on one process")

    monkeypatch.setattr(multihost_utils, "process_allgather", refuse)
    monkeypatch.setattr(multihost_utils, "sync_global_devices", refuse)
    assert devices.any_process(True) is True and devices.any_process(False) is False
    devices.barrier("x")


def test_every_process_plans_with_process_0s_measured_rate(monkeypatch):
    """``--mode auto`` plans from a measured matmul rate; measured on each process, two processes
    could plan the groups differently and then wait in each other's collectives. On several
    processes ``calibrate`` takes process 0's measurement (a broadcast); on one, its own."""
    import jax
    from jax.experimental import multihost_utils

    from jaxscale import device_profile

    monkeypatch.setattr(device_profile, "measure_matmul_peak", lambda: 1.0e9)
    alone = device_profile.calibrate(measure=True)
    sent = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", lambda x: sent.append(float(x)) or 4.0e9)
    joined = device_profile.calibrate(measure=True)
    assert sent == [1.0e9]
    assert joined.flop_rate == pytest.approx(4 * alone.flop_rate)
    # another process measures nothing (its measurement would be thrown away) and takes process 0's
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    monkeypatch.setattr(device_profile, "measure_matmul_peak", lambda: pytest.fail("process 1 measured"))
    assert device_profile.calibrate(measure=True).flop_rate == pytest.approx(joined.flop_rate)
    assert sent == [1.0e9, 0.0]
