"""Configs: validation errors, named families, and analytic counts against real trees and hand counts."""


import pytest

from jaxscale.config import FAMILIES, ModelConfig, create_model_config, family_configs, list_families
from jaxscale.model import init_params

# Totals of the notebook's families built as pre-LN GPTs with biases, learned positions and an
# untied head with bias (issue 3). Update only if the architecture deliberately changes.
NOTEBOOK_TOTALS = {
    "notebook-scaling": [50_676, 88_052, 167_092, 291_540, 473_684],
    "notebook-emergence": [24_164, 67_444, 147_940, 277_940, 469_732],
}


@pytest.mark.parametrize("family", sorted(NOTEBOOK_TOTALS))
def test_notebook_family_totals(family):
    assert [c.param_counts().total for c in family_configs(family)] == NOTEBOOK_TOTALS[family]


@pytest.mark.parametrize("cfg", [c for fam in FAMILIES.values() for c in fam.values()
                                 if c.param_counts().total < 3_000_000], ids=lambda c: c.name)
def test_counts_equal_parameter_tree(cfg):
    params = init_params(cfg, 0)
    counts = cfg.param_counts()
    assert sum(p.size for p in params.values()) == counts.total
    emb = {"tok_emb", "pos_emb", "head_w", "head_b"}
    assert sum(p.size for n, p in params.items() if n in emb) == counts.embedding
    assert counts.total == counts.embedding + counts.non_embedding


def test_tied_embeddings_drop_the_head():
    cfg = create_model_config("ladder/l2", tie_embeddings=True)
    params = init_params(cfg, 0)
    assert "head_w" not in params
    assert sum(p.size for p in params.values()) == cfg.param_counts().total


def test_flops_hand_count():
    # d=32, H=2, L=2, ff=64, V=500, T=32 (notebook-scaling/nano), counted by hand:
    # block = 2 LN (4d=128) + QKV (3d²+3d=3168) + out (d²+d=1056) + MLP (2·d·ff+ff+d=4192) = 8544
    # non-embedding = 2·8544 + final LN 64 = 17152
    cfg = create_model_config("notebook-scaling/nano")
    f = cfg.flops_per_token(causal=False)
    assert f.non_embedding == 6 * 17_152
    assert f.head == 6 * 32 * 500
    assert f.attention == 12 * 2 * 32 * 32  # 12·L·T·d, no causal halving
    causal = cfg.flops_per_token(causal=True)
    assert causal.attention * 2 == f.attention
    assert causal.total == 6 * 17_152 + 96_000 + 12_288


def test_flops_match_nanogpt_convention():
    # nanoGPT: 6·N + 12·L·H·Q·T per token (N non-embedding here, plus the head term stated apart)
    cfg = create_model_config("ladder/l8")
    f = cfg.flops_per_token(causal=False)
    L, H, Q, T = cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.max_seq_len
    assert f.non_embedding + f.attention == 6 * cfg.param_counts().non_embedding + 12 * L * H * Q * T


def test_ladder_spans_30x_non_embedding():
    sizes = [c.param_counts().non_embedding for c in family_configs("ladder")]
    assert len(sizes) >= 8 and sizes == sorted(sizes)
    assert sizes[-1] / sizes[0] >= 30


def test_named_lookup():
    assert create_model_config("notebook-emergence/micro").vocab_size == 100
    assert create_model_config("nano").name == "notebook-scaling/nano"
    with pytest.raises(ValueError, match="ambiguous.*notebook-scaling/micro.*notebook-emergence/micro"):
        create_model_config("micro")
    with pytest.raises(ValueError, match="has no size 'huge'"):
        create_model_config("ladder/huge")
    with pytest.raises(ValueError, match="family 'nope'"):
        create_model_config("nope/x")
    assert "ladder" in list_families()


@pytest.mark.parametrize("field,value,match", [
    ("d_model", 0, "d_model must be positive"),
    ("n_layers", -1, "n_layers must be positive"),
    ("n_heads", 3, "not divisible by n_heads=3"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("dropout", -0.1, "dropout"),
    ("vocab_size", 2.5, "vocab_size must be an int"),
    ("dtype", "float16", "dtype must be one of"),
])
def test_bad_config_names_field(field, value, match):
    base = dict(vocab_size=256, d_model=32, n_heads=2, n_layers=1, d_ff=64, max_seq_len=16)
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{**base, field: value})


def test_config_round_trips_through_dict():
    cfg = create_model_config("ladder/l4")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "width": 3})


@pytest.mark.parametrize("field,value,message", [
    ("tie_embeddings", "false", "tie_embeddings must be true or false"),
    ("tie_embeddings", 1, "tie_embeddings must be true or false"),
    ("name", None, "name must be a string"),
    ("dropout", "0.1", "dropout must be a number"),
    ("dropout", True, "dropout must be a number"),
])
def test_config_fields_of_the_wrong_type_are_refused_by_name(field, value, message):
    """A string 'false' as tie_embeddings is truthy: it tied the head silently."""
    base = dict(vocab_size=10, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_seq_len=4)
    with pytest.raises(ValueError, match=f"ModelConfig.{message}"):
        ModelConfig(**{**base, field: value})


def test_a_numpy_dropout_rate_is_a_rate():
    import numpy as np

    cfg = ModelConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_seq_len=4, dropout=np.float32(0.1))
    assert cfg.dropout == pytest.approx(0.1)


@pytest.mark.parametrize("seq_len", [2.9, "8", True])
def test_flops_at_a_sequence_length_that_is_not_a_whole_number_are_refused(seq_len):
    cfg = ModelConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=1, d_ff=8, max_seq_len=16)
    with pytest.raises(ValueError, match="seq_len must be a whole number"):
        cfg.flops_per_token(seq_len=seq_len)
