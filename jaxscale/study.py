"""The default study (``jaxscale run``): a ladder sweep and an IsoFLOP grid, then every law fitted.

Part 1 trains the ladder at a compute-optimal-style budget (tokens per parameter) with a
learning-rate grid and several seeds in each stack; each size's learning rate is chosen on the
validation split, and the power law is fitted to the **test-split** loss against non-embedding
and against total parameters (at small scale the choice moves the exponent), with a backtest
that holds out the largest sizes. Part 2 trains an IsoFLOP grid (budgets × sizes, each size at
its part-1 learning rate, C = 6·N·D with N the total parameters) and fits Chinchilla
Approaches 1, 2 and 3, whose compute-optimal allocation is set beside the 20-tokens-per-parameter
rule. Where a size's selected learning rate is an end of the grid, part 1 trains the next rate out
(``lr_extend_rounds`` rounds at most, in ``ladder-lr1/``, ``ladder-lr2/``), so that the law is
fitted to tuned losses rather than to upper bounds on them (``lr_grid.py``). Likewise, where a
budget's lowest IsoFLOP loss is at its smallest or largest size, part 2 trains the family's next
size out at that budget (``isoflop_extend_rounds`` rounds at most, in ``isoflop-ext1/``, ...), so
that Approach 2's parabolas bracket their minima (``isoflop_grid.py``). Both parts are
resumable sweeps (``sweep.run_sweep``) in sub-folders of one output folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from jaxscale.checkpoint import _write_text_atomic
from jaxscale.compile_cache import check_plan_for
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.data.source import from_corpus
from jaxscale.folders import output_folder
from jaxscale.isoflop_grid import family_order, sizes_beyond
from jaxscale.lr_grid import rates_beyond
from jaxscale.results import read_rows, strict_json, write_rows
from jaxscale.runner import ModelSpec, RunSettings
from jaxscale.sweep import expand, run_sweep, select_best_lr
from jaxscale.train import Budget, OptimConfig

DONE_MARKER = "DONE"


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study trains and fits. ``isoflop_budgets`` are in 6·N·D FLOPs."""

    scale: str
    sizes: tuple[str, ...]
    seeds: tuple[int, ...]
    lrs: tuple[float, ...]
    tokens_per_param: float
    isoflop_budgets: tuple[float, ...]
    isoflop_sizes: tuple[str, ...]
    family: str = "ladder"
    params_basis: str = "total"
    batch_size: int = 16
    seq_len: int = 64
    corpus: str = "pystdlib"
    eval_windows: int = 64
    bootstrap: int = 200
    holdout: int = 2
    # Rounds of rates beyond the grid for sizes whose selection sits at an end of it
    # (``lr_grid.rates_beyond``: the end × or ÷ ``lr_extend_factor``); 0 keeps the grid as given.
    lr_extend_rounds: int = 2
    lr_extend_factor: float = 2.5
    # Rounds of sizes beyond the IsoFLOP grid for budgets whose lowest validation loss sits at an
    # end of their sizes (``isoflop_grid.sizes_beyond``: the family's next size out, at that
    # budget only); 0 keeps the grid as given.
    isoflop_extend_rounds: int = 2

    def __post_init__(self) -> None:
        if len(self.sizes) < 4:
            raise ValueError(f"StudyConfig.sizes: need at least 4 sizes to fit a law, got {len(self.sizes)}")
        if isinstance(self.tokens_per_param, bool) or not isinstance(self.tokens_per_param, (int, float)) \
                or not math.isfinite(self.tokens_per_param) or self.tokens_per_param <= 0:
            raise ValueError(f"StudyConfig.tokens_per_param: must be a positive number, got {self.tokens_per_param!r}")
        if len(self.isoflop_budgets) < 3 or len(self.isoflop_sizes) < 3:
            raise ValueError("StudyConfig: an IsoFLOP grid needs at least 3 budgets and 3 sizes")
        if not isinstance(self.lr_extend_rounds, int) or self.lr_extend_rounds < 0:
            raise ValueError(f"StudyConfig.lr_extend_rounds: must be an int >= 0, got {self.lr_extend_rounds!r}")
        if not self.lr_extend_factor > 1:
            raise ValueError(f"StudyConfig.lr_extend_factor: must be > 1, got {self.lr_extend_factor!r}")
        if not isinstance(self.isoflop_extend_rounds, int) or self.isoflop_extend_rounds < 0:
            raise ValueError(f"StudyConfig.isoflop_extend_rounds: must be an int >= 0, "
                             f"got {self.isoflop_extend_rounds!r}")


