"""What an emergence study is: its task, model family, seeds, budget and analysis settings
(:class:`StudySpec`), checked before anything is built or written, and read back from
``study.json`` with every field's type checked (``StudySpec.from_dict``). Training, evaluation
and the folder are ``emergence_study``'s.
"""

from __future__ import annotations

import dataclasses
import math
import json
from typing import Sequence

from jaxscale.config import ModelConfig, create_model_config, family_configs
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


DEFAULT_THRESHOLD = 0.5


def default_threshold(task, tolerance: float = 2.0) -> float:
    """The exact-match level that counts as 'emerged' when a study names none: 0.5, or halfway
    from chance to 1 where guessing alone already reaches 0.5 (``Task.chance_levels``; sparse
    parity's one-bit answer: 0.75). Why not always halfway: the tasks whose chance is small
    (1/97 for modular addition) keep the round 0.5 that their earlier studies used."""
    chance = task.chance_levels(tolerance)["exact_match"]
    return DEFAULT_THRESHOLD if chance < DEFAULT_THRESHOLD else (1.0 + chance) / 2


def check_threshold_above_chance(spec: "StudySpec", task, what: str = "threshold") -> None:
    """Refuse a study whose exact-match ``threshold`` lies at or below ``task``'s chance level
    (``Task.chance_levels``, the score of the best constant answer: 1/2 for sparse parity's
    one-bit answer): guessing alone would cross it, so its crossing, the verdict's seed splits
    and the forecast would all mark no ability. Here, where the spec meets its task, so that the
    study is refused before anything is trained or written; the spec alone cannot tell, since
    the level depends on the task and its knobs."""
    chance = task.chance_levels(spec.tolerance)["exact_match"]
    if spec.threshold <= chance:
        raise ValueError(
            f"{what}: {spec.threshold:g} lies at or below the chance level of task {task.name!r} "
            f"(a constant answer scores exact match {chance:.4g}), so guessing alone would cross it; "
            f"choose a threshold above {chance:.4g}, e.g. {(1 + chance) / 2:.4g} (halfway from chance to 1)")


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Everything a study needs to be re-run; written to ``study.json``.

    ``budget`` is a :class:`~jaxscale.train.Budget` dict or ``{"kind": "epochs", "value": E}``
    (epochs over the training items, converted to steps once the data are built).
    ``scale_axis`` is the row field that analyses use as model size. ``threshold``: the exact
    match that counts as 'emerged'; it must lie above the task's chance level, which a study
    checks before training (``check_threshold_above_chance``). Its default here is a plain 0.5
    (a spec is data, made without its task); the CLI gives ``default_threshold(task)`` instead,
    0.75 for sparse parity, whose guessing scores 1/2.
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
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):  # the ±tolerance match's
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance!r}")
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


