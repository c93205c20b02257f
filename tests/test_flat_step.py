"""The flat-vector optimiser step (flat.py, train.flat_step) against optax, and the hashed keys
(rng.py) the step draws its dropout and data order from."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale.config import create_model_config
from jaxscale.flat import decay_mask, layout_of, ravel, split_leaves, unravel
from jaxscale.model import DECAYED, cross_entropy, forward, init_params
from jaxscale.rng import fold, index_bits, permutation
from jaxscale.train import Hyper, OptimConfig, init_state, lr_at, make_tx, train_step


@pytest.fixture(scope="module")
def model():
    cfg = create_model_config("ladder/l4").replace(dropout=0.0)
    return cfg, jax.tree.map(jnp.asarray, init_params(cfg, 3))


def test_layout_puts_decayed_leaves_first_and_round_trips(model):
    _, params = model
    layout = layout_of(params, DECAYED)
    n_dec = sum(1 for n in layout.names if n in DECAYED)
    assert all(n in DECAYED for n in layout.names[:n_dec]) and not any(n in DECAYED for n in layout.names[n_dec:])
    assert layout.size == sum(p.size for p in params.values())
    vec = ravel(layout, params)
    chex.assert_shape(vec, (layout.size,))
    chex.assert_trees_all_equal(split_leaves(layout, vec), params)
    chex.assert_trees_all_equal(unravel(layout, vec), params)
    mask = np.asarray(decay_mask(layout))
    assert mask[:layout.n_decayed].all() and not mask[layout.n_decayed:].any()
    assert layout_of(params, DECAYED, decay_all=True).n_decayed == layout.size


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("decay_all", [False, True])
def test_host_flat_state_round_trips_in_the_layout_of_the_config(stacked, decay_all):
    """The training program carries the state as flat vectors made on the host: the config's
    layout must be the one the state's tree gives, and the named tree must come back exactly
    (a stack's [K, P] vectors keep the model axis)."""
    from jaxscale.config import family_configs
    from jaxscale.stack import envelope, pad_params, stack_trees
    from jaxscale.train import flat_state_host, init_states, layout_for, state_layout, tree_state_host

    optim = OptimConfig(decay_all=decay_all)
    cfgs = family_configs("notebook-scaling")[:3]
    if stacked:
        env = envelope(cfgs)
        params = stack_trees([pad_params(init_params(c, i), env) for i, c in enumerate(cfgs)])
        state = init_states(params, [1, 2, 3], optim, stacked=True, host=True)
    else:
        env = cfgs[1]
        state = init_states(init_params(env, 4), 4, optim, stacked=False, host=True)
    # non-trivial moments, count and step, so that a mix-up of vectors or leaves shows
    adam = state.opt_state[1]
    rng = np.random.default_rng(0)
    adam = adam._replace(mu=jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), adam.mu),
                         nu=jax.tree.map(lambda x: rng.random(x.shape).astype(np.float32), adam.nu),
                         count=np.asarray(adam.count) + 7)
    state = state._replace(opt_state=(state.opt_state[0], adam), step=np.asarray(state.step) + 3)
    layout = layout_for(env, decay_all)
    assert layout == state_layout(state, optim, stacked=stacked)
    fs = flat_state_host(state, layout)
    chex.assert_shape([fs.params_P, fs.mu_P, fs.nu_P], ((3,) if stacked else ()) + (layout.size,))
    back = tree_state_host(fs, layout, optim)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    chex.assert_trees_all_equal(back, state)


def test_unravel_gradient_is_the_raveled_tree_gradient(model):
    cfg, params = model
    layout = layout_of(params, DECAYED)
    tokens = jnp.arange(2 * 16).reshape(2, 16) % cfg.vocab_size
    loss_tree = lambda p: cross_entropy(forward(p, tokens[:, :-1], cfg), tokens[:, 1:])
    g_tree = jax.grad(loss_tree)(params)
    g_flat = jax.grad(lambda v: loss_tree(unravel(layout, v)))(ravel(layout, params))
    np.testing.assert_allclose(np.asarray(g_flat), np.asarray(ravel(layout, g_tree)), rtol=1e-6, atol=1e-9)


def _optax_reference_step(params, opt_state, step, tokens, cfg, optim, hyper):
    """The textbook tree version: optax clip + Adam, then decoupled decay on the decayed leaves."""
    grads = jax.grad(lambda p: cross_entropy(forward(p, tokens[:, :-1], cfg), tokens[:, 1:]))(params)
    direction, opt_state = make_tx(optim).update(grads, opt_state, params)
    lr = lr_at(step, hyper, optim.min_lr_ratio)
    new = {n: p - lr * (direction[n] + (hyper.weight_decay * p if n in DECAYED else 0.0)) for n, p in params.items()}
    return new, opt_state


