"""The main job end to end at the smoke scale: the documented files and fields, the report's
numbers equal to the fit objects', valid PNG figures; and auto-resume of unfinished runs."""

import json
import struct

import pytest

from jaxscale.results import missing_fields, read_rows
from jaxscale.study import DONE_MARKER, SCALES, newest_unfinished, run_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    from jaxscale.report import write_figures, write_report

    out = tmp_path_factory.mktemp("study")
    cfg = SCALES["smoke"]
    result = run_study(cfg, out, progress=False, log=open("/dev/null", "w"))
    figures = write_figures(out, result.fits, result.ladder_rows)
    report = write_report(out, cfg, result.fits, result.ladder_rows, result.isoflop_rows,
                          command="jaxscale run --scale smoke", wall_seconds=1.0, figures=figures)
    return cfg, out, result, figures, report


def test_documented_files_and_fields(smoke_study):
    cfg, out, result, figures, report = smoke_study
    rows = read_rows(out / "results.jsonl")
    n_grid = len(cfg.sizes) * len(cfg.seeds) * len(cfg.lrs)
    extra = read_rows(out / "ladder-lr1" / "results.jsonl") if (out / "ladder-lr1").exists() else []
    iso_extra = read_rows(out / "isoflop-ext1" / "results.jsonl") if (out / "isoflop-ext1").exists() else []
    assert len(rows) == n_grid + len(extra) + len(cfg.isoflop_budgets) * len(cfg.isoflop_sizes) + len(iso_extra)
    assert all(not missing_fields(r) for r in rows)
    # strict JSON (bare Infinity, written for an unbounded interval, is refused by strict parsers)
    fits = json.loads((out / "fits.json").read_text(), parse_constant=lambda c: pytest.fail(f"fits.json holds {c}"))
    for key in ("power_law_non_embedding", "power_law_total", "compute_law", "approach1", "approach2", "approach3"):
        assert key in fits
    law = fits["power_law_non_embedding"]
    assert {"A", "alpha", "B", "r2_log", "backtest", "floor_identified"} <= set(law)
    for name in figures.values():
        w, h = png_size(out / name)
        assert w > 400 and h > 300
    assert (out / "ladder" / "plan.json").exists() and (out / "isoflop" / "sweep.json").exists()


def test_report_numbers_are_the_fit_objects(smoke_study):
    _, out, result, figures, report = smoke_study
    text = report.read_text()
    fit, bt = result.fits["_objects"]["power_law_non_embedding"]
    assert f"{fit.alpha.value:.4g} [{fit.alpha.ci95[0]:.4g}, {fit.alpha.ci95[1]:.4g}]" in text
    assert f"{fit.r2_log:.4f}" in text and f"{100 * bt.mean_abs_rel_error:.2f}%" in text
    assert "extrapolation" in text and "1.0e+21" in text
    for name in figures.values():
        assert f"({name})" in text
    assert result.ladder_rows[0]["corpus"]["fingerprint"] in text
    objs = result.fits["_objects"]
    laws = [objs["power_law_non_embedding"][0], objs["power_law_total"][0], objs["compute_law"]]
    section_1 = text.split("## 2.")[0]
    assert ("**Floor not identified**" in section_1) == any(not f.floor_identified for f in laws)


def test_floor_note_names_each_unidentified_floor_and_what_the_data_allow():
    from jaxscale.fit._optim import Estimate
    from jaxscale.report import floor_note

    placed, zero = Estimate(1.2, (1.0, 1.4)), Estimate(3e-12, (3e-12, 0.992))
    assert floor_note([("L(N)", "B", placed, True)]) is None
    note = floor_note([("L(N), total", "B", placed, True), ("L(C)", "E", zero, False),
                       ("A3", "E", Estimate(1e-20), False)])
    assert note.startswith("**Floor not identified** (L(C): E up to 0.992; A3: E ≈ 0).")
    assert "L(N), total" not in note


def test_selections_at_the_grid_end_get_the_next_rate_out(smoke_study):
    from jaxscale.lr_grid import rates_beyond

    cfg, out, result, _, _ = smoke_study
    grid = read_rows(out / "ladder" / "results.jsonl")
    wanted = rates_beyond(grid, cfg.lr_extend_factor)
    assert len(grid) == len(cfg.sizes) * len(cfg.seeds) * len(cfg.lrs)
    assert wanted, "a two-rate grid always selects an end: round 1 must train something"
    extra = read_rows(out / "ladder-lr1" / "results.jsonl")
    assert sorted((r["name"], r["lr"], r["seed"]) for r in extra) == sorted(
        (name, lr, seed) for name, lr in wanted for seed in cfg.seeds)
    assert all(lr not in cfg.lrs for _, lr in wanted)
    assert {r["run_id"] for r in extra} <= {r["run_id"] for r in result.ladder_rows}
    assert not (out / "ladder-lr2").exists()  # smoke allows one round


def test_budgets_with_an_edge_minimum_get_the_next_size_out(smoke_study):
    from jaxscale.isoflop_grid import budget_of, family_order, sizes_beyond

    cfg, out, result, _, report = smoke_study
    grid = read_rows(out / "isoflop" / "results.jsonl")
    assert len(grid) == len(cfg.isoflop_budgets) * len(cfg.isoflop_sizes)
    order = family_order(cfg.family)
    wanted = sizes_beyond(grid, cfg.isoflop_budgets, order)
    ext = out / "isoflop-ext1" / "results.jsonl"
    extra = read_rows(ext) if ext.exists() else []
    assert sorted((budget_of(r, cfg.isoflop_budgets), r["name"]) for r in extra) == sorted(wanted)
    assert {r["run_id"] for r in extra} <= {r["run_id"] for r in result.isoflop_rows}
    assert not (out / "isoflop-ext2").exists()  # smoke allows one round
    # smoke's grid (l2-l4 at 5e8-2e9 FLOPs) has the smallest budget's minimum at l2, its small end
    assert wanted, "the smoke grid is off-centre on purpose: round 1 must train something"
    assert "IsoFLOP grid extended" in report.read_text()


