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


from jaxscale.config import ModelConfig
from jaxscale.emergence_spec import (  # the study's public names, re-exported (``__all__``)
    MIN_SEEDS, STUDY_FAMILIES, StudySpec, build_task, check_threshold_above_chance, parse_knobs, study_family,
    task_configs,
)
from jaxscale.folders import output_folder
from jaxscale.train import Budget, OptimConfig

__all__ = ["MIN_SEEDS", "STUDY_FAMILIES", "StudySpec", "study_family", "task_configs",
           "build_task", "prepare", "run_study", "eval_only", "evaluate_model", "evaluate_result", "evaluation_hook",
           "parse_knobs", "records_from_outputs", "check_threshold_above_chance"]

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
    from jaxscale.train import program_config

    # keyed without the model's name (a label no program reads): models of one shape under other
    # names share one function, hence one compiled evaluation
    cfg = program_config(cfg)
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
    check_threshold_above_chance(spec, task)  # before training: the analysis would refuse after it
    cfgs = task_configs(task, study_family(spec.family, spec.sizes), context=spec.context)
    data = from_task(task, batch_size=spec.batch_size)
    budget = _budget(spec, data.steps_per_epoch)
    optim = OptimConfig(lr=spec.lr, weight_decay=spec.weight_decay, warmup_frac=spec.warmup_frac)
    specs = [ModelSpec(cfg, seed, optim, budget) for cfg in cfgs for seed in spec.seeds]
    settings = RunSettings(batch_size=spec.batch_size, data_seed=spec.data_seed, n_evals=4,
                           progress=sys.stderr.isatty())
    return task, data, specs, settings


def write_record(path: Path, obj) -> None:
    """study.json or analysis.json: JSON-safe numbers (``results._jsonable``), replaced whole."""
    from jaxscale.results import _jsonable
    from jaxscale.sweep_folder import write_json

    write_json(path, _jsonable(obj))


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
    write_record(out / "study.json", {**spec.to_dict(), "task_description": task.description,
                                     "data": data.info})
    print(f"task {task.name}: {task.description}; {data.info['train_items']} training items, "
          f"{task.test.num_examples} test items; {len(specs)} models", file=log)
    result = run_sweep(specs, data, settings, mode=spec.mode, out=out, save_weights=True,
                       row_hook=evaluation_hook(task, out, spec.tolerance), log=log, plan_for=plan_for)
    return analyse_and_write(result.rows, spec, task, out, figures=figures, log=log)


def eval_only(out: str | os.PathLike, *, log=None, figures: bool = True,
              fit_floor: bool | None = None, threshold: float | None = None,
              threshold_flag: str = "threshold") -> dict:
    """Recompute every model's outputs and metrics from the saved weights of study folder
    ``out`` (no training), then the analysis. The task is rebuilt from ``study.json`` and must
    reproduce the fingerprint recorded at training time. ``fit_floor`` and ``threshold`` (None:
    as in the study) override the analysis settings; the analysis records the threshold it used
    (a study saved before chance levels were checked may hold one at chance: sparse parity's
    0.5); ``threshold_flag`` names where a given threshold came from in errors."""
    from jaxscale.data.source import from_task
    from jaxscale.emergence_report import analyse_and_write
    from jaxscale.results import read_rows
    from jaxscale.sweep import load_weights
    from jaxscale.sweep_folder import read_record

    log = log or sys.stdout
    out = Path(out)
    if not (out / "study.json").exists() or not (out / "results.jsonl").exists():
        raise ValueError(f"eval-only: {out} is not a study folder (needs study.json and "
                         "results.jsonl, written by `jaxscale emergence --task …`)")
    saved = read_record(out / "study.json", "eval-only", "a study record")
    spec = StudySpec.from_dict(saved, source=str(out / "study.json"))
    if fit_floor is not None:
        spec = dataclasses.replace(spec, fit_floor=bool(fit_floor))
    if threshold is not None:
        spec = dataclasses.replace(spec, threshold=threshold)  # checked in (0, 1) by the spec
    task = build_task(spec.task, spec.task_seed, spec.task_knobs)
    try:  # before the metrics are recomputed: the analysis would refuse after it
        check_threshold_above_chance(spec, task, threshold_flag if threshold is not None else "threshold")
    except ValueError as err:
        if threshold is not None:
            raise
        raise ValueError(f"{out / 'study.json'}: {err} (with --eval-only, give --threshold, or "
                         f"`threshold=` to eval_only)") from None
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
