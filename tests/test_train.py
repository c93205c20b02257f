"""Training: learning on the default corpus, determinism, schedules, budgets and bad settings."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale.config import ModelConfig, create_model_config
from jaxscale.data.corpus import load_corpus
from jaxscale.results import missing_fields
from jaxscale.runner import ModelSpec, RunSettings, train_group
from jaxscale.train import Budget, Hyper, OptimConfig, lr_at

QUIET = RunSettings(batch_size=16, eval_windows=64, progress=False)


def unigram_cross_entropy(train: np.ndarray, val: np.ndarray) -> float:
    """Cross-entropy (nats) of the validation split under the train split's byte frequencies."""
    counts = np.bincount(train, minlength=256).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-np.mean(logp[val]))


@pytest.fixture(scope="module")
def short_run():
    corpus = load_corpus()
    spec = ModelSpec(create_model_config("ladder/l1"), 0, OptimConfig(lr=3e-3), Budget("steps", 150))
    return corpus, spec, train_group([spec], corpus, QUIET, mode="alone").rows[0]


def test_short_run_beats_unigram_entropy(short_run):
    corpus, _, row = short_run
    h1 = unigram_cross_entropy(corpus.train, corpus.val)
    assert row["val_loss"] < h1 < math.log(256), (row["val_loss"], h1)
    curve = [p["train_loss"] for p in row["curve"]]
    assert np.mean(curve[-10:]) < np.mean(curve[:10]) - 1.0
    assert not missing_fields(row)
    assert row["steps"] == 150 and row["tokens"] == 150 * 16 * 64
    assert row["flops"] == row["flops_per_token"] * row["tokens"]
    assert [p["step"] for p in row["curve"] if "val_loss" in p][-1] == 150


def test_same_seed_same_losses(short_run):
    corpus, spec, row = short_run
    again = train_group([spec], corpus, QUIET, mode="alone").rows[0]
    assert [p["train_loss"] for p in again["curve"]] == [p["train_loss"] for p in row["curve"]]
    assert again["test_loss"] == row["test_loss"]


def test_schedule_warmup_then_cosine_to_floor():
    h = Hyper(jnp.float32(1.0), jnp.float32(0.0), jnp.int32(100), jnp.int32(10))
    lrs = np.array([float(lr_at(jnp.int32(s), h, 0.1)) for s in range(100)])
    np.testing.assert_allclose(lrs[:10], np.arange(1, 11) / 10, rtol=1e-6)
    assert lrs[10] == pytest.approx(1.0) and lrs[99] == pytest.approx(0.1, abs=1e-6)
    assert np.all(np.diff(lrs[10:]) <= 1e-7)


def test_budgets():
    cfg = create_model_config("ladder/l1")
    assert Budget("steps", 7).steps(cfg, 16, 64) == 7
    assert Budget("tokens", 1025).steps(cfg, 16, 64) == 2
    n = cfg.param_counts()
    assert Budget("tokens_per_param", 20).steps(cfg, 16, 64) == math.ceil(20 * n.total / 1024)
    assert Budget("tokens_per_param", 20, "non_embedding").steps(cfg, 16, 64) == math.ceil(20 * n.non_embedding / 1024)
    with pytest.raises(ValueError, match="Budget.value"):
        Budget("steps", 0)
    with pytest.raises(ValueError, match="Budget.kind"):
        Budget("epochs", 3)


@pytest.mark.parametrize("field,value", [("lr", 0.0), ("beta2", 1.0), ("clip_norm", -1.0), ("lr", float("nan"))])
def test_bad_optim_config(field, value):
    with pytest.raises(ValueError, match=f"OptimConfig.{field}"):
        OptimConfig(**{field: value})


def test_bad_run_settings():
    with pytest.raises(ValueError, match="RunSettings.batch_size"):
        RunSettings(batch_size=0)
    with pytest.raises(ValueError, match="RunSettings.compile_ahead"):
        RunSettings(compile_ahead="yes")
    with pytest.raises(ValueError, match="RunSettings.compile_ahead"):
        RunSettings(compile_ahead=1)
    with pytest.raises(ValueError, match="mode 'alone' trains one model"):
        spec = ModelSpec(create_model_config("ladder/l1"))
        train_group([spec, spec], load_corpus(), QUIET, mode="alone")
    from jaxscale.group_setup import prepare_group

    other = ModelSpec(create_model_config("ladder/l1"), seed=1)
    with pytest.raises(ValueError, match="`prepared` was made for other models"):
        train_group([spec], load_corpus(), QUIET, mode="alone",
                    prepared=prepare_group([other], load_corpus(), QUIET, mode="alone"))


