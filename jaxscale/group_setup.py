"""A group's setup: its models' initial (or restored) state, padded and stacked, and its compiled
programs, made before the host loop runs (``runner.train_group``).

Why a separate step: on a CPU a training program takes seconds to compile, and a batch-of-one
model trains on about one core. A sweep therefore prepares the next group (state and compile) in
a background thread while the current group trains, so the compiles of a many-group plan
overlap with training instead of adding up (``sweep.run_sweep``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import jax
import numpy as np

from jaxscale import program_cache
from jaxscale.checkpoint import GroupCheckpoint
from jaxscale.compile_mode import choose_fast, unoptimised_pays
from jaxscale.config import ModelConfig
from jaxscale.data.corpus import Corpus
from jaxscale.data.source import TrainData, from_corpus
from jaxscale.data.stream import data_key
from jaxscale.devices import batch_sharding, group_mesh, host_mesh_shape, padded_stack_size, place, replicate, to_host
from jaxscale.flat import ravel_host, split_host
from jaxscale.model import ModelDims, init_params
from jaxscale.device_profile import calibrate
from jaxscale.planner import estimate_train_seconds
from jaxscale.stack import envelope, pad_params, stack_dims_if_padded, stack_trees
from jaxscale.train import (Hyper, flat_state_host, init_states, layout_for, make_eval, make_train_chunk,
                            program_config, program_optim)

if TYPE_CHECKING:
    from jaxscale.runner import ModelSpec, RunSettings


@dataclass
class PreparedGroup:
    """Everything the host loop of one group starts from. ``seconds``: time spent preparing
    (and compiling, if ``compile`` ran); ``compile_ahead_s``: the compile's share, None if the
    programs were not compiled ahead; ``program_source``: where the training program came from."""

    specs: tuple
    mode: str
    data: TrainData
    cfgs: list[ModelConfig]
    env: ModelConfig
    seq_len: int
    k: int
    k_run: int
    totals: list[int]
    eval_every: int
    stacked: bool
    state: Any            # train.FlatState: the flat vectors the training program carries
    hyper: Any
    dims: Any
    arrays: Any
    key: Any
    mesh: Any
    chunk_fn: Any
    eval_fn: Any
    layout: Any           # flat.FlatLayout of the state's vectors (train.layout_for)
    optim: Any            # train.OptimConfig the programs were made for
    val_rows: Any
    val_weights: Any
    train_losses: np.ndarray
    val_points: list
    step: int
    elapsed_before: float
    compile_s: float | None
    chunk_len: int
    epoch_steps: int | None
    fast: bool
    n_dev: int            # devices the group runs on (its mesh's model shards x batch shards)
    batch_shards: int = 1  # devices its batch is split over (devices.mesh_shape)
    seconds: float = 0.0
    compile_ahead_s: float | None = None
    program_source: str | None = None
    program_key: tuple = ()  # train_program_key of this group
    shared: tuple = ()       # labels of the models sharing this model's program (prepare_group's ``shared``)
    eval_env: Any = None     # the config the evaluation program runs at (None: ``env``)
    eval_dims: Any = None    # the masks it is given (``dims`` when it runs at ``env``)
    eval_shared: tuple = ()  # labels of the models sharing the evaluation program (``eval_shared``)
    # where the steps before a resume ran: [{"from_step", "devices", "batch_shards"}, ...] from
    # the checkpoint (empty for a fresh group); the row records them with this run's own
    segments: tuple = ()

    def eval_params(self, params_P):
        """The parameters as the evaluation program takes them: the training vector itself, or,
        evaluated at a larger envelope (``eval_shared``), zero-padded to it (on the host: a copy
        of the vector, no program per shape)."""
        eval_layout = None if self.eval_env is None else layout_for(self.eval_env, self.optim.decay_all)
        if eval_layout is None or eval_layout == self.layout:  # already at the evaluation shape
            return params_P
        tree = pad_params(split_host(self.layout, np.asarray(to_host(params_P))), self.eval_env)
        return jax.device_put(ravel_host(eval_layout, tree))

    def evaluate(self, params_P, rows, weights) -> np.ndarray:
        """The weighted mean held-out loss of each model [k_run] on ``rows``."""
        loss = self.eval_fn(self.eval_params(params_P), self.eval_dims, rows, weights)
        return np.asarray(to_host(loss)).reshape(self.k_run)

    def compile(self, *, only_stored: bool = False) -> "PreparedGroup":
        """Compile (or load) the training and evaluation programs for this group's arguments,
        without running them. ``only_stored``: only if both are already compiled on disk (a
        load); otherwise leave them to the host loop."""
        chunk_args = (self.state, self.hyper, self.dims, self.arrays, self.key, np.int32(self.step),
                      np.int32(self.chunk_len))
        eval_args = (self.eval_params(self.state.params_P), self.eval_dims, self.val_rows, self.val_weights)
        stored = getattr(self.chunk_fn, "stored", None), getattr(self.eval_fn, "stored", None)
        if only_stored and not all(f is not None and f(*a) for f, a in zip(stored, (chunk_args, eval_args))):
            return self
        t0 = time.perf_counter()
        self.program_source = self.chunk_fn.compile_for(*chunk_args)
        self.eval_fn.compile_for(*eval_args)
        self.compile_ahead_s = time.perf_counter() - t0
        self.seconds += self.compile_ahead_s
        return self


def prepare_group(specs: Sequence["ModelSpec"], data: TrainData | Corpus, settings: "RunSettings", *,
                  mode: str = "stack", stack_id: str | None = None,
                  checkpoint: GroupCheckpoint | None = None,
                  shared: Sequence["ModelSpec"] | None = None,
                  eval_shared: Sequence["ModelSpec"] | None = None) -> PreparedGroup:
    """The setup of ``runner.train_group`` (same arguments and checks), restored from
    ``checkpoint``'s newest snapshot if there is one; programs are not compiled yet.
    ``shared`` (mode ``alone``): the models, this one among them, that share its training program
    (``planner.Group.shared``): it is padded to their envelope and trained with masks.
    ``eval_shared`` (mode ``alone``): the models, this one and any of ``shared`` among them, that
    share its evaluation program (``planner.Group.eval_shared``): it is evaluated at their
    envelope, padded, with its true sizes as masks."""
    t_start = time.perf_counter()
    if not specs:
        raise ValueError("prepare_group: no models given")
    if mode not in ("stack", "alone"):
        raise ValueError(f"mode must be 'stack' or 'alone', got {mode!r}")
    if mode == "alone" and len(specs) != 1:
        raise ValueError(f"mode 'alone' trains one model, got {len(specs)}")
    if shared is not None:
        if mode != "alone":
            raise ValueError(f"prepare_group: `shared` is for a model trained alone (mode 'alone'), got mode {mode!r}")
        if specs[0] not in shared:
            raise ValueError(f"prepare_group: `shared` must include the model it trains, {specs[0].label!r}; "
                             f"got {[s.label for s in shared]}")
    if eval_shared is not None:
        if mode != "alone":
            raise ValueError(f"prepare_group: `eval_shared` is for a model trained alone (mode 'alone'), got mode {mode!r}")
        missing = [s.label for s in [specs[0], *(shared or ())] if s not in eval_shared]
        if missing:
            raise ValueError(f"prepare_group: `eval_shared` must include the model it evaluates and every model of "
                             f"`shared`; it lacks {missing}")
    cfgs = [s.cfg for s in specs]
    env = envelope(cfgs) if mode == "stack" else envelope([s.cfg for s in shared]) if shared else cfgs[0]
    if isinstance(data, Corpus):
        seq_len = settings.seq_len or env.max_seq_len
        if seq_len > env.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds the models' context {env.max_seq_len}")
        data = from_corpus(data, seq_len=seq_len, batch_size=settings.batch_size,
                           eval_max_windows=settings.eval_windows, vocab_size=env.vocab_size)
    if data.seq_len > env.max_seq_len:
        raise ValueError(f"data {data.name!r} has sequences of {data.seq_len} tokens, longer than the "
                         f"models' context {env.max_seq_len}")
    if data.vocab_size > env.vocab_size:
        raise ValueError(f"data {data.name!r} has vocab {data.vocab_size} > the models' vocab_size {env.vocab_size}")
    optims = {(s.optim.beta1, s.optim.beta2, s.optim.eps, s.optim.clip_norm, s.optim.min_lr_ratio,
               s.optim.decay_all) for s in list(specs) + list(shared or ())}
    if len(optims) > 1:
        raise ValueError(f"models in one {'program (`shared`)' if shared else 'stack'} must share beta1, beta2, "
                         "eps, clip_norm, min_lr_ratio and decay_all (learning rate, weight decay, warmup and "
                         "budget may differ)")
    optim = program_optim(specs[0].optim)  # what the compiled programs depend on
    seq_len = data.seq_len
    totals = [s.budget.steps(s.cfg, data.batch_size, seq_len) for s in specs]
    eval_every = settings.eval_every or max(1, math.ceil(max(totals) / settings.n_evals))
    stacked = mode == "stack"

    # The group's mesh (devices.py): a stack's model axis is split over its model shards, padded
    # with inert models (budget 0) to a multiple of them; the batch over its batch shards.
    k = len(specs)
    model_shards, batch_shards = host_mesh_shape(k, data.batch_size, stacked=stacked, batch_shards=settings.batch_shards)
    n_dev = model_shards * batch_shards
    k_run = padded_stack_size(k, model_shards)
    run_cfgs = cfgs + [cfgs[0]] * (k_run - k)
    run_specs = list(specs) + [specs[0]] * (k_run - k)
    hypers = [Hyper.make(s.optim, n) for s, n in zip(run_specs, totals + [0] * (k_run - k))]
    hyper = stack_trees(hypers) if stacked else hypers[0]
    state, dims = initial_state(run_cfgs, [s.seed for s in run_specs], env, optim, stacked=stacked,
                                padded=bool(shared))
    train_losses = np.full((max(totals), k_run), np.nan)
    val_points: list[list[tuple[int, float]]] = [[] for _ in range(k_run)]
    step, elapsed_before, compile_s, segments = 0, 0.0, None, ()

    if checkpoint is not None:
        restored = restore(checkpoint, state, np.asarray(hyper.total_steps), train_losses, k, stacked)
        if restored is not None:
            state, total_steps, train_losses, meta = restored
            hyper = hyper._replace(total_steps=total_steps)
            step, elapsed_before = int(meta["step"]), float(meta["elapsed"])
            val_points = [[tuple(p) for p in pts] for pts in meta["val_points"]]
            val_points += [[] for _ in range(k_run - len(val_points))]
            compile_s = meta.get("compile_seconds")
            segments = tuple(meta.get("segments") or ())
    # the training program carries the state as flat vectors: made here, on the host
    layout = layout_for(env, optim.decay_all)
    state = flat_state_host(jax.device_get(state), layout)

    mesh = group_mesh(model_shards, batch_shards)
    if mesh is not None:
        state, hyper, dims = (place(x, mesh, stacked=stacked) for x in (state, hyper, dims))
        arrays = replicate(data.arrays, mesh)
    else:
        state, hyper = jax.device_put(state), jax.device_put(hyper)  # a transfer, no per-shape compile
        arrays = data.arrays

    # a shared program is made from all its models' budgets, so that each of them makes the same one
    program_totals = [s.budget.steps(s.cfg, data.batch_size, seq_len) for s in shared] if shared else totals
    static = _chunk_static(cfgs, env, optim, data, settings, program_totals, stacked, padded=bool(shared),
                           mesh=(model_shards, batch_shards))
    chunk_len, fast = static[3], static[5]
    chunk_fn = program_cache.cached(make_train_chunk(env, optim, data.sampler, chunk_len, stacked=stacked,
                                                     fast_compile=fast, batch_sharding=batch_sharding(mesh)),
                                    "train_chunk", static)
    # The evaluation program: at the training shape, or at the envelope of the models sharing it
    # (``eval_shared``, or a shared training program's set). Its compile choice is made from the
    # work it does for all of those models, so that each makes the same program; the evaluation
    # points stay this model's own.
    eval_set = eval_shared or shared
    eval_env = envelope([s.cfg for s in eval_shared]) if eval_shared else env
    if eval_set:
        eval_work = sum(evaluation_flops(eval_env, s.budget.steps(s.cfg, data.batch_size, seq_len), data, settings)
                        for s in eval_set)
    else:
        eval_work = _eval_flops(env, k_run, data, totals, eval_every, settings.early_stop)
    unoptimised = unoptimised_pays(eval_work)
    eval_layout = layout_for(eval_env, optim.decay_all)
    eval_fn = program_cache.cached(make_eval(eval_env, stacked=stacked, unoptimised=unoptimised, layout=eval_layout),
                                   "eval", (program_config(eval_env), stacked, unoptimised, eval_layout))
    key = data_key(settings.data_seed)
    val_rows, val_weights = jax.device_put(tuple(data.val))
    epoch_steps = data.steps_per_epoch if settings.early_stop else None

    return PreparedGroup(
        specs=tuple(specs), mode=mode, data=data, cfgs=cfgs, env=env, seq_len=seq_len, k=k, k_run=k_run,
        totals=totals, eval_every=eval_every, stacked=stacked, state=state, hyper=hyper, dims=dims,
        arrays=arrays, key=key, mesh=mesh, chunk_fn=chunk_fn, eval_fn=eval_fn, layout=layout, optim=optim,
        val_rows=val_rows, val_weights=val_weights, train_losses=train_losses, val_points=val_points, step=step,
        elapsed_before=elapsed_before, compile_s=compile_s, segments=segments, chunk_len=chunk_len, epoch_steps=epoch_steps,
        fast=fast, n_dev=n_dev, batch_shards=batch_shards, seconds=time.perf_counter() - t_start,
        program_key=(static, k_run),
        shared=tuple(s.label for s in shared) if shared else (),
        eval_env=eval_env if eval_shared else None,
        eval_dims=ModelDims.of_host(cfgs[0]) if eval_shared else dims,
        eval_shared=tuple(s.label for s in eval_shared) if eval_shared else ())


def restore(checkpoint: GroupCheckpoint, state, total_steps: np.ndarray, train_losses: np.ndarray, k: int,
            stacked: bool):
    """A group's newest snapshot as (state, total_steps, train_losses, meta), shaped like the
    fresh ``state``, ``total_steps`` and ``train_losses`` of this run (None without one).

    A stack's snapshot holds its ``k`` real models (``meta["models"]``; snapshots written before
    that held the run's whole padded stack): the inert models that pad the stack to a multiple of
    this run's model shards are taken from the fresh state, so that a stack checkpointed on one
    number of devices resumes on another (3 models: 4 on 4 devices, 3 on 1). Inert models train
    nothing (budget 0), so theirs is the fresh state whatever was saved."""
    meta = checkpoint.latest_meta()
    if meta is None:
        return None
    if not stacked:
        arrays, meta = checkpoint.load({"state": state, "total_steps": total_steps, "train_losses": train_losses})
        return arrays["state"], np.asarray(arrays["total_steps"]), np.asarray(arrays["train_losses"]), meta
    saved = meta.get("models", total_steps.shape[0])
    if saved < k:
        raise ValueError(f"checkpoint {checkpoint.latest()}: holds {saved} models, the group has {k}")
    shaped = lambda x: np.zeros((saved,) + np.shape(x)[1:], np.asarray(x).dtype)  # noqa: E731
    arrays, meta = checkpoint.load({"state": jax.tree.map(shaped, state), "total_steps": shaped(total_steps),
                                    "train_losses": np.zeros((train_losses.shape[0], saved), train_losses.dtype)})
    join = lambda got, fresh: np.concatenate([np.asarray(got)[:k], np.asarray(fresh)[k:]], axis=0)
    losses = train_losses.copy()
    losses[:, :k] = np.asarray(arrays["train_losses"])[:, :k]
    return (jax.tree.map(join, arrays["state"], state), join(arrays["total_steps"], total_steps), losses,
            {**meta, "val_points": meta["val_points"][:k]})


def initial_state(cfgs: Sequence[ModelConfig], seeds: Sequence[int], env: ModelConfig, optim, *, stacked: bool,
                  padded: bool = False) -> tuple:
    """(host ``TrainState``, masks' ``ModelDims`` or None) of freshly initialised models that a
    program at ``env``'s shape trains: a stack (each model padded to ``env``, its envelope, over a
    leading model axis), or one model alone, at its true shape or, ``padded`` (a shared program,
    ``planner.Group.shared``), padded to ``env`` with its true sizes as masks. Every model is
    drawn at its true shape first, so its initial weights do not depend on the padding."""
    params = [init_params(c, s) for c, s in zip(cfgs, seeds)]
    if stacked:
        return (init_states(stack_trees([pad_params(p, env) for p in params]), list(seeds), optim, stacked=True,
                            host=True), stack_dims_if_padded(cfgs))
    if len(cfgs) != 1:
        raise ValueError(f"initial_state: a model alone means one config, got {len(cfgs)}")
    if padded:
        return (init_states(pad_params(params[0], env), seeds[0], optim, stacked=False, host=True),
                ModelDims.of_host(cfgs[0]))
    return init_states(params[0], seeds[0], optim, stacked=False, host=True), None


def evaluation_flops(env: ModelConfig, steps: int, data: TrainData, settings: "RunSettings") -> float:
    """FLOPs of one model's held-out evaluations over a run of ``steps`` at the shape ``env``
    (for the planner's ``share_evaluations``)."""
    eval_every = settings.eval_every or max(1, math.ceil(steps / settings.n_evals))
    return _eval_flops(env, 1, data, [steps], eval_every, settings.early_stop)


def _eval_flops(env, k_run: int, data: TrainData, totals, eval_every: int, early_stop) -> float:
    """The held-out evaluation program's work over a run, at the envelope's forward FLOPs per
    token: the validation rows at every evaluation point, each model's last step and an early
    stop, and the test rows once."""
    def tokens(rows) -> int:
        return int(rows.shape[0]) * (int(rows.shape[1]) - 1)

    val_calls = math.ceil(max(totals) / eval_every) + k_run + (1 if early_stop else 0)
    per_token = env.flops_per_token(seq_len=min(data.seq_len, env.max_seq_len)).total / 3
    return per_token * k_run * (val_calls * tokens(data.val[0]) + tokens(data.test[0]))


def program_fast(cfgs, env, data: TrainData, compile_mode: str, totals, stacked: bool, padded: bool) -> bool:
    """Whether a group's training program is compiled the fast way (``compile_mode.choose_fast``),
    by the planner's table estimates of its compile and training times (``totals``: the budgets
    of its models, or of every model sharing its program when ``padded``). The bench asks the
    same, so that it times the programs a sweep runs."""
    profile = calibrate(measure=False)  # the table: enough to weigh compile against training time
    train_s = (estimate_train_seconds([env], [sum(totals)], profile, data.tokens_per_step, alone=True,
                                      seq_len=data.seq_len) if padded
               else estimate_train_seconds(cfgs, totals, profile, data.tokens_per_step, alone=not stacked,
                                           seq_len=data.seq_len))
    return choose_fast(compile_mode, jax.default_backend(), profile.compile_seconds(stacked), train_s)


def _chunk_static(cfgs, env, optim, data: TrainData, settings, totals, stacked, padded: bool = False,
                  mesh: tuple[int, int] = (1, 1)) -> tuple:
    """What the training program is made from besides its arguments' shapes (``padded``: a model
    alone at a shared envelope, ``totals`` the budgets of every model sharing it; ``mesh``: its
    (model shards, batch shards), ``devices.mesh_shape``). Names no model: models of one shape
    under other names make one program."""
    chunk_len = min(settings.steps_per_dispatch, max(totals))
    fast = program_fast(cfgs, env, data, settings.compile_mode, totals, stacked, padded)
    # the envelope without its name (a label: ``train.program_config``), so that models of one shape
    # under other names share the key
    return ((program_config(env), optim, data.sampler, chunk_len, stacked, fast) + (("padded",) if padded else ())
            + ((("mesh",) + tuple(mesh)) if mesh != (1, 1) else ()))


def train_program_key(specs: Sequence["ModelSpec"], data: TrainData, settings: "RunSettings", mode: str) -> tuple:
    """The key under which a group's training program is noted as compiled on disk
    (``program_cache.note_stored``): computed from the models and settings alone, as a planner
    can, before any state is built. Equal to ``prepare_group(...).program_key``; mode ``shared``:
    the program ``specs`` share, each alone (``prepare_group(shared=specs)``)."""
    cfgs = [s.cfg for s in specs]
    stacked = mode == "stack"
    env = envelope(cfgs) if mode != "alone" else cfgs[0]
    totals = [s.budget.steps(s.cfg, data.batch_size, data.seq_len) for s in specs]
    mesh = host_mesh_shape(len(specs) if stacked else 1, data.batch_size, stacked=stacked,
                           batch_shards=settings.batch_shards)
    k_run = padded_stack_size(len(specs), mesh[0]) if stacked else 1
    return (_chunk_static(cfgs, env, program_optim(specs[0].optim), data, settings, totals, stacked,
                          padded=mode == "shared", mesh=mesh), k_run)