# The CPU default fits the 10-minute budget of a 2-core machine; `gpu` is the same study larger.
SCALES: dict[str, StudyConfig] = {
    "cpu": StudyConfig("cpu", sizes=("l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8"), seeds=(0, 1),
                       lrs=(6e-3, 1.5e-2), tokens_per_param=20.0, params_basis="non_embedding",
                       isoflop_budgets=(6e10, 1.5e11, 4e11), isoflop_sizes=("l2", "l3", "l4", "l5", "l6")),
    "quick": StudyConfig("quick", sizes=("l1", "l2", "l3", "l4", "l5"), seeds=(0, 1), lrs=(4e-3, 1e-2),
                         tokens_per_param=6.0, params_basis="non_embedding", isoflop_budgets=(6e9, 1.5e10, 4e10),
                         isoflop_sizes=("l1", "l2", "l3", "l4"), bootstrap=100, lr_extend_rounds=1,
                         isoflop_extend_rounds=1),
    "smoke": StudyConfig("smoke", sizes=("l1", "l2", "l3", "l4", "l5"), seeds=(0, 1), lrs=(4e-3, 1e-2),
                         tokens_per_param=0.5, isoflop_budgets=(5e8, 1e9, 2e9),
                         isoflop_sizes=("l2", "l3", "l4"), batch_size=8, eval_windows=8, bootstrap=20,
                         holdout=1, lr_extend_rounds=1, isoflop_extend_rounds=1),
    "gpu": StudyConfig("gpu", sizes=("l7", "l8", "l9", "l10", "l11", "l12", "l13", "l14", "l15"),
                       seeds=(0, 1, 2), lrs=(1e-3, 2e-3, 4e-3), tokens_per_param=20.0,
                       isoflop_budgets=(1e14, 3e14, 1e15, 3e15), isoflop_sizes=("l10", "l11", "l12", "l13", "l14"),
                       batch_size=64, eval_windows=256, bootstrap=500),
}


@dataclass(frozen=True)
class StudyResult:
    out: Path
    ladder_rows: list
    isoflop_rows: list
    fits: dict
    warnings: list