def test_a_remat_change_makes_a_new_training_program(monkeypatch):
    """The training program is made per ``$JAXSCALE_REMAT`` (read when it is made), so switching it
    in one process never reuses a program traced under the other policy."""
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus
    from jaxscale.train import make_train_chunk

    cfg = ModelConfig(vocab_size=32, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_seq_len=8, name="rm")
    data = from_corpus(random_tokens_corpus(32, 5_000, seed=0), seq_len=8, batch_size=2, eval_max_windows=4,
                       vocab_size=32)
    monkeypatch.setenv("JAXSCALE_REMAT", "none")
    plain = make_train_chunk(cfg, OptimConfig(), data.sampler, 4, stacked=False)
    assert make_train_chunk(cfg, OptimConfig(), data.sampler, 4, stacked=False) is plain
    monkeypatch.setenv("JAXSCALE_REMAT", "full")
    assert make_train_chunk(cfg, OptimConfig(), data.sampler, 4, stacked=False) is not plain
    monkeypatch.setenv("JAXSCALE_REMAT", "none")
    monkeypatch.setenv("JAXSCALE_LAYER_UNROLL", "full")  # likewise the layer unroll
    assert make_train_chunk(cfg, OptimConfig(), data.sampler, 4, stacked=False) is not plain


def test_training_programs_are_shared_across_per_model_optimiser_settings():
    """Learning rate, weight decay and warmup are per-model data (``Hyper``), so models that differ
    only in them share one compiled program; a setting the program uses (beta2) makes another."""
    import dataclasses

    from jaxscale.train import OptimConfig, make_train_chunk, program_optim

    cfg = create_model_config("ladder/l1")
    base = OptimConfig()
    other = dataclasses.replace(base, lr=3e-2, weight_decay=0.0, warmup_frac=0.3)
    assert program_optim(other) == program_optim(base)
    sampler = object()
    assert make_train_chunk(cfg, base, sampler, 4, stacked=False) is make_train_chunk(cfg, other, sampler, 4,
                                                                                      stacked=False)
    assert make_train_chunk(cfg, dataclasses.replace(base, beta2=0.99), sampler, 4, stacked=False) is not \
        make_train_chunk(cfg, base, sampler, 4, stacked=False)


def test_host_built_initial_states_equal_the_jitted_init_state():
    """``init_states`` builds the state on the host (no program to compile): it must equal
    ``init_state`` traced by JAX, the dropout key (threefry, computed in numpy) included, for
    one model and for a stack, over seeds that exercise the sign and the high bit."""
    import chex
    import jax

    from jaxscale.model import init_params
    from jaxscale.rng import host_dropout_keys
    from jaxscale.stack import stack_trees
    from jaxscale.train import init_state, init_states

    seeds = np.array([0, 1, 42, 2**31 - 1, -1, -7], np.int32)
    want = np.stack([np.asarray(jax.random.fold_in(jax.random.PRNGKey(int(s)), 1)) for s in seeds])
    np.testing.assert_array_equal(host_dropout_keys(seeds), want)

    cfg = create_model_config("ladder/l1")
    optim = OptimConfig()
    params = init_params(cfg, 3)
    alone = init_states(params, -7, optim, stacked=False)
    chex.assert_trees_all_equal(alone, jax.jit(lambda p: init_state(p, np.int32(-7), optim))(params))
    chex.assert_trees_all_equal_dtypes(alone, init_state(params, np.int32(-7), optim))
    stacked_params = stack_trees([params, init_params(cfg, 4)])
    stack = init_states(stacked_params, [5, 2**31 - 1], optim, stacked=True)
    ref = jax.jit(jax.vmap(lambda p, s: init_state(p, s, optim)))(stacked_params, np.array([5, 2**31 - 1], np.int32))
    chex.assert_trees_all_equal(stack, ref)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(stack))
