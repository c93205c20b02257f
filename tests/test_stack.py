"""Invariant 1 and 3: a model inside a stack is the model alone; every reduction is per model."""

import numpy as np
import pytest

from jaxscale.config import ModelConfig, family_configs
from jaxscale.data.corpus import load_corpus, random_tokens_corpus
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.stack import envelope, padded_flops_utilisation
from jaxscale.train import Budget, OptimConfig

REL_TOL = 1e-5  # DESIGN.md §2, invariant 1 (float32, >= 50 steps)


def _losses(row):
    return np.array([p["train_loss"] for p in row["curve"]], dtype=float)


def assert_stack_equals_alone(specs, data, settings):
    stack = train_group(specs, data, settings, mode="stack")
    for i, spec in enumerate(specs):
        alone = train_group([spec], data, settings, mode="alone")
        a, s = _losses(alone.rows[0]), _losses(stack.rows[i])
        assert a.shape == s.shape and len(a) >= 50, spec.label
        rel = np.max(np.abs(a - s) / np.abs(a))
        assert rel <= REL_TOL, f"{spec.label}: relative loss difference {rel:.2e}"
        assert abs(alone.rows[0]["test_loss"] - stack.rows[i]["test_loss"]) <= REL_TOL * alone.rows[0]["test_loss"]
        assert stack.rows[i]["mode"] == "stack" and stack.rows[i]["stack"]["size"] == len(specs)
    return stack


def _mixed_cfg(d, h, l, f, dropout):
    return ModelConfig(vocab_size=256, d_model=d, n_heads=h, n_layers=l, d_ff=f, max_seq_len=32,
                       dropout=dropout, name=f"m-d{d}-l{l}")


def test_mixed_sizes_dropout_budgets_and_clipping_match_alone():
    """Different widths, head counts, MLP widths, depths, seeds, learning rates and step budgets,
    dropout on and an active gradient clip, in one padded stack."""
    cfgs = [_mixed_cfg(16, 1, 1, 32, 0.1), _mixed_cfg(32, 2, 2, 96, 0.1), _mixed_cfg(48, 3, 1, 64, 0.1)]
    specs = [ModelSpec(c, seed=i, optim=OptimConfig(lr=lr, clip_norm=0.05), budget=Budget("steps", n))
             for i, (c, lr, n) in enumerate(zip(cfgs, (2e-3, 1e-3, 5e-4), (50, 60, 55)))]
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=16, progress=False, steps_per_dispatch=20)
    stack = assert_stack_equals_alone(specs, load_corpus(), settings)
    # padded entries stayed exactly zero
    env = envelope(cfgs)
    params = stack.state.params
    assert params["w1"].shape[-1] == env.d_ff
    np.testing.assert_array_equal(params["w1"][0][..., 32:], 0)       # model 0: d_ff 32 of 96
    np.testing.assert_array_equal(params["wqkv"][0][:, :, :, 1:], 0)  # model 0: 1 head of 3
    np.testing.assert_array_equal(params["tok_emb"][0][:, 16:], 0)    # model 0: width 16 of 48
    np.testing.assert_array_equal(params["w2"][2][1:], 0)             # model 2: 1 layer of 2
    assert [r["steps"] for r in stack.rows] == [50, 60, 55]


@pytest.mark.slow
def test_notebook_scaling_family_in_one_stack_matches_alone():
    cfgs = family_configs("notebook-scaling")
    specs = [ModelSpec(c, seed=i, optim=OptimConfig(lr=3e-4, weight_decay=0.01), budget=Budget("steps", 50))
             for i, c in enumerate(cfgs)]
    settings = RunSettings(batch_size=4, seq_len=24, eval_windows=16, progress=False, steps_per_dispatch=25)
    assert_stack_equals_alone(specs, random_tokens_corpus(500, 100_000), settings)


def test_same_shape_seeds_and_lrs_match_alone():
    cfg = family_configs("ladder")[1]
    specs = [ModelSpec(cfg, seed=s, optim=OptimConfig(lr=lr), budget=Budget("steps", 50))
             for s, lr in ((0, 1e-3), (1, 3e-3), (2, 2e-3))]
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=16, progress=False)
    stack = assert_stack_equals_alone(specs, load_corpus(), settings)
    assert stack.rows[0]["stack"]["padded_flops_util"] == pytest.approx(1.0)