def run_study(cfg: StudyConfig, out: str | os.PathLike, *, mode: str = "auto", progress: bool = True,
              log=None, lanes: int | None = None, plan_for: str = "auto", should_stop=None) -> StudyResult:
    """Train (or resume) both parts in ``out`` and fit every law; writes ``results.jsonl`` and
    ``fits.json`` there (the report and figures are ``report.write_report``'s). ``lanes``,
    ``plan_for`` and ``should_stop``: as in ``sweep.run_sweep`` (``should_stop()`` true: the
    training in progress checkpoints and raises ``runner.Interrupted``; a rerun resumes). ``out`` must be new, empty or a run of this study
    (``holds_run_of``): those files replace any of the same names."""
    check_plan_for(plan_for, "run_study")
    log = log or sys.stdout
    holds_run_of(out, cfg, "out")
    out = output_folder(out, "out")
    corpus = load_corpus(cfg.corpus)
    data = from_corpus(corpus, seq_len=cfg.seq_len, batch_size=cfg.batch_size, eval_max_windows=cfg.eval_windows)
    settings = RunSettings(batch_size=cfg.batch_size, seq_len=cfg.seq_len, eval_windows=cfg.eval_windows,
                           n_evals=5, progress=progress)
    record = {"study": dataclasses.asdict(cfg)}
    cfgs = [create_model_config(f"{cfg.family}/{s}") for s in cfg.sizes]
    budget = Budget("tokens_per_param", cfg.tokens_per_param, cfg.params_basis)
    ladder_specs = expand(cfgs, seeds=cfg.seeds, lrs=cfg.lrs, budgets=[budget], optim=OptimConfig())
    print(f"part 1: {len(ladder_specs)} models ({len(cfgs)} sizes × {len(cfg.lrs)} learning rates × "
          f"{len(cfg.seeds)} seeds) at {cfg.tokens_per_param:g} tokens per {cfg.params_basis} parameter", file=log)
    ladder = run_sweep(ladder_specs, data, settings, mode=mode, out=out / "ladder", record=record,
                       save_weights=False, log=log, lanes=lanes, plan_for=plan_for,
                       should_stop=should_stop).rows
    for round_ in range(1, cfg.lr_extend_rounds + 1):
        beyond = rates_beyond(ladder, cfg.lr_extend_factor)
        if not beyond:
            break
        print(f"part 1, learning rates beyond the grid (round {round_} of at most {cfg.lr_extend_rounds}): "
              + ", ".join(f"{name.split('/')[-1]} {lr:g}" for name, lr in beyond), file=log)
        specs = [s for name, lr in beyond
                 for s in expand([create_model_config(name)], seeds=cfg.seeds, lrs=[lr], budgets=[budget],
                                 optim=OptimConfig())]
        ladder = ladder + run_sweep(specs, data, settings, mode=mode, out=out / f"ladder-lr{round_}", record=record,
                                    save_weights=False, log=log, lanes=lanes, plan_for=plan_for,
                                    should_stop=should_stop).rows
    best_lr = {r["name"]: r["lr"] for r in select_best_lr(ladder)}

    iso_specs = isoflop_specs(cfg, best_lr)
    print(f"part 2: IsoFLOP grid, {len(cfg.isoflop_budgets)} budgets × {len(cfg.isoflop_sizes)} sizes", file=log)
    iso = run_sweep(iso_specs, data, settings, mode=mode, out=out / "isoflop", record=record,
                    save_weights=False, log=log, lanes=lanes, plan_for=plan_for,
                    should_stop=should_stop).rows
    order = family_order(cfg.family)
    for round_ in range(1, cfg.isoflop_extend_rounds + 1):
        beyond = sizes_beyond(iso, cfg.isoflop_budgets, order)
        if not beyond:
            break
        print(f"part 2, sizes beyond the IsoFLOP grid (round {round_} of at most {cfg.isoflop_extend_rounds}): "
              + ", ".join(f"{name.split('/')[-1]} at {c:.1e}" for c, name in beyond), file=log)
        specs = [isoflop_spec(cfg, c, name, best_lr) for c, name in beyond]
        iso = iso + run_sweep(specs, data, settings, mode=mode, out=out / f"isoflop-ext{round_}", record=record,
                              save_weights=False, log=log, lanes=lanes, plan_for=plan_for,
                              should_stop=should_stop).rows
    write_rows(out / "results.jsonl", ladder + iso)  # atomic, the sweeps' rows as they wrote them
    fits, caught = fit_all(cfg, ladder, iso)
    # replaced whole, like the other result files: a rerun stopped while writing keeps the old one
    # strict JSON: an infinite interval bound (a floor the data do not bound) is written null,
    # as ``jaxscale fit --json`` writes it; bare Infinity is refused by strict parsers
    _write_text_atomic(out / "fits.json", strict_json({k: v for k, v in fits.items() if k != "_objects"}))
    return StudyResult(out, ladder, iso, fits, caught)


def isoflop_specs(cfg: StudyConfig, best_lr: dict) -> list[ModelSpec]:
    """Each budget C × each size N: D = C / (6·N_total) tokens, at the size's chosen rate."""
    return [isoflop_spec(cfg, c, f"{cfg.family}/{size}", best_lr)
            for c in cfg.isoflop_budgets for size in cfg.isoflop_sizes]


