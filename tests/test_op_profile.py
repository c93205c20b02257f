"""The op profile of ``jaxscale bench --profile``: self times on synthetic traces (nesting, device
lanes, op kinds merged), and a real trace of a tiny CPU program."""

import gzip
import json

import pytest

from jaxscale import op_profile
from jaxscale.cli import main


def _x(name, ts, dur, pid=1, tid=1):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": pid, "tid": tid}


def test_self_time_subtracts_nested_events_on_the_same_thread_only():
    events = [_x("while.1", 0, 100), _x("fusion.1", 10, 30), _x("fusion.2", 50, 20), _x("dot.3", 55, 5),
              _x("copy.1", 20, 40, tid=2)]  # another thread: not nested in while.1
    got = {e["name"]: t for e, t in op_profile.self_times(events)}
    assert got == {"while.1": 50.0, "fusion.1": 30.0, "fusion.2": 15.0, "dot.3": 5.0, "copy.1": 40.0}


def test_op_table_merges_numbered_ops_per_step_and_prefers_device_lanes():
    events = [_x("fusion.1", 0, 30, pid=2), _x("fusion.7", 40, 10, pid=2), _x("gemm.2", 60, 60, pid=2),
              _x("$python.py:1 f", 0, 500, pid=1), _x("host_op", 0, 400, pid=1)]
    names = {1: "/host:CPU", 2: "/device:GPU:0"}
    table = op_profile.op_table(events, names, steps=10, top=5)
    assert table["scope"].startswith("device lanes")
    assert [o["op"] for o in table["ops"]] == ["gemm", "fusion"]
    assert table["ops"][1] == {"op": "fusion", "us_per_step": 4.0, "calls_per_step": 0.2, "share": 0.4}
    assert table["counted_us_per_step"] == pytest.approx(10.0)
    host = op_profile.op_table(events, {1: "/host:CPU"}, steps=1, top=1)  # no device lane: host ops
    assert host["ops"][0]["op"] == "host_op" and "Python frames" in host["scope"]
    with pytest.raises(ValueError, match="steps"):
        op_profile.op_table(events, names, steps=0)


def test_load_events_reads_a_gzipped_chrome_trace(tmp_path):
    doc = {"traceEvents": [{"ph": "M", "name": "process_name", "pid": 3, "args": {"name": "/device:TPU:0"}},
                           _x("fusion.1", 0, 5, pid=3), {"ph": "i", "name": "marker", "ts": 1, "pid": 3}]}
    path = tmp_path / "t.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(doc, f)
    events, names = op_profile.load_events(path)
    assert [e["name"] for e in events] == ["fusion.1"] and names == {3: "/device:TPU:0"}


def test_bench_profile_reports_each_programs_ops(tmp_path, capsys):
    rc = main(["bench", "--d-model", "16", "--n-heads", "1", "--n-layers", "1", "--seq-len", "8", "--batch-size", "2",
               "--modes", "sequential", "--steps-per-dispatch", "3", "--repeats", "2", "--json",
               "--profile", str(tmp_path / "prof"), "--profile-top", "4"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    prof = res["modes"]["sequential"]["groups"][0]["profile"]
    assert prof["steps"] == 3 and 1 <= len(prof["ops"]) <= 4
    assert prof["counted_us_per_step"] > 0 and sum(o["share"] for o in prof["ops"]) <= 1 + 1e-9
    assert (tmp_path / "prof").is_dir() and prof["trace"].endswith(".trace.json.gz")
    assert res["modes"]["sequential"]["groups"][0]["step_ms"]["repeats"] == 2  # the traced dispatch is not timed


def test_bench_profile_into_a_file_is_a_clean_error(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert main(["bench", "--d-model", "16", "--n-layers", "1", "--seq-len", "8", "--profile", str(path)]) == 2
    assert "--profile" in capsys.readouterr().err
