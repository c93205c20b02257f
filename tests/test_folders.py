"""Output folders: made on demand; a file where a folder should be is a clean error that names the
argument, raised before anything is trained, and it leaves the file as it was."""

import pytest

from jaxscale.cli import main
from jaxscale.folders import output_folder


def test_output_folder_makes_nested_folders_and_accepts_an_existing_one(tmp_path):
    made = output_folder(tmp_path / "a" / "b", "--out")
    assert made.is_dir() and made == tmp_path / "a" / "b"
    (made / "keep.txt").write_text("x")
    assert output_folder(str(made), "--out") == made and (made / "keep.txt").read_text() == "x"


@pytest.mark.parametrize("sub", ["", "deeper/still"])
def test_output_folder_refuses_a_file_at_or_on_the_way_to_the_path(tmp_path, sub):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    target = blocker / sub if sub else blocker
    with pytest.raises(ValueError, match=r"^--plot: '.*results' is a file, not a folder") as err:
        output_folder(target, "--plot")
    assert ("on the way to" in str(err.value)) == bool(sub)
    assert blocker.read_text() == "not a folder"


def test_output_folder_reports_what_the_system_refused(tmp_path, monkeypatch):
    from pathlib import Path

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ValueError, match=r"^out: cannot create the folder '.*new': Permission denied$"):
        output_folder(tmp_path / "new", "out")


def _score_table(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("model,params,score\na,1e6,0.1\nb,1e7,0.2\nc,1e8,0.7\nd,1e9,0.9\n")
    return str(path)


def _power_law_csv(tmp_path):
    path = tmp_path / "runs.csv"
    sizes = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8]
    path.write_text("params,loss\n" + "".join(f"{n:g},{2.0 + 400 * n ** -0.3:.6f}\n" for n in sizes))
    return str(path)


