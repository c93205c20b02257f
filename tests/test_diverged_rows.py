"""A diverged model's result row reports what it trained, not what it was planned to train.

A model whose loss or gradient turns non-finite is frozen (``train.flat_step``): its state's step
counter stops at the updates applied. Its row used to report the planned budget as its ``steps``,
``tokens``, ``tokens_per_param`` and ``flops``, with a curve running to the planned end, so a
reader of results.jsonl was told that it trained its whole budget. Now those count the updates
applied, the curve ends at the step that diverged, and the plan is in ``planned_steps`` /
``planned_tokens`` (besides ``budget``). The row's readers that group rows by budget
(``fit.sources.rows_to_data``, ``isoflop_grid.budget_of``) still put a diverged row with the
other rows of its planned budget, and a resumed sweep keeps its row as written.
"""

import math

import numpy as np
import pytest

from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.data.source import from_corpus
from jaxscale.fit import DivergedRowsWarning
from jaxscale.fit.sources import rows_to_data
from jaxscale.isoflop_grid import budget_of
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig

PLANNED = 12  # steps of every model's budget
BATCH, SEQ = 2, 16
SETTINGS = RunSettings(batch_size=BATCH, seq_len=SEQ, eval_windows=4, progress=False)
CFG = create_model_config("ladder/l1")
# Two absurd rates, two ways to diverge (on the CPU; the tests read the steps applied from the
# state): at LOSS_LR the first update leaves the weights so large that the next step's loss is
# non-finite; at GRAD_LR the loss grows for a few steps (5) until, still finite, its gradient
# overflows. Either way the update of that step is not applied.
LOSS_LR, GRAD_LR = 1e35, 1e3
ABSURD_LR = GRAD_LR  # the rate of model 1 in the sweep and consumer tests
SANE = (0, 2)  # the models at sane rates


def _data():
    return from_corpus(load_corpus(), seq_len=SEQ, batch_size=BATCH, eval_max_windows=4)


def _specs(lr1, lr3=None):
    lrs = (1e-3, lr1, 2e-3) + ((lr3,) if lr3 is not None else ())
    return [ModelSpec(CFG, seed=i, optim=OptimConfig(lr=lr), budget=Budget("steps", PLANNED))
            for i, lr in enumerate(lrs)]


@pytest.fixture(scope="module")
def stacks():
    """The same four-model stack trained twice: with models 1 and 3 at a sane rate, and at the
    absurd ones (model 1 at ``GRAD_LR``, model 3 at ``LOSS_LR``)."""
    data = _data()
    sane = train_group(_specs(1e-3, 1e-3), data, SETTINGS, mode="stack")
    absurd = train_group(_specs(GRAD_LR, LOSS_LR), data, SETTINGS, mode="stack")
    assert [r["diverged"] for r in absurd.rows] == [False, True, False, True]
    assert not any(r["diverged"] for r in sane.rows)
    return sane, absurd


def _applied(result, i):
    """The optimiser updates model ``i`` applied: its state's step counter."""
    return int(np.asarray(result.state.step).reshape(-1)[i])


@pytest.mark.parametrize("i", [1, 3])
def test_a_diverged_row_counts_the_steps_it_applied(stacks, i):
    _, absurd = stacks
    row, applied = absurd.rows[i], _applied(absurd, i)
    assert 1 <= applied < PLANNED  # its first update was applied; it diverged before its end
    assert row["steps"] == applied
    assert row["tokens"] == applied * BATCH * SEQ
    assert row["tokens_per_param"] == pytest.approx(row["tokens"] / row["params"])
    assert row["flops"] == pytest.approx(row["flops_per_token"] * row["tokens"])
    assert row["flops"] < row["flops_per_token"] * PLANNED * BATCH * SEQ
    # the plan stays readable
    assert row["planned_steps"] == PLANNED and row["planned_tokens"] == PLANNED * BATCH * SEQ
    assert row["budget"] == {"kind": "steps", "value": PLANNED, "params_basis": "total"}
    assert row["diverged"] is True
    assert row["train_loss"] is None and row["val_loss"] is None and row["test_loss"] is None


@pytest.mark.parametrize("i", [1, 3])
def test_a_diverged_curve_ends_at_the_step_that_diverged(stacks, i):
    _, absurd = stacks
    row, applied = absurd.rows[i], _applied(absurd, i)
    curve = row["curve"]
    # every applied update, then the step that diverged (its update not applied), marked so
    assert [p["step"] for p in curve] == list(range(1, applied + 2))
    assert [p["tokens"] for p in curve] == [s * BATCH * SEQ for s in range(1, applied + 2)]
    assert all(p["train_loss"] is not None and math.isfinite(p["train_loss"]) for p in curve[:-1])
    assert [p.get("diverged", False) for p in curve] == [False] * applied + [True]
    assert all(p["step"] <= applied + 1 for p in curve if "val_loss" in p)  # no evaluation after it


def test_the_divergence_point_shows_its_loss_or_none(stacks):
    """Through a non-finite loss, the last point's ``train_loss`` is None (JSON has no NaN); through
    a non-finite gradient alone, the loss of that step was finite and is kept."""
    _, absurd = stacks
    by_loss, by_grad = absurd.rows[3]["curve"][-1], absurd.rows[1]["curve"][-1]
    assert by_loss["diverged"] and by_loss["train_loss"] is None
    assert by_grad["diverged"] and math.isfinite(by_grad["train_loss"])


