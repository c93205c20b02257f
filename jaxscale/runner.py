"""The host loop: train a group of models (one alone, or several as a stack) and make their rows.

A group shares one compiled program: the chunk of ``train.make_train_chunk`` runs many steps per
dispatch, chunk boundaries fall on evaluation points and on each model's last step, and every
model's validation loss is recorded at its evaluation points and at its end, its test loss at
its end. Result rows follow DESIGN.md §6.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import jax
import numpy as np

from jaxscale import program_cache
from jaxscale.checkpoint import GroupCheckpoint
from jaxscale.compile_mode import COMPILE_MODES
from jaxscale.config import ModelConfig
from jaxscale.data.corpus import Corpus
from jaxscale.data.source import TrainData
from jaxscale.devices import any_process, to_host
from jaxscale.early_stop import apply_early_stop
from jaxscale.group_setup import PreparedGroup, prepare_group
from jaxscale.model import ModelDims
from jaxscale.progress import Progress
from jaxscale.provenance import device_info, versions
from jaxscale.stack import pad_params, padded_flops_utilisation, unpad_params
from jaxscale.train import Budget, OptimConfig, tree_state_host

N_LAST_FOR_TRAIN_LOSS = 10


@dataclass(frozen=True)
class ModelSpec:
    """One model of a sweep: architecture, seed, optimiser settings and budget."""

    cfg: ModelConfig
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    budget: Budget = field(default_factory=lambda: Budget("steps", 100))

    @property
    def label(self) -> str:
        budget = "" if self.budget.kind == "steps" else f" {self.budget.kind}={self.budget.value:.3g}"
        return f"{self.cfg.name} seed={self.seed} lr={self.optim.lr:g}{budget}"


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every model of a run. ``seq_len`` None = the model's context;
    ``eval_every`` None = about ``n_evals`` evaluations over the longest run."""

    batch_size: int = 16
    seq_len: int | None = None
    data_seed: int = 0
    eval_every: int | None = None
    n_evals: int = 10
    eval_windows: int = 128
    steps_per_dispatch: int = 100
    progress: bool = True
    early_stop: tuple[int, float] | None = None  # (after epoch index, mean-loss threshold)
    compile_mode: str = "auto"  # "auto" | "full" | "fast": the CPU's code generation (compile_mode.py)
    # a sweep prepares the next group (state, programs) in a background thread while one trains.
    # True: compiles it there too. "auto" (default): loads its programs there only when they are
    # already compiled (the program cache: a warm run) on a CPU, and compiles them on an
    # accelerator, where the device trains while the host compiles (not measured yet). On the
    # 2-core CPU a background *compile* fought the training for the cores (notebook-emergence
    # cold, sequential 38-40 s with it vs 39-41 s without; auto 34-40 s vs 31-32 s); a background
    # *load* (~0.2 s per training program here) made no measurable difference there either (warm,
    # ten interleaved pairs: 9.7-14.5 s vs 11.3-13.9 s; README). False: all in the foreground.
    compile_ahead: bool | str = "auto"
    # devices the batch is split over (``devices.mesh_shape``): None = a stack puts every device
    # on its model axis and a model alone splits its batch over as many devices as divide it
    batch_shards: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_windows", "steps_per_dispatch", "n_evals"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"RunSettings.{name} must be a positive int, got {v!r}")
        for name in ("seq_len", "eval_every", "batch_shards"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ValueError(f"RunSettings.{name} must be a positive int or None, got {v!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"RunSettings.compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")
        if not (isinstance(self.compile_ahead, bool) or self.compile_ahead == "auto"):
            raise ValueError(f"RunSettings.compile_ahead must be True, False or 'auto', got {self.compile_ahead!r}")


def _boundaries(totals: Sequence[int], eval_every: int, chunk: int, epoch_steps: int | None = None,
                checkpoint_every: int | None = None) -> list[int]:
    """Global steps at which to stop a dispatch: evaluation points, each model's end, epoch ends
    (when early stopping needs them), checkpoints, and at most ``chunk`` steps apart."""
    end = max(totals)
    points = set(range(eval_every, end + 1, eval_every)) | set(totals)
    for every in (epoch_steps, checkpoint_every):
        if every:
            points |= set(range(every, end + 1, every))
    out, prev = [], 0
    for p in sorted(points):
        while p - prev > chunk:
            prev += chunk
            out.append(prev)
        out.append(p)
        prev = p
    return out


class Interrupted(Exception):
    """Training stopped on request (a signal) after saving a checkpoint at ``step``."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(f"interrupted at step {step}; checkpoint {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


def _wait_for_other_compiles(g: PreparedGroup) -> None:
    """Return once no other thread is compiling or loading one of ``g``'s programs.

    Why: a program cache's entry compiles under its lock (``program_cache.CachedProgram``), so a
    lane whose program (a shared training program, or an evaluation program shared with a group
    on another lane) another lane is compiling blocks in ``compile`` until that is done, and that
    wait was recorded as the group's compile (notebook-scaling's shared program, one 3.6 s
    compile, read as 3.6 s and 3.5 s in two rows). Taking each lock once here moves the wait out
    of the compile's timing; the compile that follows then finds the program in memory."""
    for fn in (g.chunk_fn, g.eval_fn):
        lock = getattr(fn, "_lock", None)
        if lock is not None:
            with lock:
                pass


def run_id_for(spec: "ModelSpec", data: TrainData, data_seed: int, stack_id: str | None, index: int) -> str:
    """A deterministic id: the same model of the same sweep gets the same id when resumed."""
    key = json.dumps([spec.label, spec.budget.to_dict(), spec.optim.__dict__, spec.cfg.to_dict(),
                      data.fingerprint, data_seed, stack_id, index], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def train_group(specs: Sequence[ModelSpec], data: TrainData | Corpus, settings: RunSettings = RunSettings(), *,
                mode: str = "stack", stack_id: str | None = None, checkpoint: GroupCheckpoint | None = None,
                checkpoint_every: int | None = None, should_stop=None,
                prepared: PreparedGroup | None = None, shared: Sequence[ModelSpec] | None = None,
                eval_shared: Sequence[ModelSpec] | None = None, wait: Callable[[], None] | None = None,
                on_compiled: Callable[[], None] | None = None) -> "GroupResult":
    """Train ``specs`` together (``mode='stack'``: one padded, vmapped program, its model axis
    sharded over every device) or, for a single spec, ``mode='alone'`` (the unvmapped step at the
    true shape) on ``data`` (a ``TrainData``, or a ``Corpus`` read with ``settings``' batch size
    and sequence length). Returns a ``GroupResult`` with one row per spec, in order.

    With ``checkpoint``, the group resumes from its newest snapshot and saves one every
    ``checkpoint_every`` steps; when ``should_stop()`` turns true at a dispatch boundary (on any
    process of a multi-process job: every process then stops there) it saves and raises
    ``Interrupted``. ``prepared``: the group's state and programs, made ahead by
    ``prepare_group`` with the same arguments (a sweep compiles the next group's programs while
    this one trains); its setup and compile time count in the rows' ``wall_seconds``.
    ``shared``, ``eval_shared``: the models sharing its training or evaluation program
    (``prepare_group``).
    ``wait``: called after the setup, before the programs are compiled or loaded: returns once
    another group (on another lane) has compiled the training program this one reuses
    (``planner.Group.compiled_by``; ``sweep_lanes.run_lanes``). ``on_compiled``: called once this
    group's programs are compiled or loaded. The time spent waiting, there or for another lane
    compiling one of this group's programs, is the rows' ``stack.waited_seconds``, not their
    ``compile_seconds`` (what this group compiled or loaded itself) nor their ``wall_seconds``.
    """
    g = prepared or prepare_group(specs, data, settings, mode=mode, stack_id=stack_id, checkpoint=checkpoint,
                                  shared=shared, eval_shared=eval_shared)
    labels = lambda ms: tuple(s.label for s in ms) if ms else ()  # noqa: E731
    if (tuple(g.specs) != tuple(specs) or g.mode != mode or (shared is not None and g.shared != labels(shared))
            or (eval_shared is not None and g.eval_shared != labels(eval_shared))):
        raise ValueError("train_group: `prepared` was made for other models or another mode")
    compiled_ahead = g.compile_ahead_s is not None
    t_wait = time.perf_counter()
    if wait is not None:
        wait()
    if not compiled_ahead:
        _wait_for_other_compiles(g)
    waited_s = time.perf_counter() - t_wait
    if not compiled_ahead:
        # Compile or load both programs before the first dispatch, so that the row's compile time
        # is that alone: timed as part of the first dispatch, a warm run reported its programs'
        # loads plus a whole epoch of training (1.1 s for the notebook's large model).
        g.compile()
    if on_compiled is not None:
        on_compiled()
    data, k, k_run, totals, eval_every, stacked = g.data, g.k, g.k_run, g.totals, g.eval_every, g.stacked
    state, hyper, dims, arrays, key, mesh = g.state, g.hyper, g.dims, g.arrays, g.key, g.mesh
    chunk_fn, val_rows, val_weights = g.chunk_fn, g.val_rows, g.val_weights
    train_losses, val_points, step, elapsed_before = g.train_losses, g.val_points, g.step, g.elapsed_before
    compile_s, chunk_len, epoch_steps, cfgs, env, seq_len = g.compile_s, g.chunk_len, g.epoch_steps, g.cfgs, g.env, g.seq_len
    t_start = time.perf_counter() - g.seconds  # the setup (and a compile made ahead) count as wall time
    # where the group's steps ran: those before a resume (from its checkpoint) and this run's, so
    # that a stack resumed on another number of devices records both, not only the last mesh
    segments = list(g.segments) + [{"from_step": g.step, "devices": g.n_dev, "batch_shards": g.batch_shards}]

    def save(at_step):
        if checkpoint is None:
            return None
        # gathered on every process (on several, ``to_host`` is a collective) and saved by every
        # process: ``GroupCheckpoint.save`` is a collective too (orbax's save waits for every
        # process; called by process 0 alone, it hung), process 0 alone writing its own files
        host_state, host_total = to_host(state), np.asarray(to_host(hyper.total_steps))
        # A stack's snapshot holds its k models, not the inert ones that pad it to a multiple of
        # the model shards (``k_run``, which depends on the device count): a resume on another
        # number of devices pads it again (``group_setup.restore``).
        real = (lambda x: x[:k]) if stacked else (lambda x: x)
        meta = {"step": at_step, "elapsed": elapsed_before + time.perf_counter() - t_start,
                "val_points": val_points[:k], "compile_seconds": compile_s, "models": k,
                "segments": segments}
        host = {"state": jax.tree.map(real, tree_state_host(host_state, g.layout, g.optim)),
                "total_steps": real(host_total),
                "train_losses": train_losses[:, :k]}
        return str(checkpoint.save(host, meta))

    progress = Progress(f"[{stack_id or mode}] {k} model{'s' if k > 1 else ''}", max(totals),
                        enabled=settings.progress, models=k)
    last_saved, t_train, n_first, program_source = step, time.perf_counter(), None, None
    for boundary in _boundaries(totals, eval_every, chunk_len, epoch_steps, checkpoint_every):
        if boundary <= step:
            continue  # done before the resume
        if step >= int(np.max(to_host(hyper.total_steps))):
            break  # every model stopped early
        n = boundary - step
        t0 = time.perf_counter()
        state, losses = chunk_fn(state, hyper, dims, arrays, key, np.int32(step), np.int32(n))
        losses = np.asarray(to_host(losses))[:n].reshape(n, k_run)
        if n_first is None:
            program_source = g.program_source if program_cache.in_use() and g.program_source != "off" else "off"
            if program_source in ("compiled", "disk"):
                program_cache.note_stored("train_chunk", g.program_key)  # for the planner of a later run
            if g.program_source == "off":  # arguments the cache cannot key: compiled by this dispatch
                n_first, t_train = boundary, time.perf_counter()  # timed from the next dispatch
                compile_s = compile_s if compile_s is not None else t_train - t0
            else:
                n_first, t_train = step, t0
                compile_s = compile_s if compile_s is not None else g.compile_ahead_s
        train_losses[step:boundary] = losses
        step = boundary
        ends = np.asarray(to_host(hyper.total_steps)).reshape(k_run)
        due = [step <= end and (step % eval_every == 0 or step == end) for end in ends]
        if any(due):
            vals = g.evaluate(state.params_P, val_rows, val_weights)
            for i in range(k_run):
                if due[i]:
                    val_points[i].append((step, float(vals[i])))
        if epoch_steps and step % epoch_steps == 0:
            hyper = apply_early_stop(hyper, train_losses, step, epoch_steps, settings.early_stop, k_run, val_points,
                                lambda: g.evaluate(state.params_P, val_rows, val_weights), mesh, stacked)
        elapsed = max(time.perf_counter() - t_train, 1e-9)
        # tokens of the models still within their budgets: a stack's finished (or early-stopped)
        # models are frozen, and counting them doubled the total of a stack with one model left
        ends_k = ends[:k]
        trained = int(np.sum(np.clip(np.minimum(ends_k, step) - n_first, 0, None)))
        timed = step > n_first
        progress.update(step, data.tokens_per_step * trained / elapsed if timed else float("nan"),
                        [None if ends_k[i] < step else float(losses[-1][i]) for i in range(k)],
                        per_model=data.tokens_per_step * (step - n_first) / elapsed if timed else None)
        # agreed between processes (any stops: all stop), or one would save and leave while the
        # others wait in the next dispatch's collectives; a single process asks nothing more
        stop = should_stop is not None and any_process(should_stop())
        if stop or (checkpoint_every and step - last_saved >= checkpoint_every and step < max(totals)):
            where = save(step)
            last_saved = step
            if stop:
                raise Interrupted(step, where)
    test_rows, test_weights = jax.device_put(tuple(data.test))
    test = g.evaluate(state.params_P, test_rows, test_weights)
    wall = elapsed_before + time.perf_counter() - t_start
    steady = time.perf_counter() - t_train

    final = tree_state_host(to_host(state), g.layout, g.optim)
    if stacked and k_run > k:
        final = jax.tree.map(lambda x: x[:k], final)
    steps_taken = np.asarray(final.step).reshape(k)
    rows = []
    padded = stacked or bool(g.shared)  # a stack, or a model alone at a shared program's envelope
    stack_info = {"id": stack_id, "size": k, "envelope": env.to_dict() if padded else None,
                  "padded_flops_util": padded_flops_utilisation(cfgs, seq_len, env=env),
                  "shared_program": list(g.shared) or None,
                  "eval_envelope": g.eval_env.to_dict() if g.eval_env is not None else None,
                  "eval_shared": list(g.eval_shared) or None,
                  "compile_seconds": compile_s, "waited_seconds": waited_s, "program_cache": program_source,
                  "compiled_ahead": compiled_ahead,
                  "steady_seconds": steady, "fast_compile": g.fast,
                  "devices": g.n_dev, "batch_shards": g.batch_shards, "inert_models": k_run - k,
                  "segments": segments}
    for i, spec in enumerate(specs):
        diverged = bool(np.asarray(final.diverged).reshape(k)[i])
        # The steps a model trained are its state's counter: the optimiser updates applied. A
        # model stopped early, or one that diverged, trained fewer than it was planned
        # (``totals``): a diverged model is frozen from the step whose loss or gradient turned
        # non-finite, and that step's update is not applied (``train.flat_step``). Its row used to
        # report the planned total, telling a reader that it trained its whole budget.
        n_i = int(steps_taken[i])
        # A diverged model's curve runs through that step (the update it did not apply), so that
        # the divergence shows as its last point; the steps after it trained nothing.
        n_curve = min(n_i + 1, totals[i]) if diverged else n_i
        row = _row(spec, n_i, train_losses[: n_curve, i], val_points[i], float(test[i]), diverged, data, seq_len,
                   mode, stack_info, wall, settings.data_seed, planned_steps=totals[i])
        row["run_id"] = run_id_for(spec, data, settings.data_seed, stack_id, i)
        rows.append(row)
    return GroupResult(rows, final, tuple(cfgs), stacked, padded and not stacked, env, g.eval_env)


@dataclass(frozen=True)
class GroupResult:
    """A trained group: its result rows and its final (host) state."""

    rows: list
    state: object
    cfgs: tuple
    stacked: bool
    padded: bool = False  # a model alone at a shared program's envelope (``state`` is padded)
    env: ModelConfig | None = None  # the config the training program ran at (a stack's or shared envelope)
    eval_env: ModelConfig | None = None  # the envelope its evaluation program ran at (``eval_shared``), if larger

    def eval_program(self, i: int) -> tuple[ModelConfig, dict, object] | None:
        """For a model trained alone and evaluated at an envelope (its shared training program's,
        or that of the models sharing its evaluation program): (that envelope, the parameters
        padded to it, the model's ``ModelDims``), so that other evaluations (a task's) can run
        there too and share one compiled program with the other models of the set; None for a
        model evaluated at its true shape, or in a stack."""
        if self.stacked or (self.eval_env is None and not self.padded):
            return None
        env = self.eval_env or self.env
        return env, pad_params(self.state.params, env), ModelDims.of_host(self.cfgs[i])

    def params(self, i: int) -> dict:
        """Model ``i``'s trained parameters at its true shape."""
        if not self.stacked:
            return unpad_params(self.state.params, self.cfgs[0]) if self.padded else self.state.params
        return unpad_params(jax.tree.map(lambda x: x[i], self.state.params), self.cfgs[i])


def _row(spec: ModelSpec, steps: int, losses: np.ndarray, val_points, test_loss: float, diverged: bool,
         data: TrainData, seq_len: int, mode: str, stack_info: dict, wall: float, data_seed: int, *,
         planned_steps: int) -> dict:
    """A model's result row (DESIGN.md §6). ``steps``: the optimiser updates it applied, which
    ``tokens``, ``tokens_per_param`` and ``flops`` count; ``losses``: its training loss per step,
    one curve point each (for a diverged model, one more than ``steps``: the step that diverged,
    marked ``"diverged": true``); ``planned_steps``: its budget in steps, recorded with its tokens
    as ``planned_steps`` and ``planned_tokens`` (more than ``steps`` for a model stopped early or
    diverged), so that a diverged row can be grouped with the rows of its budget
    (``fit.sources.budget_tokens``)."""
    cfg = spec.cfg
    counts = cfg.param_counts()
    fpt = cfg.flops_per_token(seq_len=seq_len)
    tokens = steps * data.batch_size * seq_len
    vals = dict(val_points)
    curve = []
    for s in range(len(losses)):
        point = {"step": s + 1, "tokens": (s + 1) * data.batch_size * seq_len,
                 "train_loss": None if not math.isfinite(losses[s]) else float(losses[s])}
        if s + 1 in vals:
            point["val_loss"] = vals[s + 1]
        curve.append(point)
    if diverged and len(losses) > steps:
        # the step that diverged: its loss is None when the loss turned non-finite, but a
        # gradient alone may have (the loss finite, often huge), so the point says it
        curve[-1]["diverged"] = True
    finite = losses[np.isfinite(losses)]
    last = finite[-N_LAST_FOR_TRAIN_LOSS:] if finite.size else finite
    return {
        "run_id": None, "name": cfg.name, "config": cfg.to_dict(),
        "params": counts.total, "embedding_params": counts.embedding,
        "non_embedding_params": counts.non_embedding,
        "flops_per_token": fpt.total,
        "flops_terms": {"non_embedding": fpt.non_embedding, "head": fpt.head, "attention": fpt.attention,
                        "causal": fpt.causal},
        "seed": spec.seed, "data_seed": data_seed, "lr": spec.optim.lr,
        "weight_decay": spec.optim.weight_decay, "optimizer": {"name": "adamw", **spec.optim.__dict__},
        "batch_size": data.batch_size, "seq_len": seq_len, "steps": steps, "tokens": tokens,
        "tokens_per_param": tokens / counts.total, "budget": spec.budget.to_dict(),
        "planned_steps": planned_steps, "planned_tokens": planned_steps * data.batch_size * seq_len,
        "flops": fpt.total * tokens,
        "train_loss": float(np.mean(last)) if last.size and not diverged else None,
        "val_loss": val_points[-1][1] if val_points and not diverged else None,
        "test_loss": test_loss if not diverged else None,
        "curve": curve, "diverged": diverged, "corpus": data.info,
        "mode": mode, "stack": stack_info, "wall_seconds": wall, "versions": versions(), "device": device_info(),
    }