def test_divergence_is_isolated_bit_for_bit():
    cfg = family_configs("ladder")[0]
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=16, progress=False)
    make = lambda lr1: [ModelSpec(cfg, seed=i, optim=OptimConfig(lr=lr), budget=Budget("steps", 30))
                        for i, lr in enumerate((1e-3, lr1, 2e-3))]
    sane = train_group(make(1e-3), load_corpus(), settings, mode="stack").rows
    absurd = train_group(make(1e35), load_corpus(), settings, mode="stack").rows
    assert absurd[1]["diverged"] and absurd[1]["test_loss"] is None
    assert not sane[1]["diverged"]
    for i in (0, 2):
        assert not absurd[i]["diverged"]
        assert _losses(absurd[i]).tolist() == _losses(sane[i]).tolist()
        assert absurd[i]["test_loss"] == sane[i]["test_loss"]


def test_padding_utilisation_formula():
    cfgs = family_configs("notebook-scaling")
    u = padded_flops_utilisation(cfgs)
    assert 0.3 < u < 0.6
    assert padded_flops_utilisation(cfgs[:1]) == 1.0


def test_incompatible_models_cannot_share_a_stack():
    a, b = family_configs("notebook-scaling")[0], family_configs("notebook-emergence")[0]
    with pytest.raises(ValueError, match="vocab_size differs"):
        envelope([a, b])


def test_same_shape_stacks_skip_the_padding_masks():
    import dataclasses

    import chex
    import jax
    import jax.numpy as jnp

    from jaxscale.model import ModelDims, forward, init_params
    from jaxscale.stack import stack_dims_if_padded

    cfg = family_configs("notebook-emergence")[1]
    # same shape (other names do not matter): no dims, so the forward pass applies no masks
    assert stack_dims_if_padded([cfg, dataclasses.replace(cfg, name="other")]) is None
    mixed = stack_dims_if_padded(family_configs("notebook-emergence")[:2])
    assert mixed is not None and mixed.d_model.tolist() == [32, 48]
    # ... which is the same computation as the masks at full size (all ones)
    params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
    tokens = jnp.arange(10, dtype=jnp.int32).reshape(2, 5) % cfg.vocab_size
    key = jax.random.key(3)
    plain = forward(params, tokens, cfg, dropout_key=key)
    masked = forward(params, tokens, cfg, dims=ModelDims.of(cfg), dropout_key=key)
    chex.assert_trees_all_close(plain, masked, rtol=1e-5, atol=1e-6)


def test_models_sharing_one_program_alone_match_their_true_shape_runs():
    """``planner.Group.shared``: models of several sizes trained one after another by one program
    at their envelope's shape (padded, with masks), each as it trains alone at its true shape:
    dropout on, an active clip, different budgets; the second model reuses the first's program
    (no compile), and its weights come back at the true shape."""
    from jaxscale.model import init_params

    cfgs = [_mixed_cfg(16, 1, 1, 32, 0.1), _mixed_cfg(48, 3, 2, 96, 0.1)]
    specs = [ModelSpec(c, seed=i, optim=OptimConfig(lr=lr, clip_norm=0.05), budget=Budget("steps", n))
             for i, (c, lr, n) in enumerate(zip(cfgs, (2e-3, 1e-3), (50, 60)))]
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=16, progress=False, steps_per_dispatch=20)
    data = load_corpus()
    shared = [train_group([s], data, settings, mode="alone", shared=specs) for s in specs]
    for spec, res in zip(specs, shared):
        alone = train_group([spec], data, settings, mode="alone")
        a, s = _losses(alone.rows[0]), _losses(res.rows[0])
        assert a.shape == s.shape and len(a) >= 50, spec.label
        rel = np.max(np.abs(a - s) / np.abs(a))
        assert rel <= REL_TOL, f"{spec.label}: relative loss difference {rel:.2e}"
        assert abs(alone.rows[0]["test_loss"] - res.rows[0]["test_loss"]) <= REL_TOL * alone.rows[0]["test_loss"]
        info = res.rows[0]["stack"]
        assert res.rows[0]["mode"] == "alone" and info["shared_program"] == [s.label for s in specs]
        assert info["envelope"]["d_model"] == 48 and info["envelope"]["n_layers"] == 2
        true_shapes = {k: v.shape for k, v in init_params(spec.cfg, 0).items()}
        assert {k: v.shape for k, v in res.params(0).items()} == true_shapes
    assert shared[0].rows[0]["stack"]["padded_flops_util"] < 0.5
    assert shared[1].rows[0]["stack"]["padded_flops_util"] == pytest.approx(1.0)
    # the second model's program was the first's: nothing compiled for it
    assert shared[1].rows[0]["stack"]["compile_seconds"] < 0.5 * shared[0].rows[0]["stack"]["compile_seconds"]
    # padded entries of the small model stayed exactly zero
    w1 = shared[0].state.params["w1"]
    assert w1.shape[-1] == 96
    np.testing.assert_array_equal(w1[..., 32:], 0)
    np.testing.assert_array_equal(shared[0].state.params["w2"][1:], 0)  # 1 layer of 2


