"""``jaxscale run``, the main job: a signal stops it with a checkpoint, ``--fresh`` never resumes,
and a ladder budget below one step is refused (each found by a reviewer)."""

import dataclasses
import json

import pytest

from jaxscale.cli import main
from jaxscale.study import SCALES


def test_run_passes_its_signal_flag_to_the_study(tmp_path, monkeypatch, capsys):
    """``graceful_stop`` caught SIGINT/SIGTERM, but its flag never reached the study, so the run
    trained and fitted everything after a Ctrl-C; now the study stops (``Interrupted``) and the
    command exits 130 with the resume hint."""
    import jaxscale.study
    from jaxscale.runner import Interrupted
    from jaxscale.signals import StopRequest

    seen = {}

    def fake_study(cfg, out, **kw):
        seen.update(kw)
        raise Interrupted(7, str(out / "ladder" / "checkpoints"))

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(jaxscale.study, "run_study", fake_study)
    assert main(["run", "--scale", "smoke", "--quiet", "--out", str(tmp_path / "r")]) == 130
    assert isinstance(seen.get("should_stop"), StopRequest)
    assert "interrupted at step 7" in capsys.readouterr().err


def test_a_study_asked_to_stop_checkpoints_and_raises(tmp_path):
    """``run_study(should_stop=...)`` reaches the sweep: the first group checkpoints at its first
    boundary and the study raises ``Interrupted`` before fitting anything."""
    from jaxscale.runner import Interrupted
    from jaxscale.study import run_study

    out = tmp_path / "r"
    with pytest.raises(Interrupted) as info:
        run_study(SCALES["smoke"], out, progress=False, log=open("/dev/null", "w"), should_stop=lambda: True)
    assert info.value.checkpoint is not None and "ladder" in info.value.checkpoint
    assert not (out / "fits.json").exists()
    assert any((out / "ladder" / "checkpoints").rglob("LATEST"))


def test_fresh_with_an_out_that_holds_a_run_is_refused(tmp_path, monkeypatch, capsys):
    """``--fresh --out DIR`` resumed the run in DIR, against --fresh's help ("start a new run")."""
    import jaxscale.study

    seen = []
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(jaxscale.study, "run_study", lambda cfg, out, **kw: seen.append(out) or 1 / 0)
    started = tmp_path / "started"
    (started / "ladder").mkdir(parents=True)
    record = {"command": {"study": dataclasses.asdict(SCALES["smoke"])}}
    (started / "ladder" / "sweep.json").write_text(json.dumps(record))
    assert main(["run", "--scale", "smoke", "--fresh", "--out", str(started)]) == 2
    assert f"--fresh starts a new run, but --out {started} holds one of this study" in capsys.readouterr().err
    assert not seen
    with pytest.raises(ZeroDivisionError):  # a new folder with --fresh is a new run
        main(["run", "--scale", "smoke", "--fresh", "--out", str(tmp_path / "new")])
    assert seen == [tmp_path / "new"]


def test_a_ladder_budget_below_one_step_is_refused_before_a_folder_is_made(tmp_path, capsys):
    """``--tokens-per-param 0.01`` trained every size one step (0.012-0.04 tokens per parameter)
    while the report named 0.01; ``sweep`` and ``train`` refuse such budgets."""
    out = tmp_path / "r"
    assert main(["run", "--scale", "smoke", "--tokens-per-param", "0.01", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--tokens-per-param: 0.01 x" in err and "less than one step" in err
    assert not out.exists()
