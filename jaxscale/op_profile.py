"""Where a compiled step's time goes: one traced dispatch, summarised op by op.

Why: a step's MFU says how far it is from the peak, not why. On the 2-core CPU the trace of a
notebook-emergence step showed that most of its time was copies, dynamic slices and broadcasts
around the layer scan and the flat parameter vector, not matmuls; on a GPU the same table says
whether the matmuls, the attention or the elementwise passes hold a step back. ``jaxscale bench
--profile DIR`` runs one extra dispatch of every timed program under ``jax.profiler`` (not part
of the timings), keeps the trace in DIR (TensorBoard / Perfetto can open it), and reports the
ops with the most *self* time (an op's time minus that of the ops nested in it), per step.

Only the device's ops are counted where the trace names device lanes (``/device:…`` on a GPU or
TPU); on a CPU, where XLA's ops run on host threads, every event except Python frames
(``$file:line``) and the runtime's own bookkeeping is counted.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path
from typing import Callable, Iterable

_SUFFIX = re.compile(r"\.\d+$")  # "fusion.12" and "fusion.3" are one kind of op
_NOT_OPS = ("ThunkExecutor", "end: ", "SlinkyThreadPool", "TfrtCpuExecutable", "PjitFunction",
            "PjRtCpuClient", "ExecuteHelper", "ExecuteSharded")


def capture(run: Callable[[], None], folder: str | Path) -> Path:
    """Run ``run()`` (which must block until its work is done) under ``jax.profiler`` and return
    the trace file it wrote in ``folder``."""
    import jax

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.rglob("*.trace.json.gz"))
    jax.profiler.start_trace(str(folder))
    try:
        run()
    finally:
        jax.profiler.stop_trace()
    new = sorted(set(folder.rglob("*.trace.json.gz")) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"jax.profiler wrote no trace file under {folder}")
    return new[-1]


def load_events(trace: str | Path) -> tuple[list[dict], dict[int, str]]:
    """The complete ("X") events of a Chrome-format trace file and its process names."""
    path = Path(trace)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    names = {e["pid"]: e.get("args", {}).get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    return [e for e in events if e.get("ph") == "X" and "dur" in e], names


def self_times(events: Iterable[dict]) -> list[tuple[dict, float]]:
    """Each event with its self time (µs): its duration minus that of the events nested directly
    in it on the same thread."""
    lanes: dict[tuple, list[dict]] = collections.defaultdict(list)
    for e in events:
        lanes[(e.get("pid"), e.get("tid"))].append(e)
    out = []
    for lane in lanes.values():
        lane.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[list] = []  # [event, self time so far]
        for e in lane:
            while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
                out.append(tuple(stack.pop()))
            if stack:
                stack[-1][1] -= e["dur"]
            stack.append([e, float(e["dur"])])
        out.extend(tuple(s) for s in stack)
    return out


def op_table(events: list[dict], process_names: dict[int, str], *, steps: int, top: int = 15) -> dict:
    """The ``top`` op kinds by self time per step (``steps`` steps were traced), with their share
    of all counted time. Pure: tests feed it synthetic events."""
    if steps < 1:
        raise ValueError(f"op_table: steps must be >= 1, got {steps}")
    device_pids = {pid for pid, name in process_names.items() if name.startswith("/device:")}
    if device_pids:
        chosen = [e for e in events if e.get("pid") in device_pids]
        scope = "device lanes: " + ", ".join(sorted(process_names[p] for p in device_pids))
    else:
        chosen = [e for e in events if not e["name"].startswith("$")]
        scope = "host threads (XLA's CPU ops; Python frames and runtime bookkeeping left out)"
    totals: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for e, us in self_times(chosen):
        if e["name"].startswith(_NOT_OPS):
            continue
        kind = _SUFFIX.sub("", e["name"])
        totals[kind][0] += us
        totals[kind][1] += 1
    counted = sum(t for t, _ in totals.values())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]
    return {"scope": scope, "steps": steps, "counted_us_per_step": counted / steps,
            "ops": [{"op": k, "us_per_step": t / steps, "calls_per_step": n / steps,
                     "share": t / counted if counted else 0.0} for k, (t, n) in ranked]}


def format_table(table: dict, *, indent: str = "    ") -> str:
    lines = [f"{indent}op profile ({table['scope']}): {table['counted_us_per_step']:,.1f} µs of op time per step"]
    for o in table["ops"]:
        lines.append(f"{indent}  {o['us_per_step']:10.1f} µs {100 * o['share']:5.1f}%  "
                     f"{o['calls_per_step']:7.1f} calls  {o['op'][:70]}")
    return "\n".join(lines)