def test_rerun_resumes_without_training(smoke_study):
    cfg, out, result, _, _ = smoke_study
    again = run_study(cfg, out, progress=False, log=open("/dev/null", "w"))
    assert [r["run_id"] for r in again.ladder_rows] == [r["run_id"] for r in result.ladder_rows]
    assert [r["test_loss"] for r in again.isoflop_rows] == [r["test_loss"] for r in result.isoflop_rows]


def test_study_config_rejects_a_bad_learning_rate_extension():
    import dataclasses

    with pytest.raises(ValueError, match="lr_extend_rounds: must be an int >= 0"):
        dataclasses.replace(SCALES["smoke"], lr_extend_rounds=-1)
    with pytest.raises(ValueError, match="lr_extend_factor: must be > 1"):
        dataclasses.replace(SCALES["smoke"], lr_extend_factor=0.5)
    with pytest.raises(ValueError, match="isoflop_extend_rounds: must be an int >= 0"):
        dataclasses.replace(SCALES["smoke"], isoflop_extend_rounds=1.5)
    for bad in (0, -20.0, float("nan"), float("inf"), "20", True):
        with pytest.raises(ValueError, match="tokens_per_param: must be a positive number"):
            dataclasses.replace(SCALES["smoke"], tokens_per_param=bad)


def test_newest_unfinished(tmp_path):
    assert newest_unfinished(tmp_path) is None
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-b").mkdir()
    (tmp_path / "run-b" / DONE_MARKER).write_text("x")
    assert newest_unfinished(tmp_path).name == "run-a"


def test_newest_unfinished_of_a_study(tmp_path):
    """Auto-resume picks only a run of the study asked for: by the study it recorded, or by its
    folder name's scale before it recorded one; another scale or budget is never resumed."""
    import dataclasses
    import json
    import os

    def make(name, study, age):
        folder = tmp_path / name
        (folder / "ladder").mkdir(parents=True)
        if study is not None:
            (folder / "ladder" / "sweep.json").write_text(json.dumps({"command": {"study": dataclasses.asdict(study)}}))
        os.utime(folder, (age, age))

    cpu, quick = SCALES["cpu"], SCALES["quick"]
    make("run-1-cpu", cpu, 1_000)
    make("run-2-quick", quick, 2_000)
    make("run-3-smoke", None, 3_000)
    assert newest_unfinished(tmp_path).name == "run-3-smoke"
    assert newest_unfinished(tmp_path, cpu).name == "run-1-cpu"
    assert newest_unfinished(tmp_path, quick).name == "run-2-quick"
    assert newest_unfinished(tmp_path, SCALES["smoke"]).name == "run-3-smoke"
    longer = dataclasses.replace(cpu, tokens_per_param=60.0)
    assert newest_unfinished(tmp_path, longer) is None
    make("run-0-cpu-tpp60", None, 500)
    assert newest_unfinished(tmp_path, longer).name == "run-0-cpu-tpp60"
    assert newest_unfinished(tmp_path, cpu).name == "run-1-cpu"
    (tmp_path / "run-1-cpu" / "ladder" / "sweep.json").write_text("{not json")
    assert newest_unfinished(tmp_path, cpu) is None


def test_a_study_resumes_only_its_own_run_and_never_writes_over_another_folder(tmp_path):
    """``run_study(out=…)`` writes results.jsonl, fits.json and the report into ``out``, replacing
    files of those names: a folder of a sweep or a ``train`` run lost its results.jsonl. Only a
    missing or empty folder (a new run) or a run of this study (resumed) is taken, before
    anything is trained or written."""
    import dataclasses

    from jaxscale.study import holds_run_of

    smoke = SCALES["smoke"]
    assert holds_run_of(tmp_path / "missing", smoke) is False
    assert holds_run_of(tmp_path, smoke) is False  # empty
    (tmp_path / "a file").write_text("x")
    assert holds_run_of(tmp_path / "a file", smoke) is False  # left to output_folder's error
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text('{"run_id": "theirs"}\n')
    with pytest.raises(ValueError, match=r"^out: '.*sweep' is not empty \(results.jsonl\) and holds no run of "
                                         r"this study.*Give a new or empty out folder"):
        run_study(smoke, sweep, progress=False, log=open("/dev/null", "w"))
    assert (sweep / "results.jsonl").read_text() == '{"run_id": "theirs"}\n'
    started = tmp_path / "started"
    (started / "ladder").mkdir(parents=True)  # a run stopped before its first sweep.json
    assert holds_run_of(started, smoke) is True
    (started / "ladder" / "sweep.json").write_text(json.dumps({"command": {"study": dataclasses.asdict(smoke)}}))
    assert holds_run_of(started, smoke) is True
    with pytest.raises(ValueError, match=r"^--out: '.*started' holds a run of another study"):
        holds_run_of(started, SCALES["quick"], "--out")
    other = tmp_path / "other"   # a ladder/ folder of another command's output is no study
    (other / "ladder").mkdir(parents=True)
    (other / "ladder" / "results.jsonl").write_text('{"run_id": "theirs"}\n')
    with pytest.raises(ValueError, match="holds no run of this study"):
        holds_run_of(other, smoke, "--out")
