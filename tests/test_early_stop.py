"""The notebook's early stop (``RunSettings.early_stop``): after epoch index ``after``, a model
whose mean training loss over an epoch is below the threshold stops there; each model of a stack
decides on its own losses, and the others train on to their budgets."""

import dataclasses
import io

import pytest

from jaxscale.presets import make_preset
from jaxscale.early_stop import earliest_stop
from jaxscale.sweep import run_sweep
from jaxscale.train import Budget


def test_each_model_of_a_stack_stops_on_its_own_epoch_loss(monkeypatch):
    import jaxscale.sweep_plan as sweep_plan

    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
    monkeypatch.setattr(sweep_plan, "programs_kept", lambda: False)  # as with the CLI's cache off
    preset = make_preset("notebook-emergence")
    epoch = preset.data.steps_per_epoch
    micro = preset.specs[0]
    learner = dataclasses.replace(micro, budget=Budget("steps", 4 * epoch))
    # a learning rate too small to move: its loss stays at ln(100) ≈ 4.6, never below the threshold
    frozen = dataclasses.replace(learner, seed=1, optim=dataclasses.replace(micro.optim, lr=1e-12))
    settings = dataclasses.replace(preset.settings, early_stop=(0, 4.3), progress=False)
    log = io.StringIO()
    rows = run_sweep([learner, frozen], preset.data, settings, mode="stack", log=log).rows
    # epoch index 0 may not stop a model; the learner's mean loss over epoch 1 is below 4.3
    assert rows[0]["steps"] == 2 * epoch, rows[0]["steps"]
    assert rows[1]["steps"] == 4 * epoch, rows[1]["steps"]
    # the earliest stop the planner plans for when no cache keeps the programs is the rule's own
    assert earliest_stop(4 * epoch, settings.early_stop, epoch) == rows[0]["steps"]
    assert earliest_stop(epoch, settings.early_stop, epoch) == epoch  # a budget spent sooner
    with pytest.raises(ValueError, match="epoch_steps"):
        earliest_stop(epoch, settings.early_stop, 0)
    # the plan's estimate says what it counts: with no cache (as here), each run's earliest stop
    assert f"if early stopping ends every run at its earliest, step {2 * epoch}" in log.getvalue(), log.getvalue()


def test_a_sweep_that_can_stop_early_is_planned_at_its_earliest_stop():
    """Every run, and with a cache every later run that loads its programs, is planned at its
    earliest stop: a later run stops at the same steps, and planned at full budgets (2.5x the
    steps the preset trains) a shared program's padding looked 2.5x dearer than it is, so the
    preset trained on four programs where two pay (``sweep_plan.planning_steps``)."""
    import jaxscale.sweep_plan as sweep_plan

    preset = make_preset("notebook-emergence")
    budgets = [s.budget.steps(s.cfg, 1, preset.data.seq_len) for s in preset.specs]
    earliest = sweep_plan.planning_steps(budgets, preset.settings, preset.data)
    assert earliest == [7 * preset.data.steps_per_epoch] * 5 and earliest[0] < budgets[0]
    no_rule = dataclasses.replace(preset.settings, early_stop=None)
    assert sweep_plan.planning_steps(budgets, no_rule, preset.data) == budgets
    assert sweep_plan.horizon_note(budgets, budgets, no_rule) == ""
    assert "its earliest, step 2100" in sweep_plan.horizon_note(budgets, earliest, preset.settings)
    assert sweep_plan.horizon_note(budgets, earliest, preset.settings).endswith("no cache keeps the programs, so the "
                                                                               "plan is for this run alone")
    assert sweep_plan.horizon_note(budgets, earliest, preset.settings, reruns=True).endswith(
        "where a later run, which loads its programs, stops too")
    assert sweep_plan.horizon_note(budgets, earliest, preset.settings, "once").endswith(
        "planned for this run alone (plan for: once)")
