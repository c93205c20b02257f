"""Emergence studies end to end: train-and-analyse writes the documented files and fields,
``--eval-only`` reproduces the metrics from saved weights, bad input names the argument, and
(slow) ``experiments/emergence.py --quick`` produces its report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jaxscale.cli import main
from jaxscale.emergence_study import (
    StudySpec, build_task, parse_knobs, records_from_outputs, study_family, task_configs,
)
from jaxscale.fit.emergence import VERDICTS, emergence_verdict
from jaxscale.results import missing_fields, read_rows

ROOT = Path(__file__).resolve().parents[1]

# A smoke-sized study: 1-digit addition (rows of 6 tokens), 4 tiny sizes × 3 seeds, one stack.
SMOKE = ["emergence", "--task", "addition", "--task-arg", "n_digits=1", "--task-arg",
         "n_test=40", "--family", "depth", "--sizes", "w16-l1", "w32-l1", "w16-l2", "w32-l2",
         "--seeds", "0", "1", "2", "--steps", "30", "--batch-size", "16", "--mode", "stack",
         "--n-boot", "50"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "add"
    assert main(SMOKE + ["--out", str(out)]) == 0
    return out


def test_study_writes_documented_files_and_fields(study):
    for name in ("study.json", "results.jsonl", "plan.json", "analysis.json", "summary.md",
                 "figures/metrics_vs_size.png", "figures/em_vs_loss.png", "figures/forecast.png"):
        assert (study / name).is_file(), name
    rows = read_rows(study / "results.jsonl")
    assert len(rows) == 12 and {r["seed"] for r in rows} == {0, 1, 2}
    assert {r["mode"] for r in rows} == {"stack"}
    for row in rows:
        assert missing_fields(row) == []
        assert (study / row["outputs"]).is_file()
        m = row["metrics"]
        assert m["n"] == 40 and m["answer_len"] == 2
        assert 0 <= m["exact_match_lo"] <= m["exact_match"] <= m["exact_match_hi"] <= 1
        assert m["answer_log_likelihood"] < 0 and m["tolerance_match"] is not None
        assert row["config"]["vocab_size"] == 14 and row["config"]["max_seq_len"] == 5
    a = json.loads((study / "analysis.json").read_text())
    assert a["n_sizes"] == 4 and a["n_models"] == 12 and a["test_items"] == 40
    sizes = a["sizes"]
    assert [e["scale"] for e in sizes] == sorted(e["scale"] for e in sizes)
    for e in sizes:
        assert e["seeds"] == 3
        for key in ("exact_match", "token_accuracy", "tolerance_match", "answer_nll_per_token",
                    "edit_distance", "answer_probability", "predicted_exact_match"):
            assert e[key]["lo"] <= e[key]["mean"] + 1e-12 <= e[key]["hi"] + 2e-12, key
    assert set(a["series"]) == {"exact_match", "token_accuracy", "tolerance_match"}
    assert a["series"]["exact_match"]["logistic"] is not None
    v = a["verdict"]
    assert v["label"] in VERDICTS and set(v["label_share"]) == set(VERDICTS)
    assert v["n_boot"] == 50 and sum(v["label_share"].values()) == pytest.approx(1.0)
    assert v["agreement"] == v["label_share"][v["label"]] and isinstance(v["settled"], bool)
    assert all(0 < sp["above"] < sp["seeds"] == 3 and sp["name"] for sp in v["seed_splits"])
    assert a["backtest"]["n_holdout"] == 1 and "forecast_error_decades" in a["backtest"]
    assert "only 40 test items" in " ".join(a["notes"])
    summary = (study / "summary.md").read_text()
    for text in ("## Metrics by size", "exact match", "answer NLL / token", "## Verdict",
                 "backtest", "figures/metrics_vs_size.png", a["models"][0]["name"].split("/")[0]):
        assert text in summary, text


def test_eval_only_reproduces_the_metrics_from_weights(study, capsys):
    before = {r["run_id"]: r["metrics"] for r in read_rows(study / "results.jsonl")}
    first = json.loads((study / "analysis.json").read_text())
    for p in (study / "outputs").iterdir():
        p.unlink()  # eval-only must rebuild them from the weights
    assert main(["emergence", "--eval-only", str(study), "--no-figures"]) == 0
    assert "eval-only" in capsys.readouterr().out
    again = json.loads((study / "analysis.json").read_text())
    assert again["recomputed_from_weights"] is True
    assert len(again["models"]) == len(before)
    for model in again["models"]:
        old, new = before[model["run_id"]], model["metrics"]
        assert new["exact_match_successes"] == old["exact_match_successes"]
        assert new["token_accuracy_successes"] == old["token_accuracy_successes"]
        assert new["answer_log_likelihood"] == pytest.approx(old["answer_log_likelihood"],
                                                             rel=1e-5, abs=1e-6)
    for e0, e1 in zip(first["sizes"], again["sizes"]):
        assert e1["exact_match"]["mean"] == e0["exact_match"]["mean"]
    assert again["series"]["exact_match"]["logistic"]["floor_fitted"] is False
    # --fit-floor re-analyses with the lower plateau fitted (at or above chance, below the ceiling)
    assert main(["emergence", "--eval-only", str(study), "--no-figures", "--fit-floor"]) == 0
    floored = json.loads((study / "analysis.json").read_text())["series"]["exact_match"]["logistic"]
    assert floored["floor_fitted"] is True and 0.0 <= floored["floor"] < 1.0
    assert "(fitted)" in (study / "summary.md").read_text()
    # the saved outputs alone give the same metrics again (no model needed)
    rows = records_from_outputs(read_rows(study / "results.jsonl"), study)
    assert [r["metrics"]["exact_match"] for r in rows] == [before[r["run_id"]]["exact_match"]
                                                          for r in rows]


@pytest.mark.parametrize("argv,name", [
    (["--task", "nope", "--family", "depth", "--out", "X"], "task"),
    (["--task", "addition", "--family", "nope", "--out", "X"], "family"),
    (["--task", "addition", "--family", "depth", "--seeds", "0", "1", "--out", "X"], "seeds"),
    (["--task", "addition", "--family", "depth", "--out", "X", "--task-arg", "digits=2"],
     "task-arg"),
    (["--task", "addition", "--family", "depth", "--out", "X", "--context", "4"], "context"),
    (["--task", "addition", "--family", "depth", "--sizes", "w99", "--out", "X"], "sizes"),
    (["--task", "addition", "--family", "depth"], "--out"),
])
def test_bad_train_arguments_exit_2_naming_the_argument(tmp_path, capsys, argv, name):
    argv = [a if a != "X" else str(tmp_path / "o") for a in argv]
    assert main(["emergence", *argv]) == 2
    err = capsys.readouterr().err
    assert "error" in err and name in err
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_eval_only_needs_a_study_folder(tmp_path, capsys):
    assert main(["emergence", "--eval-only", str(tmp_path)]) == 2
    assert "not a study folder" in capsys.readouterr().err


def test_api_errors_name_the_argument():
    task = build_task("addition", 0, {"n_digits": 2, "n_train": 100, "n_test": 10})
    cfgs = study_family("depth", ["w32-l2", "w16-l1"])
    fitted = task_configs(task, cfgs)
    assert [c.max_seq_len for c in fitted] == [task.seq_len - 1] * 2
    assert [c.vocab_size for c in fitted] == [14, 14]
    assert [(c.d_model, c.n_layers, c.head_dim) for c in fitted] == [(32, 2, 16), (16, 1, 16)]
    assert len(study_family("ladder")) > 1  # the named families of jaxscale.config work too
    with pytest.raises(ValueError, match=r"sizes: given more than once: \['w16-l1'\]"):
        study_family("depth", ["w16-l1", "w32-l2", "w16-l1"])
    with pytest.raises(ValueError, match="context"):
        task_configs(task, cfgs, context=task.seq_len - 2)
    with pytest.raises(ValueError, match="vocab_size"):
        task_configs(task, [cfgs[0].replace(vocab_size=10)], adapt_vocab=False)
    with pytest.raises(ValueError, match="seeds"):
        StudySpec(task="addition", family="ladder", seeds=(0, 0, 1))
    with pytest.raises(ValueError, match="threshold"):
        StudySpec(task="addition", family="ladder", seeds=(0, 1, 2), threshold=1.0)
    with pytest.raises(ValueError, match=r"sizes: an emergence study compares sizes and needs at least 2, got \['l1'\]"):
        StudySpec(task="addition", family="ladder", seeds=(0, 1, 2), sizes=("l1",))
    assert parse_knobs(["n_digits=3", "reverse=true", "name=x"]) == {
        "n_digits": 3, "reverse": True, "name": "x"}
    with pytest.raises(ValueError, match="task-arg"):
        parse_knobs(["n_digits"])


@pytest.mark.slow
def test_experiment_quick_writes_report_and_figures(tmp_path):
    out = tmp_path / "exp"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "emergence.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for text in ("fingerprint", "jax", "Device", "midpoint", "backtest", "exact match",
                 "per-token accuracy", "answer NLL", "Verdict"):
        assert text in report, text
    assert (out / "notebook_emergence_2x2.png").is_file()
    assert (out / "notebook" / "results.jsonl").is_file()
    summary = json.loads((out / "experiment.json").read_text())
    transition = summary["transition"]
    assert transition["n_sizes"] >= 4 and transition["seeds"] >= 3
    assert len(transition["midpoint_ci"]) == 2 and set(transition["fits"]) == {"logistic", "gompertz"}
    if transition["fit"] is None:  # AICs within 2: no preferred shape, both midpoints reported
        assert transition["delta_aic"] < 2 and "logistic ≈ Gompertz" in report
    else:
        assert transition["fit"] in ("logistic", "gompertz") and transition["delta_aic"] >= 2
    assert isinstance(transition["identified"], bool)
    study = Path(transition["folder"])
    assert (study / "figures" / "metrics_vs_size.png").is_file()
    assert len(read_rows(study / "results.jsonl")) == transition["n_sizes"] * transition["seeds"]


def test_example_sampler_shuffles_whole_epochs():
    """Every epoch visits each item once, in the permutation rng.permutation(rng.fold(key, epoch)), including
    batches that cross an epoch boundary (the engine permutes only the epochs a batch touches)."""
    import jax
    import jax.numpy as jnp

    from jaxscale.data.source import ExampleSampler
    from jaxscale.rng import fold, permutation

    n, b = 37, 16
    arrays = {"rows": jnp.arange(n * 5, dtype=jnp.int32).reshape(n, 5), "weights": jnp.ones((n, 4))}
    key = jax.random.PRNGKey(7)
    seen = []
    for step in range(9):  # several batches cross an epoch boundary
        inputs, _, _ = ExampleSampler(b, n, True)(arrays, key, step)
        seen.extend(int(r) // 5 for r in inputs[:, 0])
    for e in range(len(seen) // n):
        expected = permutation(fold(key, e), n)
        assert seen[e * n:(e + 1) * n] == [int(v) for v in expected], e


def test_verdict_text_explains_no_transition():
    """A series on its floor reads "no transition" with its rise in standard errors, not a
    sharpness label (the smoke run's exact match 0.008-0.018 at four sizes read "smooth")."""
    import numpy as np

    from jaxscale.emergence_report import verdict_text, verdict_word
    scale = np.repeat([3902.0, 13934.0, 26638.0, 102414.0], 3)
    s = np.array([0, 1, 4, 3, 6, 2, 0, 4, 0, 2, 4, 3], float)
    n = np.full(s.size, 200.0)
    nll = np.array([2.30, 2.29, 2.26, 2.02, 2.02, 2.02, 2.04, 2.03, 2.03, 1.76, 1.77, 1.79])
    v = {**emergence_verdict(scale, s / n, nll, successes=s, trials=n, n_boot=200).as_dict(),
         "continuous_metric": "answer NLL per token", "seed_splits": []}
    text = verdict_text(v)
    assert text.startswith("**no transition** (exact match never rises clearly above its level")
    assert "+0.01, is 1.2 standard errors, and a clear rise takes 3" in text and "Settled" in text
    assert verdict_word(v).startswith("no transition (holds in")
    falling = {**v, "em_rise": -0.02, "em_rise_z": None}  # as analysis.json stores -inf
    assert "exact match is nowhere above its level at the first size" in verdict_text(falling)


def test_size_table_intervals_stay_inside_each_metrics_range():
    import numpy as np

    from jaxscale.emergence_report import CONTINUOUS, METRIC_RANGE, size_table
    assert set(METRIC_RANGE) == set(CONTINUOUS)
    # two seeds far apart: a t interval (t = 12.7 at one degree of freedom) crosses every bound
    pts = {"scale": np.array([1e5, 1e5]), "name": ["m", "m"],
           "answer_nll_per_token": np.array([0.05, 1.2]), "answer_log_likelihood": np.array([-0.1, -2.4]),
           "answer_probability": np.array([0.05, 0.95]), "brier": np.array([0.1, 1.9]),
           "edit_distance": np.array([0.0, 0.9]), "predicted_exact_match": np.array([0.02, 0.98])}
    (entry,) = size_table(pts, n_boot=0)
    for key, (lo_bound, hi_bound) in METRIC_RANGE.items():
        e = entry[key]
        assert lo_bound <= e["lo"] <= e["mean"] <= e["hi"] <= hi_bound, (key, e)
    assert entry["answer_nll_per_token"]["lo"] == 0.0  # clipped, not negative


TINY = ["emergence", "--task", "addition", "--family", "depth", "--sizes", "w16-l1", "w16-l2", "--steps", "3"]


@pytest.mark.parametrize("argv,option", [
    (["--seeds", "-1", "0", "1"], "--seeds"),
    (["--task-seed", "-1"], "--task-seed"),
    (["--n-boot", "-1"], "--n-boot"),
    (["--weight-decay", "-1"], "--weight-decay"),
])
def test_bad_numbers_are_refused_by_the_parser_naming_the_option(tmp_path, capsys, argv, option):
    """A negative seed failed in numpy after study.json was written; --n-boot -1 blamed
    batch_size too; --weight-decay -1 named OptimConfig's field after --out was made."""
    with pytest.raises(SystemExit) as info:
        main([*TINY, *argv, "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    assert f"argument {option}: expected" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,message", [
    (["--task-arg", "n_digits=2", "--task-arg", "n_digits=3"], "task-arg: knob 'n_digits' given more than once"),
    (["--task-arg", "digits=2"], "task-arg: task 'addition' has no knob 'digits'"),
])
def test_a_refused_study_makes_no_out_folder(tmp_path, capsys, argv, message):
    """The CLI made --out before the task was built: a refused knob left an empty folder (and a
    repeated one was taken, the last winning)."""
    assert main([*TINY, *argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_study_into_another_commands_sweep_folder_is_refused_before_study_json(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text('{"command": {"family": "ladder"}}')
    assert main([*TINY, "--out", str(tmp_path)]) == 2
    assert f"--out: {tmp_path} holds another command's output (sweep.json)" in capsys.readouterr().err
    assert not (tmp_path / "study.json").exists()


def test_study_spec_names_only_the_field_that_is_wrong():
    with pytest.raises(ValueError, match=r"^n_boot must be >= 0, got -1$"):
        StudySpec(task="addition", family="depth", seeds=(0, 1, 2), n_boot=-1)
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1, got 0$"):
        StudySpec(task="addition", family="depth", seeds=(0, 1, 2), batch_size=0)
    with pytest.raises(ValueError, match=r"^seeds: a seed is an integer from 0 to 2147483647, got -1$"):
        StudySpec(task="addition", family="depth", seeds=(-1, 0, 1))
    with pytest.raises(ValueError, match=r"^task-arg: knob 'n_digits' given more than once$"):
        parse_knobs(["n_digits=2", " n_digits =3"])


GOOD_STUDY = {"task": "addition", "family": "depth", "seeds": [0, 1, 2], "sizes": ["w16-l1", "w16-l2"],
              "budget": {"kind": "steps", "value": 3}}


@pytest.mark.parametrize("text,message", [
    ("[]", "study.json is not a study record (expected a JSON object): got []"),
    ("{bad", "study.json is not a study record (expected a JSON object): Expecting property name"),
    (json.dumps({**GOOD_STUDY, "seeds": None}), "study.json: field 'seeds' must be a list of integers, got null"),
    (json.dumps({**GOOD_STUDY, "budget": {"kind": "steps", "value": "3"}}), "study.json: field 'budget' must be"),
    (json.dumps({k: v for k, v in GOOD_STUDY.items() if k != "task"}), "study.json: missing field 'task'"),
    (json.dumps({**GOOD_STUDY, "seeds": [0, 1]}), "study.json: seeds: intervals over seeds need at least 3"),
    (json.dumps({**GOOD_STUDY, "data": 5}), "study.json: field 'data' must be an object, got 5"),
])
def test_eval_only_refuses_a_bad_study_json_naming_it(tmp_path, capsys, text, message):
    """``[]`` ended in an AttributeError traceback, ``"seeds": null`` in a TypeError, invalid
    JSON in json's message without the file's name."""
    (tmp_path / "study.json").write_text(text)
    (tmp_path / "results.jsonl").write_text("")
    assert main(["emergence", "--eval-only", str(tmp_path), "--no-figures"]) == 2
    assert message in capsys.readouterr().err
