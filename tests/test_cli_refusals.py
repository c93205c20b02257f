"""What the CLI refuses before it writes: output folders of other commands or settings, and bad
options (seeds, optimiser settings, budgets, records), each named in its error."""

import pytest

from jaxscale.cli import main
from jaxscale.results import read_rows


TINY_SWEEP = ["sweep", "--family", "ladder", "--sizes", "l1", "--steps", "4", "--batch-size", "2",
              "--eval-windows", "4", "--mode", "sequential", "--no-save-weights", "--quiet"]


def test_sweep_resume_hint_names_the_folder_it_made(tmp_path, capsys, monkeypatch):
    """Without --out each sweep makes a new ``runs/sweep-<time>-<pid>``: the "resume with the same
    command" line must add ``--out`` with that folder, or it started a fresh sweep."""
    import sys

    import jaxscale.sweep
    from jaxscale.runner import Interrupted

    def interrupted(*args, out=None, **kwargs):
        from jaxscale.folders import output_folder

        output_folder(out, "out")  # as run_sweep makes it, once its plan is accepted
        raise Interrupted(3, "ck")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(jaxscale.sweep, "run_sweep", interrupted)
    monkeypatch.setattr(sys, "argv", ["jaxscale", *TINY_SWEEP])
    assert main(TINY_SWEEP) == 130
    hint = capsys.readouterr().err.split("resume with the same command: ")[1].strip()
    made = [p for p in (tmp_path / "runs").iterdir()]
    assert len(made) == 1 and hint == " ".join(["jaxscale", *TINY_SWEEP, "--out", f"runs/{made[0].name}"])
    given = [*TINY_SWEEP, "--out", "mine"]
    monkeypatch.setattr(sys, "argv", ["jaxscale", *given])
    assert main(given) == 130
    assert capsys.readouterr().err.split("resume with the same command: ")[1].strip() == " ".join(["jaxscale", *given])