def isoflop_spec(cfg: StudyConfig, budget: float, name: str, best_lr: dict) -> ModelSpec:
    """One IsoFLOP point: model ``name`` trained on D = C / (6·N_total) tokens at its part-1
    learning rate (the grid's first rate for a size part 1 did not train)."""
    model = create_model_config(name)
    tokens = budget / (6.0 * model.param_counts().total)
    lr = best_lr.get(model.name, cfg.lrs[0])
    return ModelSpec(model, seed=cfg.seeds[0], optim=OptimConfig(lr=lr), budget=Budget("tokens", tokens))


def fit_all(cfg: StudyConfig, ladder: list, iso: list) -> tuple[dict, list]:
    """Every law of the study, as JSON-ready dicts (and the fit objects under ``_objects``)."""
    from jaxscale.fit import backtest_power_law, fit_compute_law, fit_power_law, rows_to_data

    fits: dict = {"_objects": {}}
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for basis in ("non_embedding_params", "params"):
            d = rows_to_data(ladder, x=basis, y="test_loss")
            fit = fit_power_law(d.N, d.loss, bootstrap=cfg.bootstrap, seed_losses=d.seed_losses, labels=d.names)
            bt = backtest_power_law(d.N, d.loss, holdout=cfg.holdout, bootstrap=0, labels=d.names)
            key = "power_law_non_embedding" if basis == "non_embedding_params" else "power_law_total"
            fits[key] = {**fit.to_json(), "backtest": bt.to_json(), "points": {
                "names": list(d.names), "N": d.N.tolist(), "test_loss": d.loss.tolist()}}
            fits["_objects"][key] = (fit, bt)
        d = rows_to_data(ladder, x="params", y="test_loss")
        compute = fit_compute_law(d.C, d.loss, bootstrap=cfg.bootstrap, seed_losses=d.seed_losses)
        fits["compute_law"] = compute.to_json()
        fits["_objects"]["compute_law"] = compute
        approaches = fit_approaches(ladder + iso, iso, bootstrap=cfg.bootstrap)
        fits["_objects"].update(approaches.pop("_objects"))
        fits.update(approaches)
    caught = sorted({f"{x.category.__name__}: {x.message}" for x in w})
    fits["warnings"] = caught
    return fits, caught


IDENTIFIED_MAX_CI_WIDTH = 0.5  # a 95% interval of an exponent wider than this cannot tell 0.25 from 0.75


def fit_approaches(all_rows: list, grid_rows: list, *, bootstrap: int) -> dict:
    """Chinchilla Approaches 1 and 3 on every run (end-of-schedule points of several lengths per
    size) and Approach 2 on the IsoFLOP grid's runs. A fit the data cannot support is recorded
    with its reason (``{"error": …, "identified": False}``), never raised: at small scale an
    IsoFLOP profile may have no minimum, or Approach 3 may find a non-positive exponent, which is
    no scaling law. Fit objects go under ``_objects`` (for figures and the report)."""
    from jaxscale.fit import fit_approach1, fit_approach2, fit_approach3, rows_to_data

    fits: dict = {"_objects": {}}
    both = rows_to_data(all_rows, x="params", y="test_loss")
    grid = rows_to_data(grid_rows, x="params", y="test_loss")
    fits["_objects"]["isoflop_points"] = (grid.N, grid.D, grid.loss, [n.split("/")[-1] for n in grid.names])
    for key, fn in (("approach1", lambda: fit_approach1(both.N, both.D, both.loss)),
                    # grouped by the budget each run was planned at (its tokens are rounded up to
                    # whole steps, by up to 16% at the smallest sizes, so 6·N·D can split a budget)
                    ("approach2", lambda: fit_approach2(grid.N, grid.D, grid.loss, compute=grid.budget)),
                    ("approach3", lambda: fit_approach3(both.N, both.D, both.loss, bootstrap=bootstrap))):
        try:
            fit = fn()
        except (ValueError, FloatingPointError) as err:
            fits[key] = {"error": f"{type(err).__name__}: {err}", "identified": False}
            continue
        if key == "approach3" and not fit.has_frontier:
            fits[key] = {**fit.to_json(), "identified": False,
                         "error": f"fitted α = {fit.alpha.value:.4g}, β = {fit.beta.value:.4g}, A = {fit.A.value:.4g}, "
                                  f"B = {fit.B.value:.4g}: no compute-optimal frontier (an exponent ≤ 0, or a scale "
                                  "past float range); the runs do not separate N from D at this scale"}
            continue
        fits[key] = {**fit.to_json(), "identified": identified(fit)}
        fits["_objects"][key] = fit
    return fits


