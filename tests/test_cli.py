"""The CLI: help with examples everywhere, a train run writing a valid row, clean errors."""

import json
import re

import pytest

from jaxscale.cli import build_parser, main
from jaxscale.results import missing_fields, read_rows


def test_every_subcommand_has_help_with_examples(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"train", "run", "families"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert "example" in (p.epilog or "").lower(), name
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "examples" in capsys.readouterr().out


def test_train_writes_a_valid_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    rc = main(["train", "--model", "ladder/l1", "--steps", "20", "--batch-size", "4", "--eval-windows", "8",
               "--out", str(tmp_path), "--quiet", "--json"])
    assert rc == 0
    rows = read_rows(tmp_path / "results.jsonl")
    assert len(rows) == 1 and not missing_fields(rows[0])
    printed = json.loads(capsys.readouterr().out)
    assert printed["test_loss"] == rows[0]["test_loss"] and rows[0]["steps"] == 20
    assert rows[0]["mode"] == "alone" and rows[0]["corpus"]["name"] == "pystdlib"


@pytest.mark.parametrize("owner", ["sweep.json", "ladder/sweep.json", "study.json",
                                   "made_by.json"])  # an experiment script's folder (was taken for a train folder)
def test_train_refuses_a_sweep_or_study_folder_before_training(tmp_path, capsys, owner):
    (tmp_path / owner).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / owner).write_text("{}")
    assert main(["train", "--model", "ladder/l1", "--steps", "5", "--out", str(tmp_path), "--quiet"]) == 2
    assert f"holds a sweep, study or experiment ({owner})" in capsys.readouterr().err
    assert not (tmp_path / "results.jsonl").exists()


def test_train_takes_a_folder_that_merely_holds_sweeps_in_subfolders(tmp_path, capsys):
    """Like ``runs/``: the sweeps below never read its results.jsonl, so it is no sweep's folder."""
    (tmp_path / "sweep-1").mkdir()
    (tmp_path / "sweep-1" / "sweep.json").write_text("{}")
    assert main(["train", "--model", "ladder/l1", "--steps", "2", "--batch-size", "2", "--eval-windows", "2",
                 "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "results.jsonl").exists()


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "--model", "micro", "--steps", "5", "--out", str(tmp_path)]) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert main(["train", "--corpus", str(tmp_path / "missing.txt"), "--steps", "5", "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--steps", "0"])
    for bad in ("inf", "nan", "-1"):  # a float that parses is not yet a learning rate
        with pytest.raises(SystemExit):
            main(["sweep", "--family", "ladder", "--lrs", "1e-3", bad, "--steps", "5", "--out", str(tmp_path)])
        assert "argument --lrs: expected a finite positive number" in capsys.readouterr().err


