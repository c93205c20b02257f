"""The per-program choice of CPU code generation (compile_mode.py): the rule, and that the fast
compile trains the same numbers."""

import numpy as np
import pytest

from jaxscale.compile_mode import COMPILE_SAVING, STEP_PENALTY, choose_fast
from jaxscale.config import create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, OptimConfig


def test_rule_weighs_compile_saving_against_step_penalty():
    compile_s = 6.0
    break_even = COMPILE_SAVING * compile_s / STEP_PENALTY
    assert choose_fast("auto", "cpu", compile_s, 0.5 * break_even)
    assert not choose_fast("auto", "cpu", compile_s, 2.0 * break_even)
    assert choose_fast("fast", "cpu", compile_s, 1e6) and not choose_fast("full", "cpu", compile_s, 0.0)
    assert not choose_fast("auto", "gpu", compile_s, 0.0) and not choose_fast("fast", "tpu", compile_s, 0.0)
    with pytest.raises(ValueError, match="compile mode"):
        choose_fast("quick", "cpu", compile_s, 1.0)
    with pytest.raises(ValueError, match="RunSettings.compile_mode"):
        RunSettings(compile_mode="quick")


def test_fast_and_full_compile_train_the_same_numbers():
    corpus = load_corpus()
    specs = [ModelSpec(create_model_config(f"ladder/{n}"), 0, OptimConfig(lr=3e-3), Budget("steps", 30))
             for n in ("l1", "l2")]
    rows = {}
    for mode in ("fast", "full"):
        settings = RunSettings(batch_size=8, eval_windows=16, progress=False, compile_mode=mode)
        rows[mode] = train_group(specs, corpus, settings, mode="stack").rows
    for fast, full in zip(rows["fast"], rows["full"]):
        assert fast["stack"]["fast_compile"] is True and full["stack"]["fast_compile"] is False
        a = np.array([p["train_loss"] for p in fast["curve"]])
        b = np.array([p["train_loss"] for p in full["curve"]])
        np.testing.assert_allclose(a, b, rtol=1e-5)
        assert fast["test_loss"] == pytest.approx(full["test_loss"], rel=1e-5)