def test_sweep_seq_len_longer_than_the_context_is_refused_before_the_folder_is_made(tmp_path, capsys):
    """It was found by the first group's training, after sweep.json recorded it, so a rerun with
    a good --seq-len was refused as a changed setting; and the error did not name --seq-len."""
    out = tmp_path / "e"
    assert main([*TINY_SWEEP, "--seq-len", "100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--seq-len: 100000 tokens is longer than the models' context (64 tokens); give --seq-len 64 or less" in err
    assert not out.exists()


def test_sweep_select_best_lr_replaces_its_selection_on_a_rerun(tmp_path, capsys, monkeypatch):
    """selected.jsonl was appended to, so each rerun or resume added the same selection again."""
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    argv = [*TINY_SWEEP, "--lrs", "1e-3", "3e-3", "--select", "best-lr", "--out", str(tmp_path)]
    assert main(argv) == 0
    first = read_rows(tmp_path / "selected.jsonl")
    assert len(first) == 1
    assert main(argv) == 0  # a rerun: resumes, trains nothing
    assert read_rows(tmp_path / "selected.jsonl") == first


def test_run_refuses_an_out_folder_that_holds_no_run_of_its_study(tmp_path, capsys, monkeypatch):
    """``jaxscale run --out`` took any existing folder for a run to resume, and replaced the
    results.jsonl of a sweep or train run there; it resumes only a run of its own study."""
    import dataclasses
    import json

    import jaxscale.study
    from jaxscale.study import SCALES

    seen = []
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(jaxscale.study, "run_study", lambda cfg, out, **kw: seen.append(out) or 1 / 0)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("results.jsonl", "sweep.json", "plan.json"):
        (sweep / name).write_text("theirs\n")
    assert main(["run", "--scale", "smoke", "--out", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert f"--out: '{sweep}' is not empty (plan.json, results.jsonl, sweep.json) and holds no run of this study" in err
    assert (sweep / "results.jsonl").read_text() == "theirs\n" and not seen
    other = tmp_path / "other"
    (other / "ladder").mkdir(parents=True)
    quick = {"command": {"study": dataclasses.asdict(SCALES["quick"])}}
    (other / "ladder" / "sweep.json").write_text(json.dumps(quick))
    assert main(["run", "--scale", "smoke", "--out", str(other)]) == 2
    assert f"--out: '{other}' holds a run of another study" in capsys.readouterr().err and not seen
    with pytest.raises(ZeroDivisionError):  # its own study's run, and an empty folder, are taken
        main(["run", "--scale", "quick", "--out", str(other)])
    assert "resuming the quick study" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZeroDivisionError):
        main(["run", "--scale", "quick", "--out", str(tmp_path / "empty")])
    assert "starting the quick study" in capsys.readouterr().out
    assert seen == [other, tmp_path / "empty"]


@pytest.mark.parametrize("argv, option", [
    (["train", "--steps", "3", "--seed", "-1"], "--seed"),
    (["train", "--steps", "3", "--seed", "2147483648"], "--seed"),  # the model's seed is an int32
    (["train", "--steps", "3", "--data-seed", "-1"], "--data-seed"),  # was accepted, and trained
    (["train", "--steps", "3", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--steps", "3", "--warmup-frac", "2"], "--warmup-frac"),
    (["train", "--steps", "3", "--dropout", "1.5"], "--dropout"),
    (["sweep", "--family", "ladder", "--sizes", "l1", "--steps", "3", "--seeds", "0", "-1"], "--seeds"),
    (["sweep", "--family", "ladder", "--sizes", "l1", "--steps", "3", "--weight-decay", "nan"], "--weight-decay"),
])
def test_bad_seeds_and_optimiser_settings_are_refused_naming_the_option(argv, option, tmp_path, capsys):
    """A negative seed failed in numpy ("expected non-negative integer") once the plan was printed
    and sweep.json written (train: an empty --out); a bad weight decay, warmup or dropout named
    OptimConfig's or ModelConfig's field, after --out was made."""
    with pytest.raises(SystemExit) as info:
        main([*argv, "--quiet", "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    assert f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["--seq-len", "1000"], "--seq-len: 1000 tokens is longer than the model's context (64 tokens)"),
    (["--vocab-size", "10"], "has token id"),
    (["--tokens", "1"], "--tokens: a budget of 1 tokens is less than one step of 16 sequences x 64 tokens"),
    (["--tokens-per-param", "1e-9"], "--tokens-per-param: 1e-09 x 12,784 parameters of ladder/l1"),
])
def test_train_refusals_make_no_out_folder(argv, message, tmp_path, capsys):
    """Checked after --out was made, these left an empty folder behind (``--tokens 1`` was not
    checked at all: it trained a whole step, 1024 tokens)."""
    assert main(["train", "--model", "ladder/l1", "--quiet", "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "tiny.txt").write_text("ab")
    assert main(["train", "--steps", "3", "--corpus", str(tmp_path / "tiny.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "fewer than one context window" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sweep_token_budget_below_one_step_is_refused(tmp_path, capsys):
    """``--tokens 1`` became one step (1024 tokens) without a word."""
    assert main(["sweep", "--family", "ladder", "--sizes", "l1", "--tokens", "1", "2048", "--quiet",
                 "--out", str(tmp_path / "s")]) == 2
    assert ("--tokens: a budget of 1 tokens is less than one step of 16 sequences x 64 tokens (1024 tokens), "
            "and a budget is rounded up to whole steps") in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_sweep_budgets_that_round_to_one_step_count_are_refused(tmp_path, capsys):
    """``--tokens 5000 5100`` at 256 tokens a step trained the same 20-step model twice (and the
    printout showed one of them); the same for tokens-per-parameter ratios of a small size."""
    small = ["sweep", "--family", "ladder", "--sizes", "l1", "--batch-size", "4", "--quiet"]
    assert main([*small, "--tokens", "5000", "5100", "--out", str(tmp_path / "s")]) == 2
    assert ("--tokens: 5000 and 5100 both train ladder/l1 for 20 steps of 256 tokens (a budget is rounded up "
            "to whole steps)") in capsys.readouterr().err
    assert main([*small, "--tokens-per-param", "20", "20.005", "--out", str(tmp_path / "s")]) == 2
    assert "--tokens-per-param: 20 and 20.005 both train ladder/l1 for" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("text, detail", [
    ("[]", "(expected a JSON object): got []"),
    ("{bad", "(expected a JSON object): Expecting property name"),
])
def test_sweep_refuses_a_sweep_json_that_is_not_a_record_naming_it(text, detail, tmp_path, capsys):
    """``[]`` ended in ``AttributeError: 'list' object has no attribute 'get'``, invalid JSON in
    json's message without the file's name."""
    (tmp_path / "sweep.json").write_text(text)
    assert main([*TINY_SWEEP, "--out", str(tmp_path)]) == 2
    assert f"--out: {tmp_path / 'sweep.json'} is not a sweep record {detail}" in capsys.readouterr().err
    assert (tmp_path / "sweep.json").read_text() == text and not (tmp_path / "plan.json").exists()


def test_sweep_into_an_emergence_study_folder_says_it_holds_another_commands_output(tmp_path, capsys):
    """The sweep.json of an emergence study records no command options, so a sweep there was
    refused as a changed setting ("--batch-size was None, now 2")."""
    import json

    record = json.dumps({"command": {}, "mode": "auto", "data": "x", "settings": {}, "models": []})
    (tmp_path / "study.json").write_text("{}")
    (tmp_path / "sweep.json").write_text(record)
    assert main([*TINY_SWEEP, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--out '{tmp_path}' holds another command's output (study.json: an emergence study)" in err
    assert "was None" not in err and (tmp_path / "sweep.json").read_text() == record