def test_sweep_dtype_sets_every_model_and_is_refused_for_presets(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    rc = main(["sweep", "--family", "ladder", "--sizes", "l1", "--seeds", "0", "1", "--steps", "6", "--batch-size", "2",
               "--eval-windows", "4", "--dtype", "bfloat16", "--no-save-weights", "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    rows = read_rows(tmp_path / "results.jsonl")
    assert len(rows) == 2 and {r["config"]["dtype"] for r in rows} == {"bfloat16"}
    assert all(r["test_loss"] is not None and r["test_loss"] > 0 for r in rows)
    capsys.readouterr()
    assert main(["sweep", "--preset", "notebook-scaling", "--dtype", "bfloat16", "--out", str(tmp_path / "p")]) == 2
    assert "--dtype: a preset is the notebook's own workload" in capsys.readouterr().err


def test_sweep_compile_ahead_flag_and_quiet_preset(tmp_path, capsys, monkeypatch):
    """``--compile-ahead off`` runs the sweep with everything in the foreground (rows say no group was
    compiled ahead), and ``--quiet`` silences a preset's progress line too."""
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    rc = main(["sweep", "--family", "ladder", "--sizes", "l1", "l2", "--mode", "sequential", "--steps", "4",
               "--batch-size", "2", "--eval-windows", "4", "--no-save-weights", "--quiet", "--compile-ahead", "off",
               "--out", str(tmp_path / "s")])
    assert rc == 0
    rows = read_rows(tmp_path / "s" / "results.jsonl")
    assert [r["stack"]["compiled_ahead"] for r in rows] == [False, False]
    with pytest.raises(SystemExit):
        main(["sweep", "--preset", "notebook-scaling", "--compile-ahead", "sometimes", "--out", str(tmp_path / "p")])
    capsys.readouterr()
    assert main(["sweep", "--preset", "notebook-scaling", "--quiet", "--no-save-weights",
                 "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr()
    assert "[g00]" not in out.out + out.err and "preset notebook-scaling" not in out.out
    assert len(read_rows(tmp_path / "q" / "results.jsonl")) == 5


def test_sweep_preset_sizes_select_models_and_fixed_options_are_refused(tmp_path, capsys, monkeypatch):
    """``--sizes`` runs only those of a preset's models; the options a preset fixes (seeds, budgets,
    data, optimiser) are refused by name, before any output folder is made, not silently ignored."""
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    for extra, flags in ((["--seeds", "1", "2"], "--seeds"), (["--steps", "5", "--lrs", "0.1"], "--lrs, --steps"),
                         (["--corpus", "random"], "--corpus")):
        assert main(["sweep", "--preset", "notebook-scaling", *extra, "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err
        assert f"{flags}: --preset notebook-scaling is the notebook's own workload" in err, err
    assert not (tmp_path / "refused").exists()
    assert main(["sweep", "--preset", "notebook-scaling", "--sizes", "huge", "--out", str(tmp_path / "refused")]) == 2
    assert "--sizes: ['huge'] not in --preset notebook-scaling" in capsys.readouterr().err
    assert main(["sweep", "--preset", "notebook-scaling", "--sizes", "nano", "--quiet", "--no-save-weights",
                 "--out", str(tmp_path / "one")]) == 0
    rows = read_rows(tmp_path / "one" / "results.jsonl")
    assert [r["name"] for r in rows] == ["notebook-scaling/nano"] and rows[0]["steps"] == 40


@pytest.mark.parametrize("args, message", [
    (["--family", "ladder", "--sizes", "l1", "l2", "l1", "--steps", "5"], "sizes must not repeat; given more than once: ['ladder/l1']"),
    (["--family", "ladder", "--sizes", "l1", "--steps", "5", "5"], "budgets must not repeat; given more than once: ['steps 5']"),
    (["--family", "ladder", "--sizes", "l1", "--tokens", "5000", "5e3"], "budgets must not repeat; given more than once: ['tokens 5000']"),
    (["--family", "ladder", "--sizes", "l1", "--steps", "5", "--seeds", "0", "1", "0"], "seeds must not repeat; given more than once: [0]"),
    (["--family", "ladder", "--sizes", "l1", "--steps", "5", "--lrs", "1e-3", "0.001"], "lrs must not repeat; given more than once: [0.001]"),
    (["--preset", "notebook-emergence", "--sizes", "micro", "tiny", "micro"], "--sizes: given more than once: ['micro']"),
])
def test_sweep_refuses_a_repeated_size_seed_rate_or_budget(args, message, tmp_path, capsys):
    """A repeated value would train the same model twice and write two identical rows, which a
    fit would count as two measurements: refused before anything is written."""
    assert main(["sweep", *args, "--no-save-weights", "--quiet", "--out", str(tmp_path / "s")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_lanes_flag_on_sweep_and_run(tmp_path, capsys, monkeypatch):
    """``--lanes 2`` spreads two models alone over two lanes (recorded in the plan and the rows);
    ``--lanes`` must be a positive integer, for ``jaxscale run`` too. ``--plan-for reruns``
    plans for later runs even with the cache off (recorded in the plan)."""
    import json

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    rc = main(["sweep", "--family", "ladder", "--sizes", "l1", "l2", "--mode", "sequential", "--steps", "4",
               "--batch-size", "2", "--eval-windows", "4", "--no-save-weights", "--quiet", "--lanes", "2",
               "--plan-for", "reruns", "--out", str(tmp_path / "s")])
    assert rc == 0
    assert sorted(r["stack"]["lane"] for r in read_rows(tmp_path / "s" / "results.jsonl")) == [0, 1]
    recorded = json.loads((tmp_path / "s" / "plan.json").read_text())
    assert recorded["profile"]["lanes"] == 2 and recorded["plan_for"] == "reruns" and recorded["reruns"] is True
    assert "2 lanes" in capsys.readouterr().out
    for command in (["sweep", "--family", "ladder"], ["run"]):
        with pytest.raises(SystemExit):
            main(command + ["--lanes", "0", "--out", str(tmp_path / "bad")])
        assert "--lanes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--family", "ladder", "--plan-for", "twice", "--out", str(tmp_path / "bad")])
    assert "--plan-for" in capsys.readouterr().err


@pytest.mark.parametrize("command, module", [
    (["run"], "jaxscale.study"),
    (["emergence", "--task", "addition", "--family", "ladder", "--seeds", "0", "1", "2"], "jaxscale.emergence_study")])
def test_plan_for_reaches_the_sweeps_of_run_and_emergence(command, module, tmp_path, monkeypatch):
    """``--plan-for`` on ``jaxscale run`` and ``jaxscale emergence`` is handed to their studies'
    sweeps (``run_study(..., plan_for=...)``; ``sweep.run_sweep`` takes it from there)."""
    import importlib

    seen = {}

    class Reached(Exception):
        pass

    def fake_run_study(*args, **kwargs):
        seen.update(kwargs)
        raise Reached

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(importlib.import_module(module), "run_study", fake_run_study)
    with pytest.raises(Reached):
        main(command + ["--plan-for", "once", "--out", str(tmp_path / "o")])
    assert seen["plan_for"] == "once"


def test_run_tokens_per_param_reaches_the_study_and_names_its_folder(tmp_path, monkeypatch, capsys):
    """``jaxscale run --tokens-per-param R`` trains the ladder at R tokens per parameter (the rest
    of the scale unchanged), in a new folder named for it, and never resumes the default run;
    R must be positive."""
    import dataclasses

    from jaxscale.study import SCALES

    seen = {}

    class Reached(Exception):
        pass

    def fake_run_study(cfg, out, **kwargs):
        seen.update(cfg=cfg, out=out)
        raise Reached

    import jaxscale.study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(jaxscale.study, "run_study", fake_run_study)
    (tmp_path / "runs" / "run-0-cpu").mkdir(parents=True)  # an unfinished default run, not to be resumed
    with pytest.raises(Reached):
        main(["run", "--tokens-per-param", "60"])
    assert seen["cfg"] == dataclasses.replace(SCALES["cpu"], tokens_per_param=60.0)
    assert seen["out"].name.endswith("-cpu-tpp60") and seen["out"].parent.name == "runs"
    with pytest.raises(Reached):
        main(["run"])
    assert seen["cfg"] == SCALES["cpu"] and seen["out"].name == "run-0-cpu"  # the default resumes it
    for bad in ("0", "-5", "nan"):
        with pytest.raises(SystemExit):
            main(["run", "--tokens-per-param", bad])
        assert "--tokens-per-param" in capsys.readouterr().err


def test_console_command_exits_quickly_without_losing_output_or_its_status(tmp_path):
    """``jaxscale`` (``cli.run``) ends the process with ``os._exit`` once ``main`` returns; what it
    printed to a pipe (block-buffered) and the files it wrote must all be there, and the exit
    status must be ``main``'s."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, JAXSCALE_COMPILATION_CACHE="off")
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is then block-buffered, as for most users
    cmd = [sys.executable, "-m", "jaxscale.cli", "train", "--model", "ladder/l1", "--steps", "3", "--batch-size", "2",
           "--eval-windows", "4", "--out", str(tmp_path), "--quiet", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert printed["test_loss"] == read_rows(tmp_path / "results.jsonl")[0]["test_loss"]
    bad = subprocess.run(cmd[:5] + ["micro", "--steps", "3", "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 2 and "ambiguous" in bad.stderr


def test_quick_exit_falls_back_to_a_normal_exit_while_other_threads_live(monkeypatch):
    """``os._exit`` would kill a thread still writing; with one alive the exit is the usual one."""
    import os
    import threading

    from jaxscale import cli

    calls = []
    monkeypatch.setattr(os, "_exit", lambda status: calls.append(status))
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as stop:
            cli._exit_quickly(3)
        assert stop.value.code == 3 and calls == []
    finally:
        release.set()
        worker.join()
    monkeypatch.setattr("atexit._run_exitfuncs", lambda: calls.append("handlers"))
    cli._exit_quickly(0)  # no other thread: exit handlers, then os._exit with the status
    assert calls == ["handlers", 0]


def _epilogs(parser, path=("jaxscale",)):
    """(command path, epilog) of ``parser`` and of every subcommand under it."""
    yield path, parser.epilog or ""
    for action in parser._actions:
        if isinstance(getattr(action, "choices", None), dict):
            for name, sub in action.choices.items():
                yield from _epilogs(sub, path + (name,))


def _example_lines(epilog: str) -> list[str]:
    """The shell lines of an epilog's examples, a line ending in a backslash joined to the next."""
    lines, pending = [], ""
    for raw in epilog.splitlines():
        text = raw.strip()
        # a flag after a run of spaces: a backslash-newline that the Python string swallowed
        assert not re.search(r"\S {3,}--?\w", text.split("#")[0]), f"a joined line continuation: {text!r}"
        if pending:
            text = pending + " " + text
        elif not text.startswith("jaxscale "):
            continue
        pending = text[:-1].rstrip() if text.endswith("\\") else ""
        if not pending:
            lines.append(text)
    assert not pending, f"an example ends in a line continuation: {pending!r}"
    return lines


def _words(line: str) -> list[str] | None:
    """A command line's words up to any redirect or pipe; None for a help line or a placeholder."""
    import shlex

    words = shlex.split(line, comments=True)
    for stop in (">", "|", "&&"):
        if stop in words:
            words = words[:words.index(stop)]
    if any("<" in w for w in words) or {"--help", "-h", "--version"} & set(words):
        return None
    return words


def _parses(parser, line: str, where: str) -> int:
    """1 when the command ``line`` parses with ``parser``, 0 when it is a help line or has a
    placeholder; fails the test, naming ``where`` it came from, when it does not parse."""
    words = _words(line)
    if words is None:
        return 0
    assert words[0] == "jaxscale", (where, line)
    try:
        parser.parse_args(words[1:])
    except SystemExit as exit_:
        pytest.fail(f"{where}: a command that does not parse (exit {exit_.code}): {line}")
    return 1


def test_every_help_example_parses():
    """Each example in every ``--help`` (the top level's and each subcommand's) is accepted by the
    real parser, so a renamed flag or a removed choice fails here; so does a line continuation
    that the epilog's Python string swallowed (``jaxscale emergence --help`` printed ``--sizes l1
    l2 l3 l5       --seeds …`` on one line, its backslash lost)."""
    parser = build_parser()
    checked = 0
    for path, epilog in _epilogs(parser):
        for line in _example_lines(epilog):
            checked += _parses(parser, line, f"`{' '.join(path)} --help`")
    assert checked >= 25, f"only {checked} examples found: is the epilog format still `  jaxscale …`?"


def test_readme_commands_parse():
    """Every ``jaxscale …`` command in the README's code blocks (what a reader copies) is
    accepted by the real parser, so that the README cannot keep a flag the CLI dropped."""
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("no README.md beside the tests")
    parser = build_parser()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", readme.read_text(), re.S | re.M)
    checked = 0
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("#") or "jaxscale " not in line:
                continue
            checked += _parses(parser, line[line.index("jaxscale "):], "README.md")
    assert checked >= 10, f"only {checked} commands found in the README's code blocks"


# ----- output folders of sweeps and studies: resumed, never overwritten ---------------------------
