"""The GPT: shapes, finiteness, causality, the NNX module, padding exactness and dropout by index."""

import chex
import jax
import jax.extend.core  # noqa: F401  (jaxprs_in_params, below)
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscale.config import ModelConfig
from jaxscale.model import (GPT, ModelDims, attention_impl, cross_entropy, dropout, forward,
                             init_params)
from jaxscale.model_switches import ATTENTION_ENV
from jaxscale.stack import envelope, pad_params

SMALL = ModelConfig(vocab_size=64, d_model=32, n_heads=2, n_layers=2, d_ff=64, max_seq_len=16, name="t")


def _tokens(b=3, t=16, v=64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, v, (b, t)), jnp.int32)


class ForwardTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_and_finite(self):
        params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
        fn = self.variant(lambda p, x: forward(p, x, SMALL))
        logits = fn(params, _tokens())
        chex.assert_shape(logits, (3, 16, 64))
        chex.assert_tree_all_finite(logits)


def test_causality():
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 1))
    x = _tokens()
    y = x.at[:, 9].set((x[:, 9] + 1) % 64)
    a, b = forward(params, x, SMALL), forward(params, y, SMALL)
    np.testing.assert_array_equal(np.asarray(a[:, :9]), np.asarray(b[:, :9]))
    assert np.abs(np.asarray(a[:, 9:] - b[:, 9:])).max() > 1e-4


def test_nnx_module_matches_functional_forward():
    model = GPT(SMALL, seed=3)
    x = _tokens()
    chex.assert_trees_all_close(model(x), forward(jax.tree.map(jnp.asarray, init_params(SMALL, 3)), x, SMALL))


def test_initial_loss_near_ln_vocab():
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    x = _tokens()
    loss = cross_entropy(forward(params, x, SMALL), x)
    assert abs(float(loss) - np.log(64)) < 0.1


def test_padded_model_computes_the_same_logits_and_gradients():
    small = SMALL.replace(d_model=32, n_heads=2, n_layers=1, d_ff=48)
    big = SMALL.replace(d_model=64, n_heads=4, n_layers=3, d_ff=128)
    env = envelope([small, big])
    p = init_params(small, 5)
    padded = jax.tree.map(jnp.asarray, pad_params(p, env))
    x = _tokens()
    dims = ModelDims.of(small)
    chex.assert_trees_all_close(forward(padded, x, env, dims=dims), forward(jax.tree.map(jnp.asarray, p), x, small),
                                atol=1e-5, rtol=1e-5)
    loss = lambda q, c, d: cross_entropy(forward(q, x, c, dims=d), x)
    g_pad = jax.grad(loss)(padded, env, dims)
    g = jax.grad(loss)(jax.tree.map(jnp.asarray, p), small, None)
    for name, gp in g_pad.items():
        true = np.asarray(gp)[tuple(slice(0, s) for s in g[name].shape)]
        np.testing.assert_allclose(true, np.asarray(g[name]), atol=1e-6, rtol=1e-4, err_msg=name)
        rest = np.asarray(gp).copy()
        rest[tuple(slice(0, s) for s in g[name].shape)] = 0
        assert np.all(rest == 0), f"padding of {name} got a gradient"


def test_dropout_bits_do_not_depend_on_padded_shape():
    key = jax.random.PRNGKey(7)
    x_small = jnp.ones((2, 5, 8))
    x_big = jnp.ones((2, 5, 16))
    a = dropout(x_small, 0.3, key)
    b = dropout(x_big, 0.3, key)[:, :, :8]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kept = float(jnp.mean(dropout(jnp.ones((64, 64, 64)), 0.3, key) > 0))
    assert abs(kept - 0.7) < 0.01
    assert dropout(x_small, 0.3, None) is x_small


def test_bfloat16_matmuls_close_to_float32():
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    x = _tokens()
    a = forward(params, x, SMALL)
    b = forward(params, x, SMALL.replace(dtype="bfloat16"))
    assert b.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(a - b))) < 0.05


