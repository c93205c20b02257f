"""The progress line: what it prints, and that a group's throughput is timed from its first step
(its programs are compiled or loaded before the first dispatch, and timed apart)."""

import io
import math
import re

import pytest

from jaxscale.config import ModelConfig
from jaxscale.data.corpus import random_tokens_corpus
from jaxscale.data.source import from_corpus
from jaxscale.progress import Progress
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig


def _lines(stream: io.StringIO) -> list[str]:
    return [l for l in stream.getvalue().splitlines() if l]


def test_line_shows_steps_rate_eta_and_losses():
    out = io.StringIO()
    p = Progress("[g0] 9 models", 100, stream=out, every_s=0.0, models=9)
    p.update(25, 12345.6, [1.0, math.nan] + [2.0] * 7)
    (line,) = _lines(out)
    assert line.startswith("[g0] 9 models step 25/100 | 12,346 tok/s total, 1,372 per model | ETA "), line
    assert line.endswith("loss 1.000 nan 2.000 2.000 2.000 2.000 2.000 2.000 (+1)"), line


def test_a_bad_model_count_is_refused_by_name():
    import pytest

    with pytest.raises(ValueError, match="models"):
        Progress("[g0]", 10, models=0)


def test_rate_not_yet_timed_prints_a_dash_not_nan():
    out = io.StringIO()
    Progress("[g0] 1 model", 10, stream=out, every_s=0.0).update(5, math.nan, [3.0])
    assert "| - tok/s |" in _lines(out)[0]


def test_non_terminal_stream_prints_at_most_every_interval_and_at_the_end():
    out = io.StringIO()
    p = Progress("[g]", 10, stream=out, every_s=3600.0)
    for step in range(1, 11):
        p.update(step, 1.0, [0.5])
    assert [l.split(" step ")[1].split(" ")[0] for l in _lines(out)] == ["1/10", "10/10"]


def test_first_progress_line_of_a_group_has_a_measured_rate(capsys):
    """Before, the first dispatch also compiled the programs, so it was left out of the timing and
    the first line read ``nan tok/s``; now the compile is done first and timed on its own."""
    cfg = ModelConfig(name="pg16", vocab_size=64, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=16)
    data = from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4,
                       eval_max_windows=16, vocab_size=64)
    settings = RunSettings(batch_size=4, seq_len=16, n_evals=1, steps_per_dispatch=10)
    (row,) = train_group([ModelSpec(cfg, 1, OptimConfig(lr=3e-3), Budget("steps", 20))], data, settings,
                         mode="alone").rows
    lines = [l for l in capsys.readouterr().err.splitlines() if " tok/s " in l]
    assert lines, "no progress line was printed"
    rate = re.search(r"\| (\S+) tok/s \|", lines[0]).group(1)
    assert rate != "-" and float(rate.replace(",", "")) > 0, lines[0]
    stack = row["stack"]
    assert stack["compile_seconds"] > 0 and stack["steady_seconds"] > 0
    assert stack["compile_seconds"] + stack["steady_seconds"] <= row["wall_seconds"] + 1e-6


def test_a_groups_done_line_gives_its_total_rate_and_each_models():
    """``sweep._report_group``: tokens/s of the whole group and, for a stack, of each model (a
    model stopped early trained fewer tokens in the same wall time)."""
    from jaxscale.planner import Group
    from jaxscale.sweep import MAX_RATES_SHOWN, _report_group

    stack = {"compile_seconds": 1.5, "padded_flops_util": 0.5}
    rows = [{"tokens": t, "wall_seconds": 10.0, "stack": stack} for t in (20_000, 5_000)]
    group = Group(id="g07", indices=(0, 1), mode="stack", envelope_name="envelope", estimated_s=12.0)
    out = io.StringIO()
    _report_group(group, rows, out)
    assert out.getvalue().startswith("g07 done: 2 model(s), compile 1.5s, wall 10.0s (planned 12.0s), "
                                     "2,500 tok/s total (per model 2,000 500), padded-FLOP util 50.0%"), out.getvalue()
    out = io.StringIO()
    _report_group(group, rows[:1], out)
    assert "2,000 tok/s total, " in out.getvalue() and "per model" not in out.getvalue()
    out = io.StringIO()
    _report_group(group, rows * MAX_RATES_SHOWN, out)
    assert f"(+{MAX_RATES_SHOWN})" in out.getvalue()


def test_a_stacks_finished_model_shows_done_and_adds_no_tokens(capsys):
    """In a stack whose first model's budget is spent, the line counted that frozen model's tokens
    (a total twice the work done, with one model left) and showed its loss as ``nan``, which reads
    as a divergence."""
    cfg = ModelConfig(name="pg16", vocab_size=64, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=16)
    data = from_corpus(random_tokens_corpus(64, 20_000, seed=3), seq_len=16, batch_size=4,
                       eval_max_windows=16, vocab_size=64)
    settings = RunSettings(batch_size=4, seq_len=16, n_evals=1, steps_per_dispatch=10)
    specs = [ModelSpec(cfg, 1, OptimConfig(lr=3e-3), Budget("steps", 4)),
             ModelSpec(cfg, 2, OptimConfig(lr=3e-3), Budget("steps", 60))]
    train_group(specs, data, settings, mode="stack")
    last = [l for l in capsys.readouterr().err.splitlines() if " tok/s " in l][-1]
    assert " step 60/60 " in last and last.endswith("| loss done " + last.split()[-1]), last
    assert float(last.split()[-1]) > 0
    total, one = re.search(r"\| (\S+) tok/s total, (\S+) per model \|", last).groups()
    # timed from the start: the first model trained 4 of the 60 steps' worth (it counted 60)
    assert float(total.replace(",", "")) == pytest.approx(float(one.replace(",", "")) * 64 / 60, rel=1e-3), last
