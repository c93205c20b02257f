"""Evaluation with hand-made logits functions whose right answers are known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale.data.tasks import make_task
from jaxscale.evaluate import evaluate, load_outputs
from jaxscale.metrics import exact_match_N, metric_table

N_DIGITS = 3


@pytest.fixture(scope="module")
def addition():
    return make_task("addition", seed=0, n_digits=N_DIGITS, n_train=100, n_test=1000)


def addition_oracle(vocab: int, n: int = N_DIGITS):
    """Causal oracle for plain-order addition: at answer step j (position 2n+1+j) it computes the
    sum from the prompt alone and puts all its mass on the right digit."""
    def logits_fn(tokens_BT):
        w = 10 ** jnp.arange(n - 1, -1, -1)
        a = tokens_BT[:, :n] @ w
        b = tokens_BT[:, n + 1:2 * n + 1] @ w
        total = a + b
        t = tokens_BT.shape[1]
        j_T = jnp.arange(t) - (2 * n + 1)                      # answer step predicted at t
        power_T = 10 ** jnp.clip(n - j_T, 0, n)
        digit_BT = (total[:, None] // power_T[None, :]) % 10
        return 20.0 * jax.nn.one_hot(digit_BT, vocab)
    return logits_fn


def test_oracle_gets_exact_match_one(addition):
    out = evaluate(addition_oracle(addition.vocab_size), addition.test, batch_size=300)
    table = metric_table(out)
    assert out.num_examples == 1000
    assert table.exact_match.rate == 1.0 and table.exact_match.n == 1000
    assert table.tolerance_match.rate == 1.0
    assert table.token_accuracy.rate == 1.0 and table.edit_distance == 0.0
    np.testing.assert_array_equal(out.pred_value_N, addition.test.target_value_N)
    assert table.answer_log_likelihood > -1e-3


def test_uniform_logits_give_minus_L_ln_V(addition):
    V = addition.vocab_size
    out = evaluate(lambda tok: jnp.zeros(tok.shape + (V,)), addition.test)
    L = N_DIGITS + 1
    ll = out.token_logprob_NA.sum(1)
    np.testing.assert_allclose(ll, -L * np.log(V), rtol=1e-5)
    assert metric_table(out).answer_log_likelihood == pytest.approx(-L * np.log(V), rel=1e-5)


def test_greedy_exact_match_equals_all_tokens_teacher_forced_correct(addition):
    # a fixed random causal bigram model: logits from the current and the previous token
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    V = addition.vocab_size
    w1, w2 = jax.random.normal(k1, (V, V)), jax.random.normal(k2, (V, V))
    def bigram(tok):
        prev = jnp.concatenate([tok[:, :1], tok[:, :-1]], axis=1)
        return w1[tok] + 0.5 * w2[prev]
    out = evaluate(bigram, addition.test)
    np.testing.assert_array_equal(exact_match_N(out), out.token_correct_NA.all(1))
    # and batching (with a padded last batch) does not change anything
    out7 = evaluate(bigram, addition.test.take(np.arange(50)), batch_size=7)
    np.testing.assert_array_equal(out7.pred_NA, out.pred_NA[:50])
    np.testing.assert_allclose(out7.token_logprob_NA, out.token_logprob_NA[:50], rtol=1e-6)


def test_greedy_decoding_cannot_peek_at_the_gold_answer(addition):
    # a non-causal cheat that copies the next token: perfect teacher-forced, blind when greedy
    V = addition.vocab_size
    def cheat(tok):
        return 20.0 * jax.nn.one_hot(jnp.roll(tok, -1, axis=1), V)
    out = evaluate(cheat, addition.test)
    assert out.token_correct_NA.all()
    assert exact_match_N(out).mean() == 0.0   # it sees only pad tokens where the answer was


def test_one_token_answers_keep_the_probability_vector():
    task = make_task("notebook-arithmetic", seed=0)
    def rule(tok):  # next term = 2·last − previous (the arithmetic rule), in token space
        nxt = 2 * tok - jnp.concatenate([tok[:, :1], tok[:, :-1]], axis=1)
        return 5.0 * jax.nn.one_hot(nxt, 100)
    out = evaluate(rule, task.test)
    assert out.answer_probs_NV.shape == (100, 100)
    np.testing.assert_allclose(out.answer_probs_NV.sum(1), 1.0, rtol=1e-5)
    table = metric_table(out)
    assert table.exact_match.rate == 1.0
    p_gold, p_other = np.exp(5) / (np.exp(5) + 99), 1 / (np.exp(5) + 99)
    assert table.brier == pytest.approx((1 - p_gold) ** 2 + 99 * p_other ** 2, rel=1e-5)
    assert table.answer_probability == pytest.approx(p_gold, rel=1e-5)


def test_outputs_round_trip_through_npz(addition, tmp_path):
    out = evaluate(addition_oracle(addition.vocab_size), addition.test.take(np.arange(64)))
    path = tmp_path / "outputs.npz"
    out.save(path)
    back = load_outputs(path)
    assert back.task == "addition" and back.vocab_size == out.vocab_size
    assert back.answer_probs_NV is None and back.subtask_N is None
    assert metric_table(back).as_dict() == metric_table(out).as_dict()


def test_params_as_arguments_match_a_closure_and_share_one_program(addition):
    """``evaluate(fn, split, params=p)`` passes the weights as arguments of one cached program:
    it must score exactly like the closure form, and a second set of weights must reuse it."""
    from jaxscale.config import ModelConfig
    from jaxscale.emergence_study import task_logits_fn
    from jaxscale.evaluate import _JITTED
    from jaxscale.model import init_params

    cfg = ModelConfig(vocab_size=addition.vocab_size, d_model=16, n_heads=1, n_layers=1, d_ff=32,
                      max_seq_len=16, dropout=0.0)
    split = addition.test.take(np.arange(40))
    fn = task_logits_fn(cfg)
    for seed in (0, 1):
        params = jax.tree.map(jnp.asarray, init_params(cfg, seed))
        by_args = evaluate(fn, split, params=params)
        by_closure = evaluate(lambda tok, p=params: fn(p, tok), split)
        np.testing.assert_array_equal(by_args.pred_NA, by_closure.pred_NA)
        np.testing.assert_allclose(by_args.token_logprob_NA, by_closure.token_logprob_NA, rtol=1e-5, atol=1e-6)
    programs = [v for k, v in _JITTED.items() if k[0] is fn]
    jitted = getattr(programs[0], "jitted", programs[0])  # under program_cache's wrapper, if any
    assert len(programs) == 1 and jitted._cache_size() == 1


def test_a_causal_model_decodes_a_one_token_answer_from_its_teacher_forced_pass():
    """A logits function marked causal (a GPT's) takes the first answer token from the
    teacher-forced logits: the notebook's one-token answers then need one forward pass. It must
    decode exactly what the masked greedy pass decodes, and the program must hold one forward
    pass (no decoding loop left)."""
    from jaxscale.config import ModelConfig
    from jaxscale.emergence_study import task_logits_fn
    from jaxscale.evaluate import _eval_batch
    from jaxscale.model import init_params

    task = make_task("notebook-arithmetic", seed=0)
    cfg = ModelConfig(vocab_size=100, d_model=32, n_heads=2, n_layers=2, d_ff=64, max_seq_len=16, dropout=0.0)
    fn = task_logits_fn(cfg)
    assert fn.causal is True
    params = jax.tree.map(jnp.asarray, init_params(cfg, 3))
    one_pass = evaluate(fn, task.test, params=params)
    two_pass = evaluate(lambda tok: fn(params, tok), task.test)  # unmarked: the masked greedy pass
    np.testing.assert_array_equal(one_pass.pred_NA, two_pass.pred_NA)
    np.testing.assert_allclose(one_pass.token_logprob_NA, two_pass.token_logprob_NA, rtol=1e-5, atol=1e-6)
    split = task.test
    args = (jnp.asarray(split.tokens_NT[:8]), jnp.asarray(split.answer_start_N[:8]), jnp.asarray(split.answer_len_N[:8]))
    jaxpr = lambda causal: str(jax.make_jaxpr(lambda t, s, n: _eval_batch(
        lambda x: fn(params, x), t, s, n, pad_id=split.pad_id, n_answer=1, causal=causal))(*args))
    assert 2 * jaxpr(True).count("dot_general") == jaxpr(False).count("dot_general")  # one forward, not two


def test_a_shared_program_model_is_evaluated_at_its_envelope_with_masks():
    """A model trained on a shared program (planner ``Group.shared``) is evaluated at the
    program's envelope, padded, with its true sizes as masks, so that the set shares one
    evaluation program: the outputs are those of the true-shape model, to float rounding."""
    from jaxscale.config import family_configs
    from jaxscale.emergence_study import evaluate_model
    from jaxscale.model import ModelDims, init_params
    from jaxscale.stack import pad_params

    task = make_task("notebook-arithmetic", seed=0)
    micro, tiny = family_configs("notebook-emergence")[:2]
    params = init_params(micro, 5)
    params["head_b"] = params["head_b"] + np.linspace(-2.0, 2.0, micro.vocab_size, dtype=np.float32)  # no ties
    alone, metrics, _ = evaluate_model(task, micro, params)
    padded, padded_metrics, _ = evaluate_model(task, tiny, pad_params(params, tiny), dims=ModelDims.of_host(micro))
    np.testing.assert_array_equal(padded.pred_NA, alone.pred_NA)
    np.testing.assert_allclose(padded.token_logprob_NA, alone.token_logprob_NA, rtol=1e-5, atol=1e-6)
    assert padded_metrics["exact_match"] == metrics["exact_match"]


def test_a_model_evaluation_refuses_parameters_or_masks_that_do_not_fit_its_config():
    from jaxscale.config import family_configs
    from jaxscale.emergence_study import evaluate_model
    from jaxscale.model import ModelDims, init_params

    task = make_task("notebook-arithmetic", seed=0)
    micro, tiny = family_configs("notebook-emergence")[:2]
    with pytest.raises(ValueError, match="`params`"):
        evaluate_model(task, tiny, init_params(micro, 0))  # true-shape micro weights, not padded to tiny
    with pytest.raises(ValueError, match="`dims`"):
        evaluate_model(task, micro, init_params(micro, 0), dims=ModelDims.of_host(tiny))  # masks larger than cfg
    with pytest.raises(ValueError, match="`dims`"):
        evaluate_model(task, micro, init_params(micro, 0), dims=(1, 1, 1, 1))
