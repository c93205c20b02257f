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


def test_run_few_times_programs_skip_llvm_optimisation_only_when_their_work_is_small():
    import jax

    from jaxscale.compile_mode import UNOPTIMISED_MAX_FLOPS, run_few_times_options, unoptimised_pays

    assert unoptimised_pays(0.0) and unoptimised_pays(UNOPTIMISED_MAX_FLOPS)
    assert not unoptimised_pays(None) and not unoptimised_pays(2 * UNOPTIMISED_MAX_FLOPS)
    if jax.default_backend() != "cpu":
        assert run_few_times_options(0.0) is None
        return
    small, unknown, big = (run_few_times_options(f) for f in (1e6, None, 1e12))
    assert small["xla_backend_optimization_level"] == 0
    assert "xla_backend_optimization_level" not in unknown and "xla_backend_optimization_level" not in big
    assert small["xla_cpu_use_fusion_emitters"] is False and unknown == big


def test_unoptimised_held_out_evaluation_scores_like_the_optimised_one():
    import jax.numpy as jnp

    from jaxscale.model import init_params
    from jaxscale.train import make_eval

    cfg = create_model_config("notebook-emergence/tiny", dropout=0.0)
    params = init_params(cfg, 3)
    rows = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(70, 9)).astype(np.int32)
    weights = np.ones((70, 8), np.float32)
    fast = make_eval(cfg, stacked=False, unoptimised=True)(params, None, rows, weights)
    full = make_eval(cfg, stacked=False, unoptimised=False)(params, None, rows, weights)
    assert make_eval(cfg, stacked=False, unoptimised=True) is not make_eval(cfg, stacked=False)
    assert bool(jnp.isfinite(full)) and float(fast) == pytest.approx(float(full), rel=1e-6)


def test_held_out_evaluation_work_is_counted_per_call_and_per_model():
    """The work that decides a group's held-out evaluation program: forward FLOPs per token ×
    tokens of each call × models; the emergence preset's small models get the unoptimised
    program, its padded stack of five does not."""
    from jaxscale.compile_mode import unoptimised_pays
    from jaxscale.group_setup import _eval_flops, prepare_group
    from jaxscale.presets import make_preset

    preset = make_preset("notebook-emergence")
    micro = prepare_group(preset.specs[:1], preset.data, preset.settings, mode="alone")
    stack = prepare_group(preset.specs, preset.data, preset.settings, mode="stack")
    val_rows, test_rows = preset.data.val[0], preset.data.test[0]
    per_token = micro.env.flops_per_token(seq_len=preset.data.seq_len).total / 3
    calls = -(-max(micro.totals) // micro.eval_every) + 1 + 1  # evaluation points, the last step, an early stop
    expected = per_token * (calls * val_rows.shape[0] * (val_rows.shape[1] - 1)
                            + test_rows.shape[0] * (test_rows.shape[1] - 1))
    got = _eval_flops(micro.env, 1, micro.data, micro.totals, micro.eval_every, preset.settings.early_stop)
    assert got == pytest.approx(expected)
    assert unoptimised_pays(got)
    assert not unoptimised_pays(_eval_flops(stack.env, stack.k_run, stack.data, stack.totals, stack.eval_every,
                                            preset.settings.early_stop))
    # an evaluation program shared by micro, tiny and small (``eval_shared``) does the work of
    # all three: each alone would take the unoptimised program, together they do not
    from jaxscale.group_setup import evaluation_flops
    from jaxscale.train import layout_for, make_eval

    shared = prepare_group(preset.specs[:1], preset.data, preset.settings, mode="alone", eval_shared=preset.specs[:3])
    one = evaluation_flops(shared.eval_env, max(micro.totals), preset.data, preset.settings)
    assert unoptimised_pays(one) and not unoptimised_pays(3 * one)
    optimised = make_eval(shared.eval_env, stacked=False, unoptimised=False,
                          layout=layout_for(shared.eval_env, shared.optim.decay_all))
    assert shared.eval_fn.jitted is optimised