def _dot_operand_dtypes(jaxpr) -> list[tuple[str, str]]:
    """(lhs, rhs) dtypes of every dot_general in a jaxpr, sub-jaxprs (scan, custom_vjp) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found.extend(_dot_operand_dtypes(sub))
    return found


def _bf16_loss_and_grad(params, x, cfg):
    return jax.value_and_grad(lambda p: cross_entropy(forward(p, x[:, :-1], cfg), x[:, 1:]))(params)


def test_bfloat16_training_step_has_no_float32_matmuls():
    """Every matmul of a bfloat16 model's forward and backward pass takes bfloat16 operands: a
    float32 cotangent against a bfloat16 weight would run the backward matmuls at float32 speed
    (model._low_precision_mm)."""
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    cfg = SMALL.replace(dtype="bfloat16", dropout=0.0)
    jaxpr = jax.make_jaxpr(lambda p, x: _bf16_loss_and_grad(p, x, cfg))(params, _tokens(t=9)).jaxpr
    dtypes = _dot_operand_dtypes(jaxpr)
    assert len(dtypes) >= 3 * 6  # the six matmuls of a layer (one scan body), forward and two backward
    assert all(d == ("bfloat16", "bfloat16") for d in dtypes), sorted(set(dtypes))


def test_bfloat16_gradients_close_to_float32():
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    x = _tokens(t=9)
    loss32, g32 = _bf16_loss_and_grad(params, x, SMALL.replace(dropout=0.0))
    loss16, g16 = _bf16_loss_and_grad(params, x, SMALL.replace(dtype="bfloat16", dropout=0.0))
    assert abs(float(loss32 - loss16)) < 0.02
    for name in g32:
        a, b = np.asarray(g32[name]).ravel(), np.asarray(g16[name]).ravel()
        assert g16[name].dtype == jnp.float32, name
        rel = np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)
        assert rel < 0.05, (name, rel)


@pytest.mark.parametrize("policy", ["dots", "full"])
def test_remat_gives_the_same_loss_and_gradients(policy):
    """Recomputing in the backward pass (``JAXSCALE_REMAT``) changes memory and time, not the
    function: loss and gradients equal the kept-activations pass, padded model and dropout included."""
    cfg = SMALL.replace(dropout=0.1, n_layers=3)
    params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
    big = cfg.replace(d_model=48, n_heads=3, d_ff=96, n_layers=4)
    padded = jax.tree.map(jnp.asarray, pad_params(init_params(cfg, 0), big))
    dims = ModelDims.of(cfg)
    x = _tokens(t=9)

    def loss_grad(p, c, d, remat):
        fn = lambda p: cross_entropy(forward(p, x[:, :-1], c, dims=d, dropout_key=jax.random.PRNGKey(3),
                                             remat=remat), x[:, 1:])
        return jax.jit(jax.value_and_grad(fn))(p)

    for p, c, d in ((params, cfg, None), (padded, big, dims)):
        (l0, g0), (l1, g1) = loss_grad(p, c, d, "none"), loss_grad(p, c, d, policy)
        np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
        chex.assert_trees_all_close(g1, g0, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("unroll", [2, 0])
def test_unrolled_layers_give_the_same_loss_and_gradients(unroll):
    """Unrolling the layer scan (``JAXSCALE_LAYER_UNROLL``; 0 = every layer) changes the program's
    shape, not its function: loss and gradients equal the one-layer-per-iteration scan, for a
    padded model (identity layers beyond its depth) with dropout and an odd depth (3 of 4 with 2)."""
    cfg = SMALL.replace(dropout=0.1, n_layers=3)
    big = cfg.replace(d_model=48, n_heads=3, d_ff=96, n_layers=4)
    padded = jax.tree.map(jnp.asarray, pad_params(init_params(cfg, 0), big))
    params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
    x = _tokens(t=9)

    def loss_grad(p, c, d, u):
        fn = lambda p: cross_entropy(forward(p, x[:, :-1], c, dims=d, dropout_key=jax.random.PRNGKey(3),
                                             remat="none", unroll=u), x[:, 1:])
        return jax.jit(jax.value_and_grad(fn))(p)

    for p, c, d in ((params, cfg, None), (padded, big, ModelDims.of(cfg))):
        (l0, g0), (l1, g1) = loss_grad(p, c, d, 1), loss_grad(p, c, d, unroll)
        np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
        chex.assert_trees_all_close(g1, g0, rtol=1e-5, atol=1e-7)


def test_layer_unroll_choice_is_checked(monkeypatch):
    from jaxscale.model import layer_unroll
    from jaxscale.model_switches import LAYER_UNROLL_ENV

    monkeypatch.delenv(LAYER_UNROLL_ENV, raising=False)
    assert layer_unroll() == 1
    monkeypatch.setenv(LAYER_UNROLL_ENV, "full")
    assert layer_unroll() == 0
    monkeypatch.setenv(LAYER_UNROLL_ENV, "4")
    assert layer_unroll() == 4
    for bad in ("0", "-2", "all", "1.5"):
        monkeypatch.setenv(LAYER_UNROLL_ENV, bad)
        with pytest.raises(ValueError, match="JAXSCALE_LAYER_UNROLL must be a whole number"):
            layer_unroll()
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    with pytest.raises(ValueError, match="unroll must be a whole number >= 0"):
        forward(params, _tokens(), SMALL, unroll=-1)


def test_remat_choice_is_checked(monkeypatch):
    from jaxscale.model import remat_policy
    from jaxscale.model_switches import REMAT_ENV

    monkeypatch.setenv(REMAT_ENV, "everything")
    with pytest.raises(ValueError, match="JAXSCALE_REMAT"):
        remat_policy()
    monkeypatch.setenv(REMAT_ENV, "dots")
    assert remat_policy() == "dots"
    monkeypatch.delenv(REMAT_ENV)
    assert remat_policy() == "auto"
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    with pytest.raises(ValueError, match="remat must be one of"):
        forward(params, _tokens(), SMALL, remat="sometimes")


def test_auto_remat_recomputes_only_large_activations_on_a_cpu():
    """``auto``: dots on a CPU from REMAT_AUTO_MIN_ELEMENTS [B, T, d_ff] elements over the layers
    (where it was measured faster), none below and on accelerators (not measured there)."""
    from jaxscale.model import resolve_remat
    from jaxscale.model_switches import REMAT_AUTO_MIN_ELEMENTS

    wide = ModelConfig(vocab_size=256, d_model=256, n_heads=4, n_layers=4, d_ff=1024, max_seq_len=256)
    assert 32 * 256 * 1024 * 4 >= REMAT_AUTO_MIN_ELEMENTS
    assert resolve_remat("auto", wide, 32, 256, backend="cpu") == "dots"
    assert resolve_remat("auto", wide, 32, 256, backend="gpu") == "none"
    assert resolve_remat("auto", SMALL, 1, 4, backend="cpu") == "none"
    assert resolve_remat("full", SMALL, 1, 4, backend="gpu") == "full"
    with pytest.raises(ValueError, match="remat must be one of"):
        resolve_remat("maybe", SMALL, 1, 4)


def test_sequence_longer_than_context_is_refused():
    params = jax.tree.map(jnp.asarray, init_params(SMALL, 0))
    with pytest.raises(ValueError, match="longer than the context"):
        forward(params, _tokens(t=17), SMALL)


def test_the_training_path_does_not_import_flax():
    """flax is needed only for the NNX module (``jaxscale.model.GPT``), imported on first use;
    importing it for every sweep cost ~0.3 s of each command-line start."""
    import subprocess
    import sys

    code = ("import sys, jaxscale.runner, jaxscale.sweep, jaxscale.train; assert 'flax' not in sys.modules; "
            "from jaxscale.model import GPT; assert 'flax' in sys.modules and GPT.__name__ == 'GPT'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_fused_attention_equals_the_explicit_one_padded_and_not(monkeypatch):
    """``jax.nn.dot_product_attention`` (the XLA lowering; the cuDNN one differs only in its
    backend string) gives the explicit path's logits and gradients, for a model alone and padded
    into a larger stack envelope (padded heads stay inert)."""
    small = SMALL.replace(d_model=32, n_heads=2, n_layers=2, d_ff=48)
    env = envelope([small, SMALL.replace(d_model=64, n_heads=4, n_layers=3, d_ff=128)])
    p = jax.tree.map(jnp.asarray, init_params(small, 7))
    padded = jax.tree.map(jnp.asarray, pad_params(init_params(small, 7), env))
    x = _tokens(seed=4)
    loss = lambda q, c, d: cross_entropy(forward(q, x, c, dims=d), x)
    runs = {}
    for impl in ("explicit", "xla"):
        monkeypatch.setenv(ATTENTION_ENV, impl)
        assert attention_impl(small) == impl
        runs[impl] = (forward(p, x, small), jax.grad(loss)(p, small, None),
                      forward(padded, x, env, dims=ModelDims.of(small)), jax.grad(loss)(padded, env, ModelDims.of(small)))
    chex.assert_trees_all_close(runs["xla"], runs["explicit"], atol=2e-6, rtol=2e-5)
    # causality holds on the fused path too
    y = x.at[:, 9].set((x[:, 9] + 1) % 64)
    np.testing.assert_array_equal(np.asarray(forward(p, x, small)[:, :9]), np.asarray(forward(p, y, small)[:, :9]))


def test_cudnn_attention_falls_back_to_xla_where_there_is_no_cudnn(monkeypatch):
    if jax.default_backend() == "gpu":
        pytest.skip("a GPU has cuDNN: nothing to fall back from")
    monkeypatch.setenv(ATTENTION_ENV, "cudnn")
    p = jax.tree.map(jnp.asarray, init_params(SMALL, 2))
    with pytest.warns(RuntimeWarning, match="cuDNN attention unavailable"):
        out = forward(p, _tokens(), SMALL)
    monkeypatch.setenv(ATTENTION_ENV, "explicit")
    chex.assert_trees_all_close(out, forward(p, _tokens(), SMALL), atol=2e-6, rtol=2e-5)


def test_attention_choice_and_bad_settings(monkeypatch):
    monkeypatch.delenv(ATTENTION_ENV, raising=False)
    assert attention_impl(SMALL) == "explicit"  # the default, dropout or not
    monkeypatch.setenv(ATTENTION_ENV, "cudnn")
    assert attention_impl(SMALL.replace(dtype="bfloat16", dropout=0.0)) == "cudnn"
    monkeypatch.setenv(ATTENTION_ENV, "flash")
    with pytest.raises(ValueError, match="JAXSCALE_ATTENTION must be one of"):
        attention_impl(SMALL)
    monkeypatch.setenv(ATTENTION_ENV, "xla")
    with pytest.raises(ValueError, match="no attention dropout"):
        attention_impl(SMALL.replace(dropout=0.1))


def test_forward_refuses_parameters_of_the_other_kind_of_head():
    """Untied parameters under a tied config (or the reverse) ran with the parameters' head,
    whatever the config said."""
    from jaxscale.config import ModelConfig
    from jaxscale.model import forward, init_params

    tied = ModelConfig(vocab_size=16, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_seq_len=4, tie_embeddings=True)
    untied = tied.replace(tie_embeddings=False)
    tokens = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match="tie_embeddings=True, but the parameters have an output head"):
        forward(init_params(untied, 0), tokens, tied)
    with pytest.raises(ValueError, match="tie_embeddings=False, but the parameters lack an output head"):
        forward(init_params(tied, 0), tokens, untied)


@pytest.mark.parametrize("bad", [16, 100, -1])
def test_the_nnx_model_refuses_token_ids_outside_its_vocabulary(bad):
    """Eagerly: ids at or above the vocabulary gave NaN logits, -1 a wrapped lookup."""
    from jaxscale.config import ModelConfig
    from jaxscale.model import GPT

    model = GPT(ModelConfig(vocab_size=16, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_seq_len=4))
    assert np.isfinite(np.asarray(model(np.array([[0, 15, 3, 2]])))).all()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 16\)"):
        model(np.array([[0, bad, 3, 2]]))