# each command given a file where it writes a folder; all must fail before any training
COMMANDS = {
    "fit power-law": lambda f, t: ["fit", "power-law", _power_law_csv(t), "--bootstrap", "0", "--plot", f],
    "fit chinchilla": lambda f, t: ["fit", "chinchilla", _power_law_csv(t), "--plot", f],
    "sweep": lambda f, t: ["sweep", "--family", "ladder", "--sizes", "l1", "--steps", "5", "--out", f],
    "train": lambda f, t: ["train", "--model", "ladder/l1", "--steps", "5", "--out", f],
    "run": lambda f, t: ["run", "--out", f, "--quiet"],
    "emergence": lambda f, t: ["emergence", "--task", "induction", "--family", "depth", "--seeds", "0", "1", "2",
                               "--epochs", "1", "--out", f],
    "emergence analyze": lambda f, t: ["emergence", "analyze", _score_table(t), "--plot", f],
    "bench": lambda f, t: ["bench", "--preset", "notebook-emergence", "--sizes", "micro", "--modes", "sequential",
                           "--repeats", "1", "--no-end-to-end", "--profile", f],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_file_given_as_an_output_folder_is_a_clean_error(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "taken"
    blocker.write_text("a user's file")
    argv = COMMANDS[command](str(blocker), tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    flag = {"emergence analyze": "--plot", "fit power-law": "--plot", "fit chinchilla": "--plot",
            "bench": "--profile"}.get(command, "--out")
    assert f"error: {flag}: '{blocker}' is a file, not a folder" in err, err
    assert "Traceback" not in err
    assert blocker.read_text() == "a user's file"
    assert not (tmp_path / "runs").exists()  # nothing was started elsewhere instead


def test_a_system_error_while_running_is_reported_without_a_traceback(capsys, monkeypatch):
    """The backstop: an OSError that a command does not turn into a ValueError (a full disk while
    writing, say) ends it with status 1 and one line, not a traceback; a closed pipe stays quiet."""
    import jaxscale.commands.families as families

    def full_disk(args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(families, "run", full_disk)  # read when main builds its parser
    assert main(["families"]) == 1
    assert capsys.readouterr().err.strip() == "jaxscale families: error: [Errno 28] No space left on device"

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(families, "run", closed_pipe)
    assert main(["families"]) == 0
    assert capsys.readouterr().err == ""


def test_out_of_device_memory_is_one_line_other_runtime_errors_keep_their_traceback(monkeypatch, capsys):
    """A batch too big for the device ends the command with one line saying what to lower
    (`jaxscale train --batch-size 100000` printed jax's traceback); any other RuntimeError is a
    bug and keeps its traceback."""
    import jaxscale.commands.families as families

    def oom(args):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 32896462888 bytes.\nmore detail")

    monkeypatch.setattr(families, "run", oom)
    assert main(["families"]) == 1
    assert capsys.readouterr().err.strip() == (
        "jaxscale families: error: the device ran out of memory (RESOURCE_EXHAUSTED: Out of memory allocating "
        "32896462888 bytes.); train with a smaller --batch-size or --seq-len, or smaller models (rows already "
        "written are kept)")

    def bug(args):
        raise RuntimeError("something else")

    monkeypatch.setattr(families, "run", bug)
    with pytest.raises(RuntimeError, match="something else"):
        main(["families"])


def test_the_python_api_refuses_a_file_as_its_output_folder_before_training(tmp_path):
    """``run_sweep(out=…)``: the same check, naming the ``out`` argument; no model is trained."""
    from jaxscale.config import create_model_config
    from jaxscale.data.corpus import load_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.runner import ModelSpec, RunSettings
    from jaxscale.sweep import run_sweep
    from jaxscale.train import Budget, OptimConfig

    blocker = tmp_path / "taken"
    blocker.write_text("a user's file")
    data = from_corpus(load_corpus(), seq_len=16, batch_size=2, eval_max_windows=4)
    spec = ModelSpec(create_model_config("ladder/l1"), seed=0, optim=OptimConfig(), budget=Budget("steps", 5))
    lines = []
    log = type("Log", (), {"write": lambda self, s: lines.append(s), "flush": lambda self: None})()
    with pytest.raises(ValueError, match=r"^out: '.*taken' is a file, not a folder"):
        run_sweep([spec], data, RunSettings(batch_size=2, seq_len=16, eval_windows=4, progress=False),
                  mode="sequential", out=blocker, save_weights=False, log=log)
    assert blocker.read_text() == "a user's file"
    assert not any("done" in s for s in lines)  # the plan was printed, no group trained


def test_check_output_folder_checks_as_output_folder_does_and_makes_nothing(tmp_path, monkeypatch):
    """The check-only half of ``output_folder``: the same refusals, no folder made."""
    import os

    from jaxscale.folders import check_output_folder

    target = tmp_path / "a" / "b"
    assert check_output_folder(str(target), "--plot") == target
    assert not (tmp_path / "a").exists()
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=r"^--plot: '.*results' is a file, not a folder \(on the way to"):
        check_output_folder(blocker / "figs", "--plot")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"^--plot: '.*dangling' is a link to nothing, not a folder"):
        check_output_folder(tmp_path / "dangling" / "figs", "--plot")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: os.fspath(p) != str(locked) and real_access(p, mode, **k))
    with pytest.raises(ValueError, match=r"^--plot: cannot create the folder '.*locked/x/y': '.*locked' is not writable$"):
        check_output_folder(locked / "x" / "y", "--plot")
    with pytest.raises(ValueError, match=r"^--plot: the folder '.*locked' is not writable$"):
        check_output_folder(locked, "--plot")
    assert list(locked.iterdir()) == [] and blocker.read_text() == "not a folder"


# each command given an input it refuses before writing anything into its --plot/--profile folder
FAILING_EARLY = {
    "fit power-law": lambda f, t: ["fit", "power-law", str(t / "missing.csv"), "--bootstrap", "0", "--plot", f],
    "fit chinchilla": lambda f, t: ["fit", "chinchilla", str(t / "missing.csv"), "--plot", f],
    "emergence analyze": lambda f, t: ["emergence", "analyze", str(t / "missing.csv"), "--plot", f],
    "bench": lambda f, t: ["bench", "--family", "ladder", "--sizes", "no-such-size", "--modes", "sequential",
                           "--repeats", "1", "--profile", f],
}


@pytest.mark.parametrize("command", sorted(FAILING_EARLY))
def test_a_command_that_fails_on_its_inputs_leaves_no_plot_or_profile_folder(command, tmp_path, capsys, monkeypatch):
    """The folder was made when its path was checked, before the inputs: ``fit power-law
    missing.csv --plot figs`` failed on the CSV and left an empty ``figs/`` (``--plot`` of
    emergence analyze, ``--profile`` of bench alike)."""
    import os

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # bench --profile adds to it
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "figs" / "deeper"
    assert main(FAILING_EARLY[command](str(folder), tmp_path)) == 2
    err = capsys.readouterr().err
    assert ("missing.csv" in err) if command != "bench" else ("--sizes: unknown sizes ['no-such-size']" in err), err
    assert not (tmp_path / "figs").exists()


@pytest.mark.parametrize("command", ["fit power-law", "emergence analyze"])
def test_a_plot_folder_that_cannot_be_made_is_refused_before_the_inputs_are_read(command, tmp_path, capsys,
                                                                                 monkeypatch):
    """Checked by making it, as root (or with the folder's owner's rights) an unwritable parent
    was not noticed until a figure was written; the check asks the parent itself."""
    import os

    import jaxscale.fit.emergence.table as table
    import jaxscale.fit.sources as sources

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: os.fspath(p) != str(locked) and real_access(p, mode, **k))
    read = []
    monkeypatch.setattr(sources, "load_source", lambda *a, **k: read.append(a) or 1 / 0)
    monkeypatch.setattr(table, "read_score_table", lambda *a, **k: read.append(a) or 1 / 0)
    src = _power_law_csv(tmp_path) if command.startswith("fit") else _score_table(tmp_path)
    assert main([*command.split(), src, "--plot", str(locked / "figs")]) == 2
    assert f"error: --plot: cannot create the folder '{locked / 'figs'}': '{locked}' is not writable" in \
        capsys.readouterr().err
    assert not read and not (locked / "figs").exists()