def test_a_shared_program_refuses_a_model_outside_its_set():
    cfgs = [_mixed_cfg(16, 1, 1, 32, 0.0), _mixed_cfg(32, 2, 1, 64, 0.0)]
    specs = [ModelSpec(c, seed=0, budget=Budget("steps", 5)) for c in cfgs]
    settings = RunSettings(batch_size=2, seq_len=16, eval_windows=4, progress=False)
    with pytest.raises(ValueError, match="`shared` must include"):
        train_group([specs[0]], load_corpus(), settings, mode="alone", shared=specs[1:])
    with pytest.raises(ValueError, match="`shared` is for a model trained alone"):
        train_group(specs, load_corpus(), settings, mode="stack", shared=specs)
    other = ModelSpec(cfgs[1], seed=0, budget=Budget("steps", 5), optim=OptimConfig(beta2=0.9))
    with pytest.raises(ValueError, match=r"one program \(`shared`\) must share beta1"):
        train_group([specs[0]], load_corpus(), settings, mode="alone", shared=[specs[0], other])


def test_models_sharing_one_evaluation_program_match_their_own_evaluations():
    """``planner.Group.eval_shared``: models trained alone at their true shapes, evaluated by one
    program at their envelope (padded, with masks): the same training curve bit for bit, the
    same validation and test losses to float rounding, one evaluation program for the set, and
    the result's evaluation shape is the envelope (where a task's evaluation runs too)."""
    from jaxscale.group_setup import prepare_group

    cfgs = [_mixed_cfg(16, 1, 1, 32, 0.1), _mixed_cfg(48, 3, 2, 96, 0.1)]
    specs = [ModelSpec(c, seed=i, optim=OptimConfig(lr=1e-3), budget=Budget("steps", n))
             for i, (c, n) in enumerate(zip(cfgs, (50, 60)))]
    settings = RunSettings(batch_size=4, seq_len=32, eval_windows=16, progress=False, steps_per_dispatch=20, n_evals=3)
    data = load_corpus()
    for spec in specs:
        own = train_group([spec], data, settings, mode="alone")
        shared = train_group([spec], data, settings, mode="alone", eval_shared=specs)
        assert _losses(own.rows[0]).tolist() == _losses(shared.rows[0]).tolist()  # training is untouched
        own_val = [p["val_loss"] for p in own.rows[0]["curve"] if "val_loss" in p]
        shared_val = [p["val_loss"] for p in shared.rows[0]["curve"] if "val_loss" in p]
        assert len(own_val) >= 3
        np.testing.assert_allclose(shared_val, own_val, rtol=REL_TOL)
        assert shared.rows[0]["test_loss"] == pytest.approx(own.rows[0]["test_loss"], rel=REL_TOL)
        info = shared.rows[0]["stack"]
        assert info["eval_shared"] == [s.label for s in specs] and info["eval_envelope"]["d_model"] == 48
        assert own.rows[0]["stack"]["eval_envelope"] is None and own.eval_program(0) is None
        env, padded, dims = shared.eval_program(0)
        assert env.d_model == 48 and padded["w1"].shape[-1] == 96 and int(dims.d_model) == spec.cfg.d_model
        np.testing.assert_array_equal(padded["w1"][..., spec.cfg.d_ff:], 0)
    programs = [prepare_group([s], data, settings, mode="alone", eval_shared=specs).eval_fn.jitted for s in specs]
    assert programs[0] is programs[1]
    assert prepare_group([specs[0]], data, settings, mode="alone").eval_fn.jitted is not programs[0]


def test_a_shared_evaluation_refuses_a_set_without_its_models():
    cfgs = [_mixed_cfg(16, 1, 1, 32, 0.0), _mixed_cfg(32, 2, 1, 64, 0.0), _mixed_cfg(48, 3, 1, 96, 0.0)]
    specs = [ModelSpec(c, seed=0, budget=Budget("steps", 5)) for c in cfgs]
    settings = RunSettings(batch_size=2, seq_len=16, eval_windows=4, progress=False)
    with pytest.raises(ValueError, match="`eval_shared` must include"):
        train_group([specs[0]], load_corpus(), settings, mode="alone", eval_shared=specs[1:])
    with pytest.raises(ValueError, match="`eval_shared` must include .*m-d32"):
        train_group([specs[0]], load_corpus(), settings, mode="alone", shared=specs[:2], eval_shared=[specs[0], specs[2]])
    with pytest.raises(ValueError, match="`eval_shared` is for a model trained alone"):
        train_group(specs, load_corpus(), settings, mode="stack", eval_shared=specs)