@pytest.mark.parametrize("clip_norm", [1.0, 1e-3])  # 1e-3: clipping triggers at every step
def test_flat_step_matches_optax_adamw(model, clip_norm):
    cfg, params = model
    optim = OptimConfig(lr=3e-3, weight_decay=0.1, clip_norm=clip_norm)
    hyper = Hyper.make(optim, 20)
    tokens = (jnp.arange(4 * 17).reshape(4, 17) * 7) % cfg.vocab_size
    state = init_state(params, 0, optim)
    ref_params, ref_opt = params, make_tx(optim).init(params)
    step = jax.jit(lambda s: train_step(s, hyper, tokens[:, :-1], tokens[:, 1:], cfg=cfg, optim=optim))
    ref = jax.jit(lambda p, o, i: _optax_reference_step(p, o, i, tokens, cfg, optim, hyper))
    for i in range(8):
        state, metrics = step(state)
        ref_params, ref_opt = ref(ref_params, ref_opt, jnp.int32(i))
    assert int(state.step) == 8 and not bool(state.diverged)
    # Adam divides by sqrt(v): where a gradient is ~0, float rounding of the (differently fused)
    # gradient moves m/sqrt(v) visibly, so parameters agree to a small fraction of one step's move
    # (lr = 3e-3); a wrong formula (bias correction, decay mask, clipping) is off by ~lr.
    chex.assert_trees_all_close(state.params, ref_params, rtol=1e-5, atol=3e-5)
    chex.assert_trees_all_close(state.opt_state[1].mu, ref_opt[1].mu, rtol=1e-3, atol=1e-6)
    chex.assert_trees_all_close(state.opt_state[1].nu, ref_opt[1].nu, rtol=1e-3, atol=1e-9)
    assert int(state.opt_state[1].count) == int(ref_opt[1].count) == 8
    # the biases and LayerNorm gains had no decay: a pure-Adam move, unlike the matrices
    assert not np.allclose(np.asarray(state.params["ln1_scale"]), np.asarray(params["ln1_scale"]))


def test_flat_step_freezes_a_nonfinite_model(model):
    cfg, params = model
    optim = OptimConfig()
    state = init_state(params, 0, optim)
    tokens = jnp.zeros((2, 9), jnp.int32)
    bad = dict(params, head_w=params["head_w"].at[0, 0].set(jnp.nan)) if "head_w" in params else \
        dict(params, tok_emb=params["tok_emb"].at[0, 0].set(jnp.nan))
    out, metrics = train_step(state._replace(params=bad), Hyper.make(optim, 10), tokens[:, :-1], tokens[:, 1:],
                              cfg=cfg, optim=optim)
    assert bool(out.diverged) and int(out.step) == 0
    assert int(out.opt_state[1].count) == 0
    chex.assert_trees_all_equal(out.opt_state[1].mu, state.opt_state[1].mu)


def test_fold_is_deterministic_keeps_the_key_kind_and_separates_ids():
    raw = jax.random.PRNGKey(5)
    typed = jax.random.key(5)
    a, b = fold(raw, 1, 2), fold(raw, 1, 2)
    chex.assert_trees_all_equal(a, b)
    assert a.dtype == raw.dtype and a.shape == raw.shape
    assert jnp.issubdtype(fold(typed, 1).dtype, jax.dtypes.prng_key)
    words = {tuple(np.asarray(fold(raw, i)).tolist()) for i in range(1000)}
    assert len(words) == 1000  # no collisions among the first thousand steps' keys
    assert not np.array_equal(np.asarray(fold(raw, 1, 2)), np.asarray(fold(raw, 2, 1)))


def test_hashed_bits_and_permutation_look_uniform():
    bits = np.asarray(index_bits(jax.random.PRNGKey(0), (4096,)))
    frac_high = np.mean(bits >= 2**31)
    assert 0.45 < frac_high < 0.55
    perm = np.asarray(permutation(fold(jax.random.PRNGKey(0), 3), 300))
    assert sorted(perm.tolist()) == list(range(300))
    other = np.asarray(permutation(fold(jax.random.PRNGKey(0), 4), 300))
    assert not np.array_equal(perm, other) and not np.array_equal(perm, np.arange(300))


def test_host_flat_state_refuses_a_tree_or_vector_of_another_layout():
    """A state padded to another envelope (or missing a leaf) must not be flattened into a
    layout it does not fit: numpy would reshape it silently into a vector of the wrong length."""
    from jaxscale.config import family_configs
    from jaxscale.flat import ravel_host, split_host
    from jaxscale.stack import pad_params
    from jaxscale.train import flat_state_host, init_states, layout_for

    micro, tiny = family_configs("notebook-emergence")[:2]
    optim = OptimConfig()
    layout = layout_for(micro, optim.decay_all)
    padded = init_states(pad_params(init_params(micro, 0), tiny), 0, optim, stacked=False, host=True)
    with pytest.raises(ValueError, match="leaf .* has shape"):
        flat_state_host(padded, layout)
    params = init_params(micro, 0)
    assert ravel_host(layout, params).shape == (layout.size,)
    with pytest.raises(ValueError, match="leaves"):
        ravel_host(layout, {n: x for n, x in params.items() if n != "pos_emb"})
    with pytest.raises(ValueError, match="leading axes differ"):  # one leaf stacked, the others not
        ravel_host(layout, {**params, "pos_emb": np.stack([params["pos_emb"]] * 2)})
    with pytest.raises(ValueError, match="vec_P"):
        split_host(layout, np.zeros(layout.size + 1, np.float32))
    assert split_host(layout, np.zeros((2, layout.size), np.float32))["tok_emb"].shape == (2,) + params["tok_emb"].shape


def test_an_evaluation_of_flat_parameters_refuses_a_layout_of_another_config():
    from jaxscale.config import family_configs
    from jaxscale.train import layout_for, make_eval

    micro, tiny = family_configs("notebook-emergence")[:2]
    with pytest.raises(ValueError, match="layout"):
        make_eval(tiny, stacked=False, layout=layout_for(micro, False))
    assert make_eval(tiny, stacked=False, layout=layout_for(tiny, False)) is not None