def test_the_other_rows_of_the_stack_are_unchanged(stacks):
    """A model beside a diverged one reports what it reported beside a sane one: its whole budget,
    as planned."""
    sane, absurd = stacks
    for i in SANE:
        a, s = absurd.rows[i], sane.rows[i]
        assert not a["diverged"]
        for field in ("steps", "tokens", "tokens_per_param", "flops", "train_loss", "val_loss", "test_loss",
                      "curve"):
            assert a[field] == s[field], (i, field)
        assert a["steps"] == _applied(absurd, i) == PLANNED
        assert a["planned_steps"] == PLANNED and a["planned_tokens"] == a["tokens"]


def _sibling(row, *, lr, seed, loss):
    """A finished run of the same size and budget as ``row`` (a copy, other rate and seed)."""
    return {**row, "run_id": f"sib-{lr}-{seed}", "lr": lr, "seed": seed, "diverged": False,
            "optimizer": {**row["optimizer"], "lr": lr}, "val_loss": loss, "test_loss": loss, "train_loss": loss}


def test_rows_to_data_ranks_a_rate_with_a_diverged_seed_last_at_its_planned_budget(stacks):
    """The rate that lost a seed to divergence must not win on its lucky survivor: the diverged
    row, though it reports fewer tokens than its siblings, still counts in their group."""
    _, absurd = stacks
    sane_row, div_row = absurd.rows[0], absurd.rows[1]
    assert div_row["tokens"] < sane_row["tokens"] == div_row["planned_tokens"]
    stable = [_sibling(sane_row, lr=1e-3, seed=s, loss=3.0 + 0.2 * s) for s in (0, 1)]
    lucky = _sibling(sane_row, lr=ABSURD_LR, seed=0, loss=2.5)  # the absurd rate's surviving seed
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(stable + [div_row, lucky])
    assert data.D.tolist() == [sane_row["tokens"]]  # one (size, budget) point
    assert data.loss.tolist() == [pytest.approx(3.1)]  # the stable rate's seed mean
    assert any("passed over" in n for n in data.notes)


def test_rows_to_data_takes_a_row_that_diverged_on_its_first_step():
    """A model whose first step diverged trained nothing: 0 steps and 0 tokens. It is still a
    failed run of its planned budget, not a malformed row."""
    base = {"name": "s", "config": {}, "params": 1.2e4, "non_embedding_params": 1e4, "batch_size": 8,
            "seq_len": 64, "planned_steps": 100, "planned_tokens": 51200, "steps": 100, "tokens": 51200,
            "flops": 6e4 * 51200, "corpus": {"name": "t", "fingerprint": "x"}, "optimizer": {}}
    rows = [{**base, "run_id": f"ok{s}", "lr": 1e-3, "seed": s, "diverged": False, "val_loss": 3.0 + s,
             "test_loss": 3.0 + s} for s in (0, 1)]
    rows += [{**base, "run_id": "div", "lr": 1e-2, "seed": 0, "diverged": True, "steps": 0, "tokens": 0,
              "flops": 0, "val_loss": None, "test_loss": None},
             {**base, "run_id": "lucky", "lr": 1e-2, "seed": 1, "diverged": False, "val_loss": 2.0,
              "test_loss": 2.0}]
    with pytest.warns(DivergedRowsWarning):
        data = rows_to_data(rows)
    assert data.loss.tolist() == [pytest.approx(3.5)]


def test_budget_of_reads_a_diverged_row_at_its_planned_tokens(stacks):
    """An IsoFLOP row of a budget that is not a token count is matched to its budget by its
    tokens: a diverged one by those it was planned to train (it stopped short of them)."""
    _, absurd = stacks
    div_row = absurd.rows[1]
    c = 6.0 * div_row["params"] * div_row["planned_tokens"]
    assert div_row["budget"]["kind"] != "tokens"
    assert budget_of(div_row, [c]) == c
    assert budget_of(absurd.rows[0], [c]) == c  # its sibling, at its (planned) tokens


def test_a_resumed_sweep_keeps_the_diverged_row_as_written(tmp_path, monkeypatch):
    """A finished group is not trained again: its diverged row comes back as written, with the
    steps it applied."""
    import os

    from jaxscale import sweep
    from jaxscale.results import read_rows

    data, specs = _data(), _specs(ABSURD_LR)
    with open(os.devnull, "w") as quiet:
        first = sweep.run_sweep(specs, data, SETTINGS, mode="stack", out=tmp_path, save_weights=False,
                                log=quiet).rows

        def no_training(*args, **kwargs):
            raise AssertionError("a finished group was trained again")

        monkeypatch.setattr(sweep, "train_group", no_training)
        again = sweep.run_sweep(specs, data, SETTINGS, mode="stack", out=tmp_path, save_weights=False,
                                log=quiet).rows
    diverged = [r for r in again if r["diverged"]]
    assert len(diverged) == 1 and diverged[0]["steps"] < diverged[0]["planned_steps"] == PLANNED
    assert len(diverged[0]["curve"]) == diverged[0]["steps"] + 1
    assert [r["run_id"] for r in again] == [r["run_id"] for r in first]
    assert [(r["steps"], r["tokens"]) for r in again] == [(r["steps"], r["tokens"]) for r in first]
    assert len(read_rows(tmp_path / "results.jsonl")) == len(specs)  # nothing appended twice


def test_the_printed_summary_line_gives_the_steps_trained_of_those_planned(stacks):
    """``jaxscale sweep``/``train`` print a row's steps: a diverged one's as "5 of 12"."""
    from jaxscale.commands._common import summary_line

    diverged, sane = stacks[1].rows[1], stacks[1].rows[0]
    assert f"steps {diverged['steps']} of {diverged['planned_steps']} " in summary_line(diverged)
    assert f"steps {sane['steps']} tokens" in summary_line(sane)
