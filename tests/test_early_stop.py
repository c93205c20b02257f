"""The notebook's early stop (``RunSettings.early_stop``): after epoch index ``after``, a model
whose mean training loss over an epoch is below the threshold stops there; each model of a stack
decides on its own losses, and the others train on to their budgets."""

import dataclasses
import io

from jaxscale.presets import make_preset
from jaxscale.sweep import run_sweep
from jaxscale.train import Budget


def test_each_model_of_a_stack_stops_on_its_own_epoch_loss(monkeypatch):
    monkeypatch.setenv("JAXSCALE_COMPILATION_CACHE", "off")
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
    assert "early stopping ends sooner" in log.getvalue()  # the plan's estimate says what it counts