def identified(fit) -> bool:
    """An allocation exponent is identified when it is finite, in (0, 1), and its 95% interval
    exists and is narrower than ``IDENTIFIED_MAX_CI_WIDTH``."""
    import math

    a = fit.a
    if a.ci95 is None or not all(math.isfinite(v) for v in (a.value, *a.ci95)):
        return False
    return 0 < a.value < 1 and a.ci95[1] - a.ci95[0] < IDENTIFIED_MAX_CI_WIDTH


def newest_unfinished(root: str | os.PathLike = "runs", study: StudyConfig | None = None) -> Path | None:
    """The newest ``run-*`` folder under ``root`` without a DONE marker (for auto-resume).
    ``study``: only a run of that study (its recorded configuration; a run that recorded none
    yet, by its folder name's ending, ``run_suffix``), so that ``jaxscale run --scale quick`` does
    not try to resume an unfinished run of another scale or budget."""
    root = Path(root)
    if not root.exists():
        return None
    runs = sorted((p for p in root.glob("run-*") if p.is_dir() and not (p / DONE_MARKER).exists()
                   and (study is None or _is_run_of(p, study))), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def run_suffix(study: StudyConfig) -> str:
    """The end of a ``runs/run-<time>…`` folder's name for ``study``: ``-<scale>``, and
    ``-tpp<R>`` where its ladder's tokens per parameter differ from the scale's."""
    default = SCALES.get(study.scale)
    tpp = "" if default is not None and study.tokens_per_param == default.tokens_per_param \
        else f"-tpp{study.tokens_per_param:g}"
    return f"-{study.scale}{tpp}"


def holds_run_of(folder: str | os.PathLike, study: StudyConfig, what: str = "out") -> bool:
    """Whether ``folder`` holds a run of ``study`` to resume (True), or is missing or empty, for a
    new one (False). Anything else is refused (``ValueError`` naming ``what``, the argument the
    folder came from): a study writes ``results.jsonl``, ``fits.json``, ``report.md`` and its
    figures into its folder, replacing files of those names, so ``jaxscale run --out`` given a
    sweep's or a ``train``'s folder overwrote its results. A run of the study is recognised by
    its ``ladder/sweep.json`` (``_is_run_of``); an empty ``ladder/`` is a run stopped before its
    first sweep recorded its settings (a ``ladder/`` holding anything else, without sweep.json, is
    not a study's). A file at ``folder`` is left to ``output_folder``'s
    error."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return False
    if (folder / "ladder" / "sweep.json").exists():
        if _is_run_of(folder, study):
            return True
        raise ValueError(f"{what}: {str(folder)!r} holds a run of another study (its ladder/sweep.json records "
                         f"another scale, tokens per parameter or configuration, or cannot be read); resume it "
                         f"with the options that started it, or give a new {what} folder")
    if (folder / "ladder").is_dir() and not any((folder / "ladder").iterdir()):
        return True  # stopped before its first sweep recorded anything (a sweep writes sweep.json first)
    shown = sorted(p.name for p in folder.iterdir())
    listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
    raise ValueError(f"{what}: {str(folder)!r} is not empty ({listed}) and holds no run of this study; a study "
                     f"writes results.jsonl, fits.json and report.md there, replacing files of those names. "
                     f"Give a new or empty {what} folder")


def _is_run_of(folder: Path, study: StudyConfig) -> bool:
    recorded = folder / "ladder" / "sweep.json"
    if not recorded.exists():
        return folder.name.endswith(run_suffix(study))
    try:
        was = json.loads(recorded.read_text()).get("command", {}).get("study")
    except (OSError, ValueError):
        return False
    return was == json.loads(json.dumps(dataclasses.asdict(study)))


def load_rows(out: str | os.PathLike) -> list:
    return read_rows(Path(out) / "results.jsonl")
