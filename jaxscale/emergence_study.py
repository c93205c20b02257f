"""Emergence studies end to end: train a model family on a synthetic task as stacks, evaluate
every model per example, and analyse the metrics against model size.

The CLI (``jaxscale emergence --task … --family …``) and ``experiments/emergence.py`` are thin
layers over :func:`run_study` and :func:`eval_only`. A study folder holds:

  study.json          what was run: task name, seed and knobs, family, sizes, seeds, budget,
                      optimiser, threshold (``--eval-only`` rebuilds the task from it)
  results.jsonl       one row per trained model (DESIGN.md §6 fields) plus ``metrics`` (every
                      metric of ``jaxscale.metrics.metric_table``), ``task`` and ``outputs``
  plan.json, weights/ the sweep's plan and orbax weights (``jaxscale.sweep.load_weights``)
  outputs/<run_id>.npz  per-example outputs (greedy answers, per-token log-probabilities), so
                      every metric can be recomputed without a model
  analysis.json, summary.md, figures/*.png   written by ``jaxscale.emergence_report``

Why the family is *adapted* to the task: the named families carry the byte vocabulary (256) and
a 64-token context, while the tasks use 14-40 tokens and rows of 6-30 tokens. Replacing the
vocabulary and context by the task's keeps the head size (so sizes still share one padded
stack) and spends the parameters on the blocks rather than on unused embedding rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Sequence


from jaxscale.config import ModelConfig, create_model_config, family_configs
from jaxscale.folders import output_folder
from jaxscale.train import Budget, OptimConfig

__all__ = ["MIN_SEEDS", "STUDY_FAMILIES", "StudySpec", "study_family", "task_configs",
           "build_task", "prepare", "run_study", "eval_only", "evaluate_model", "evaluate_result", "evaluation_hook",
           "parse_knobs", "records_from_outputs"]

MIN_SEEDS = 3  # the seed level of the hierarchical bootstrap needs spread to resample
MAX_SEED = 2**31 - 1  # a model seed becomes an int32 (the initial state's seed array)

# Families defined for task studies (head size 16 throughout, so any members share a stack).
# "depth": one- and two-layer models at matched widths (in-context copying needs an induction
# head, which one layer cannot form: Olsson et al. 2022); fixed here, unlike the ladder's rung
# names, so a study's sizes mean the same shapes in every version.
STUDY_FAMILIES: dict[str, dict[str, tuple[int, int, int, int]]] = {
    "depth": {"w16-l1": (16, 1, 1, 64), "w32-l1": (32, 2, 1, 128), "w64-l1": (64, 4, 1, 256),
              "w16-l2": (16, 1, 2, 64), "w32-l2": (32, 2, 2, 128), "w48-l2": (48, 3, 2, 192),
              "w64-l2": (64, 4, 2, 256), "w80-l2": (80, 5, 2, 320), "w96-l2": (96, 6, 2, 384),
              "w128-l2": (128, 8, 2, 512)},
}


def study_family(family: str, sizes: Sequence[str] | None = None) -> list[ModelConfig]:
    """Configs of ``family`` (a named family of ``jaxscale.config`` or of ``STUDY_FAMILIES``),
    restricted to ``sizes`` (in the order given) when given."""
    from jaxscale.sweep import repeated

    if repeated(sizes or ()):  # the same models twice would count twice in the transition's fits
        raise ValueError(f"sizes: given more than once: {repeated(sizes)}")
    if family in STUDY_FAMILIES:
        table = {name: ModelConfig(vocab_size=256, d_model=d, n_heads=h, n_layers=n, d_ff=f,
                                   max_seq_len=64, name=f"{family}/{name}")
                 for name, (d, h, n, f) in STUDY_FAMILIES[family].items()}
        if not sizes:
            return list(table.values())
        unknown = [s for s in sizes if s not in table]
        if unknown:
            raise ValueError(f"sizes: family {family!r} has no size {unknown[0]!r}; its sizes "
                             f"are {list(table)}")
        return [table[s] for s in sizes]
    try:
        cfgs = family_configs(family)
    except ValueError:
        raise ValueError(f"family {family!r} is unknown; known families: "
                         f"{sorted([*STUDY_FAMILIES, 'ladder', 'notebook-emergence', 'notebook-scaling'])}"
                         ) from None
    return cfgs if not sizes else [create_model_config(f"{family}/{s}") for s in sizes]


def task_configs(task, cfgs: Sequence[ModelConfig], *, context: int | None = None,
                 adapt_vocab: bool = True) -> list[ModelConfig]:
    """``cfgs`` fitted to ``task``: vocabulary = the task's (a larger one only wastes
    parameters), context = ``context`` or the task's row length − 1 (inputs are rows[:, :-1]).
    Raises ValueError when the context is too short or a kept vocabulary too small."""
    need = task.seq_len - 1
    ctx = need if context is None else int(context)
    if ctx < need:
        raise ValueError(f"context: models see {ctx} tokens but task {task.name!r} needs "
                         f"max_seq_len >= {need} (rows of {task.seq_len} tokens)")
    out = []
    for cfg in cfgs:
        vocab = task.vocab_size if adapt_vocab else cfg.vocab_size
        if vocab < task.vocab_size:
            raise ValueError(f"vocab_size: model {cfg.name!r} has {vocab} tokens, task "
                             f"{task.name!r} needs {task.vocab_size}")
        out.append(cfg.replace(vocab_size=vocab, max_seq_len=ctx))
    return out


def parse_knobs(items: Sequence[str] | None) -> dict:
    """``["n_digits=3", "reverse=true"]`` → ``{"n_digits": 3, "reverse": True}`` (values read as
    JSON where they parse, else kept as strings). A knob given twice is refused: the last one
    won, silently, so ``n_digits=2 … n_digits=3`` ran a study the user did not read off the
    command line."""
    knobs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"task-arg: expected KEY=VALUE, got {item!r}")
        if key in knobs:
            raise ValueError(f"task-arg: knob {key!r} given more than once")
        text = value.strip()
        try:
            knobs[key] = json.loads(text.lower() if text.lower() in ("true", "false") else text)
        except json.JSONDecodeError:
            knobs[key] = text
    return knobs


def build_task(name: str, seed: int = 0, knobs: dict | None = None):
    """The task ``name`` from ``seed`` and ``knobs``; errors name the task or the knob."""
    import inspect

    from jaxscale.data.tasks import TASKS, make_task

    if name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; choose one of {', '.join(TASKS)}")
    knobs = dict(knobs or {})
    accepted = set(inspect.signature(TASKS[name]).parameters) - {"seed"}
    unknown = sorted(set(knobs) - accepted)
    if unknown:
        raise ValueError(f"task-arg: task {name!r} has no knob {unknown[0]!r}; its knobs are "
                         f"{sorted(accepted)}")
    return make_task(name, seed=seed, **knobs)


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Everything a study needs to be re-run; written to ``study.json``.

    ``budget`` is a :class:`~jaxscale.train.Budget` dict or ``{"kind": "epochs", "value": E}``
    (epochs over the training items, converted to steps once the data are built).
    ``scale_axis`` is the row field that analyses use as model size.
    """

    task: str
    family: str
    seeds: tuple[int, ...]
    task_seed: int = 0
    task_knobs: dict = dataclasses.field(default_factory=dict)
    sizes: tuple[str, ...] | None = None
    budget: dict = dataclasses.field(default_factory=lambda: {"kind": "steps", "value": 500})
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_frac: float = 0.1
    batch_size: int = 64
    context: int | None = None
    data_seed: int = 0
    mode: str = "auto"
    threshold: float = 0.5
    n_boot: int = 1000
    scale_axis: str = "params"
    tolerance: float = 2.0
    fit_floor: bool = False  # sigmoids fit their lower plateau instead of holding it at chance

    def __post_init__(self):
        seeds = tuple(int(s) for s in self.seeds)
        for name, values in (("seeds", seeds), ("task_seed", (self.task_seed,)), ("data_seed", (self.data_seed,))):
            bad = [v for v in values if not 0 <= v <= MAX_SEED]  # numpy refused it only after study.json
            if bad:
                raise ValueError(f"{name}: a seed is an integer from 0 to {MAX_SEED}, got {bad[0]!r}")
        if len(set(seeds)) < MIN_SEEDS:
            raise ValueError(f"seeds: intervals over seeds need at least {MIN_SEEDS} distinct "
                             f"seeds per size, got {list(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: must not repeat, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if self.sizes is not None:
            object.__setattr__(self, "sizes", tuple(self.sizes))
            if len(set(self.sizes)) < 2:  # refused before training: the analysis would refuse after it
                raise ValueError(f"sizes: an emergence study compares sizes and needs at least 2, "
                                 f"got {list(self.sizes)}")
        if self.budget.get("kind") not in ("steps", "tokens", "tokens_per_param", "epochs"):
            raise ValueError(f"budget: kind must be steps, tokens, tokens_per_param or epochs, "
                             f"got {self.budget.get('kind')!r}")
        if not self.budget.get("value", 0) > 0:
            raise ValueError(f"budget: value must be > 0, got {self.budget.get('value')!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold!r}")
        if self.mode not in ("auto", "stack", "sequential"):
            raise ValueError(f"mode must be auto, stack or sequential, got {self.mode!r}")
        if self.scale_axis not in ("params", "non_embedding_params", "flops"):
            raise ValueError(f"scale_axis must be params, non_embedding_params or flops, got "
                             f"{self.scale_axis!r}")
        if self.batch_size < 1:  # each named alone: one message for both blamed a good batch_size
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {self.n_boot!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "study.json") -> "StudySpec":
        """The spec recorded in ``data`` (read from ``source``, named in errors); other keys are
        ignored. Types are checked here, since a hand-edited study.json (``"seeds": null``, a
        list for the whole file) ended in a TypeError or AttributeError traceback."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing:
            raise ValueError(f"{source}: missing field {missing[0]!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in data.items() if k in known}
        for name, value in given.items():
            expected = _check_field(name, value)
            if expected:
                raise ValueError(f"{source}: field {name!r} must be {expected}, got {json.dumps(value, default=str)}")
        try:
            return cls(**given)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what each field of a study.json must hold (``StudySpec.from_dict``): (test, in words)
_FIELD_TYPES = {
    "task": (lambda v: isinstance(v, str), "a string"),
    "family": (lambda v: isinstance(v, str), "a string"),
    "seeds": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of integers"),
    "task_seed": (_is_int, "an integer"),
    "task_knobs": (lambda v: isinstance(v, dict), "an object"),
    "sizes": (lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
              "null or a list of strings"),
    "budget": (lambda v: isinstance(v, dict) and isinstance(v.get("kind"), str) and _is_number(v.get("value")),
               'an object {"kind": ..., "value": a number}'),
    "lr": (_is_number, "a number"), "weight_decay": (_is_number, "a number"),
    "warmup_frac": (_is_number, "a number"), "batch_size": (_is_int, "an integer"),
    "context": (lambda v: v is None or _is_int(v), "null or an integer"), "data_seed": (_is_int, "an integer"),
    "mode": (lambda v: isinstance(v, str), "a string"), "threshold": (_is_number, "a number"),
    "n_boot": (_is_int, "an integer"), "scale_axis": (lambda v: isinstance(v, str), "a string"),
    "tolerance": (_is_number, "a number"), "fit_floor": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_field(name: str, value) -> str:
    """What field ``name`` of a study.json must be, when ``value`` is not that; else ''."""
    test, words = _FIELD_TYPES[name]
    return "" if test(value) else words


def _budget(spec: StudySpec, steps_per_epoch: int) -> Budget:
    b = spec.budget
    if b["kind"] == "epochs":
        return Budget("steps", max(1, int(round(b["value"] * steps_per_epoch))))
    return Budget(b["kind"], b["value"], b.get("params_basis", "total"))


def evaluation_hook(task, out: Path | None, tolerance: float = 2.0):
    """A sweep row hook: evaluate the trained model on ``task.test``, save the per-example
    outputs to ``out/outputs/<run_id>.npz`` and put every metric in ``row['metrics']`` (and the
    per-subtask tables in ``row['subtask_metrics']`` for tasks with subtasks)."""
    def hook(row, spec, result, i):
        outputs, metrics, by_subtask = evaluate_result(task, spec.cfg, result, i, tolerance)
        row["metrics"] = metrics
        if by_subtask is not None:
            row["subtask_metrics"] = by_subtask
        row["task"] = {"name": task.name, "params": dict(task.params)}
        if out is not None:
            rel = Path("outputs") / f"{row['run_id']}.npz"
            (out / "outputs").mkdir(parents=True, exist_ok=True)
            outputs.save(out / rel)
            row["outputs"] = str(rel)
    return hook


_FORWARD_CACHE: dict = {}


def task_logits_fn(cfg: ModelConfig, masked: bool = False):
    """``logits(params, rows)`` for task rows, one stable function per config, so that
    ``evaluate(..., params=p)`` compiles once per config and passes the weights as arguments
    (the seeds of a size share a compile instead of baking their weights in as constants).

    Evaluation passes whole task rows (T tokens), but a model trained on the task only needs a
    context of T − 1 (the last token is never an input). The model therefore reads rows[:, :-1]
    and the last position gets zero logits: evaluation never reads it (position T − 1 predicts
    nothing inside the row), and causality keeps every other position unchanged.

    ``masked``: ``params`` is ``(parameters padded to cfg, ModelDims of the true sizes)``."""
    import jax.numpy as jnp

    from jaxscale.model import forward

    if (cfg, masked) not in _FORWARD_CACHE:
        def logits(p, t):
            params, dims = p if masked else (p, None)
            out = forward(params, t[:, :-1], cfg, dims=dims)
            return jnp.concatenate([out, jnp.zeros_like(out[:, :1])], axis=1)
        logits.program_key = ("task_logits", cfg) + (("masked",) if masked else ())  # what its programs are built from
        logits.forward_flops_per_token = cfg.flops_per_token().total / 3  # for evaluate's compile choice
        logits.causal = True  # evaluate decodes a first answer token from the teacher-forced pass
        _FORWARD_CACHE[cfg, masked] = logits
    return _FORWARD_CACHE[cfg, masked]


def evaluate_result(task, cfg: ModelConfig, result, i: int, tolerance: float = 2.0):
    """``evaluate_model`` for model ``i`` of a trained group (``runner.GroupResult``): a model
    whose held-out evaluation ran at an envelope (a shared training program's, or the one its
    set of models shares, ``planner.Group.eval_shared``) is evaluated there too, with its masks,
    so that the models of the set share one compiled task evaluation (on the 2-core CPU each
    took 0.6-1.4 s to trace, compile and run); any other at its true shape."""
    at_envelope = result.eval_program(i)
    if at_envelope is None:
        return evaluate_model(task, cfg, result.params(i), tolerance)
    env, params, dims = at_envelope
    return evaluate_model(task, env, params, tolerance, dims=dims)


def evaluate_model(task, cfg: ModelConfig, params: dict, tolerance: float = 2.0, *, dims=None):
    """(per-example outputs, metric dict, per-subtask metric dicts or None) on ``task.test``.
    ``dims`` (``ModelDims``): ``params`` are padded to ``cfg``, the model's true sizes are
    ``dims`` (a model of a shared program, evaluated at its envelope)."""
    import numpy as np

    from jaxscale.evaluate import evaluate
    from jaxscale.metrics import metric_table, metric_tables_by_subtask
    from jaxscale.model import ModelDims, param_shapes

    shapes = {n: tuple(np.shape(x)) for n, x in params.items()}
    if shapes != param_shapes(cfg):
        raise ValueError(f"evaluate_model: `params` have the shapes {shapes}, not those of the config "
                         f"{cfg.name!r} ({param_shapes(cfg)})")
    if dims is not None:
        sizes = (cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff)
        if not isinstance(dims, ModelDims) or not all(1 <= int(d) <= c for d, c in zip(dims, sizes)):
            raise ValueError(f"evaluate_model: `dims` must be a ModelDims of true sizes within the config "
                             f"{cfg.name!r}'s (d_model, n_heads, n_layers, d_ff) = {sizes}, got {dims!r}")
    if dims is None:
        outputs = evaluate(task_logits_fn(cfg), task.test, params=params)
    else:
        outputs = evaluate(task_logits_fn(cfg, masked=True), task.test, params=(params, dims))
    metrics = metric_table(outputs, tolerance=tolerance).as_dict()
    by_subtask = None
    if outputs.subtask_N is not None:
        by_subtask = {str(k): t.as_dict()
                      for k, t in metric_tables_by_subtask(outputs, tolerance).items()}
    return outputs, metrics, by_subtask


def prepare(spec: StudySpec):
    """(task, train data, model specs, run settings) of a study, validated before training."""
    from jaxscale.data.source import from_task
    from jaxscale.runner import ModelSpec, RunSettings

    task = build_task(spec.task, spec.task_seed, spec.task_knobs)
    cfgs = task_configs(task, study_family(spec.family, spec.sizes), context=spec.context)
    data = from_task(task, batch_size=spec.batch_size)
    budget = _budget(spec, data.steps_per_epoch)
    optim = OptimConfig(lr=spec.lr, weight_decay=spec.weight_decay, warmup_frac=spec.warmup_frac)
    specs = [ModelSpec(cfg, seed, optim, budget) for cfg in cfgs for seed in spec.seeds]
    settings = RunSettings(batch_size=spec.batch_size, data_seed=spec.data_seed, n_evals=4,
                           progress=sys.stderr.isatty())
    return task, data, specs, settings


def _write_json(path: Path, obj) -> None:
    from jaxscale.results import _jsonable

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, default=str))
    os.replace(tmp, path)


def run_study(spec: StudySpec, out: str | os.PathLike, *, log=None,
              figures: bool = True, plan_for: str = "auto", out_name: str = "out") -> dict:
    """Train, evaluate and analyse; returns the analysis dict (also in ``out/analysis.json``).
    Progress goes to ``log`` (default: the current ``sys.stdout``). ``plan_for``: as in
    ``sweep.run_sweep``. ``out_name`` names ``out`` in errors (the CLI's ``--out``).

    The folder is made once the spec is checked and its task and models built (``prepare``):
    a study refused for a bad setting leaves no folder behind. A folder that holds another
    command's sweep is refused before study.json is written into it."""
    from jaxscale.compile_cache import check_plan_for
    from jaxscale.emergence_report import analyse_and_write
    from jaxscale.sweep import run_sweep

    check_plan_for(plan_for, "run_study")  # before study.json is written
    log = log or sys.stdout
    out = Path(out)
    task, data, specs, settings = prepare(spec)
    output_folder(out, out_name)
    if (out / "results.jsonl").exists():
        raise ValueError(f"{out_name}: {out} already holds results.jsonl; choose a new folder (or use "
                         "--eval-only to re-analyse it)")
    foreign = [n for n in ("sweep.json", "ladder/sweep.json") if (out / n).exists()]
    if foreign and not (out / "study.json").exists():
        raise ValueError(f"{out_name}: {out} holds another command's output ({', '.join(foreign)}); "
                         f"choose a new folder")
    _write_json(out / "study.json", {**spec.to_dict(), "task_description": task.description,
                                     "data": data.info})
    print(f"task {task.name}: {task.description}; {data.info['train_items']} training items, "
          f"{task.test.num_examples} test items; {len(specs)} models", file=log)
    result = run_sweep(specs, data, settings, mode=spec.mode, out=out, save_weights=True,
                       row_hook=evaluation_hook(task, out, spec.tolerance), log=log, plan_for=plan_for)
    return analyse_and_write(result.rows, spec, task, out, figures=figures, log=log)


def eval_only(out: str | os.PathLike, *, log=None, figures: bool = True,
              fit_floor: bool | None = None) -> dict:
    """Recompute every model's outputs and metrics from the saved weights of study folder
    ``out`` (no training), then the analysis. The task is rebuilt from ``study.json`` and must
    reproduce the fingerprint recorded at training time. ``fit_floor`` (None: as in the study)
    overrides the analysis setting."""
    from jaxscale.data.source import from_task
    from jaxscale.emergence_report import analyse_and_write
    from jaxscale.results import read_rows
    from jaxscale.sweep import load_weights, read_record

    log = log or sys.stdout
    out = Path(out)
    if not (out / "study.json").exists() or not (out / "results.jsonl").exists():
        raise ValueError(f"eval-only: {out} is not a study folder (needs study.json and "
                         "results.jsonl, written by `jaxscale emergence --task …`)")
    saved = read_record(out / "study.json", "eval-only", "a study record")
    spec = StudySpec.from_dict(saved, source=str(out / "study.json"))
    if fit_floor is not None:
        spec = dataclasses.replace(spec, fit_floor=bool(fit_floor))
    task = build_task(spec.task, spec.task_seed, spec.task_knobs)
    fingerprint = from_task(task, batch_size=spec.batch_size).fingerprint
    if not isinstance(saved.get("data", {}), dict):
        raise ValueError(f"{out / 'study.json'}: field 'data' must be an object, got "
                         f"{json.dumps(saved['data'], default=str)}")
    recorded = saved.get("data", {}).get("fingerprint")
    if recorded not in (None, fingerprint):
        raise ValueError(f"eval-only: task {task.name!r} rebuilt from study.json has fingerprint "
                         f"{fingerprint[:12]}…, training used {str(recorded)[:12]}…")
    rows = read_rows(out / "results.jsonl")
    (out / "outputs").mkdir(exist_ok=True)
    for row in rows:
        cfg, params, _ = load_weights(out, row["name"], run_id=row["run_id"])
        outputs, metrics, by_subtask = evaluate_model(task, cfg, params, spec.tolerance)
        outputs.save(out / "outputs" / f"{row['run_id']}.npz")
        row["metrics"] = metrics
        if by_subtask is not None:
            row["subtask_metrics"] = by_subtask
    print(f"eval-only: recomputed the metrics of {len(rows)} models from {out / 'weights'}",
          file=log)
    return analyse_and_write(rows, spec, task, out, figures=figures, log=log, recomputed=True)


def records_from_outputs(rows: Sequence[dict], out: Path, tolerance: float = 2.0) -> list[dict]:
    """Every row's metrics recomputed from its saved per-example outputs (no model needed)."""
    from jaxscale.evaluate import load_outputs
    from jaxscale.metrics import metric_table

    out_rows = []
    for row in rows:
        o = load_outputs(out / row["outputs"])
        out_rows.append({**row, "metrics": metric_table(o, tolerance=tolerance).as_dict()})
    return out_rows
