"""Model configurations: a frozen, validated ``ModelConfig``, its analytic parameter and FLOP
counts, and the named families (the notebook's two families and a byte-level ladder).

The config owns its counts, as in levanter: ``cfg.param_counts()`` must equal the leaf count of
the real parameter tree (tested for every family member), and ``cfg.flops_per_token()`` states
every term, so that MFU and the compute axis of every scaling law rest on one formula.

Architecture counted here (and built in ``model.py``): token + learned position embeddings,
``n_layers`` pre-LayerNorm blocks (LN → causal multi-head attention with a fused QKV projection
and an output projection; LN → GELU MLP), a final LN and an LM head. Biases everywhere. The head
is untied (its own ``d×V`` weight and ``V`` bias) unless ``tie_embeddings``, in which case the
logits reuse the token embedding and there is no head bias.

**Embedding vs non-embedding.** Following Kaplan et al. (2020), *embedding* parameters are the
token and position embeddings plus the untied LM head (weight and bias); *non-embedding* are the
blocks and the final LayerNorm. At 10⁴–10⁶ parameters the embeddings are a large share, so both
counts are recorded and fits say which they use.
"""

from __future__ import annotations

import numbers
import dataclasses
from dataclasses import dataclass
from typing import Mapping

_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ParamCounts:
    """Analytic parameter counts of one ``ModelConfig``."""

    total: int
    embedding: int
    non_embedding: int


@dataclass(frozen=True)
class FlopCounts:
    """Training FLOPs per token (forward + backward = 3 × forward; 2 FLOPs per multiply-add).

    ``non_embedding``: 6·N_non-embedding (block matmuls; biases and LayerNorms are counted at the
    same rate, a <2% overcount at these sizes). ``head``: the LM head's 6·d·V (the embedding
    lookup is free). ``attention``: scores QKᵀ and the weighted sum AV, 2 matmuls of 2·T·d FLOPs
    per token per layer forward, i.e. 12·L·T·d for training, halved when ``causal`` (only the
    lower triangle is useful work, as MaxText counts it; nanoGPT/PaLM do not halve).
    """

    non_embedding: int
    head: int
    attention: int
    causal: bool
    seq_len: int

    @property
    def total(self) -> int:
        return self.non_embedding + self.head + self.attention


@dataclass(frozen=True)
class ModelConfig:
    """One GPT's architecture. Frozen and validated at construction.

    Fields: ``vocab_size`` V, ``d_model`` d, ``n_heads`` H (head size d/H), ``n_layers`` L,
    ``d_ff`` MLP width, ``max_seq_len`` T (context, learned positions), ``dropout`` rate in
    [0, 1), ``tie_embeddings`` (reuse the token embedding as the LM head), ``dtype`` of the
    matmuls (``float32``, or ``bfloat16`` on accelerators; parameters stay float32), and a
    ``name`` (family-qualified for named sizes, e.g. ``notebook-emergence/micro``).
    """

    vocab_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    max_seq_len: int
    dropout: float = 0.0
    tie_embeddings: bool = False
    dtype: str = "float32"
    name: str = "custom"

    def __post_init__(self) -> None:
        for field in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ModelConfig.{field} must be an int, got {value!r}")
            if value <= 0:
                raise ValueError(f"ModelConfig.{field} must be positive, got {value}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig.d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise ValueError(f"ModelConfig.dropout must be a number, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):  # a string 'false' is truthy: it tied the head
            raise ValueError(f"ModelConfig.tie_embeddings must be true or false, got {self.tie_embeddings!r}")
        if not isinstance(self.name, str):
            raise ValueError(f"ModelConfig.name must be a string, got {self.name!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"ModelConfig.dtype must be one of {_DTYPES}, got {self.dtype!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown fields {sorted(unknown)}")
        return cls(**dict(data))

    # ----- analytic counts -------------------------------------------------------------------
    def block_params(self) -> int:
        """Parameters of one block: 2 LayerNorms, QKV + output projections, MLP (with biases)."""
        d, f = self.d_model, self.d_ff
        layer_norms = 2 * 2 * d
        attention = (d * 3 * d + 3 * d) + (d * d + d)
        mlp = (d * f + f) + (f * d + d)
        return layer_norms + attention + mlp

    def param_counts(self) -> ParamCounts:
        d, v, t = self.d_model, self.vocab_size, self.max_seq_len
        embedding = v * d + t * d + (0 if self.tie_embeddings else d * v + v)
        non_embedding = self.n_layers * self.block_params() + 2 * d
        return ParamCounts(embedding + non_embedding, embedding, non_embedding)

    def flops_per_token(self, *, causal: bool = True, seq_len: int | None = None) -> FlopCounts:
        """Training FLOPs per token at sequence length ``seq_len`` (default: the context)."""
        if seq_len is not None and (isinstance(seq_len, bool) or not isinstance(seq_len, numbers.Integral)):
            raise ValueError(f"seq_len must be a whole number, got {seq_len!r}")  # 2.9 was read as 2
        t = self.max_seq_len if seq_len is None else int(seq_len)
        if t <= 0 or t > self.max_seq_len:
            raise ValueError(f"seq_len must be in [1, {self.max_seq_len}], got {seq_len}")
        n = self.param_counts().non_embedding
        attention = 12 * self.n_layers * t * self.d_model
        if causal:
            attention //= 2
        return FlopCounts(non_embedding=6 * n, head=6 * self.d_model * self.vocab_size,
                          attention=attention, causal=causal, seq_len=t)


# ----- named families --------------------------------------------------------------------------

def _family(prefix: str, common: dict, sizes: dict[str, tuple[int, int, int, int]]) -> dict:
    """sizes: name -> (d_model, n_heads, n_layers, d_ff)."""
    return {
        name: ModelConfig(d_model=d, n_heads=h, n_layers=l, d_ff=f, name=f"{prefix}/{name}", **common)
        for name, (d, h, l, f) in sizes.items()
    }


# The notebook's power-law family: vocab 500, context 32, dropout 0.1; head size 16 throughout.
_NOTEBOOK_SCALING = _family("notebook-scaling", dict(vocab_size=500, max_seq_len=32, dropout=0.1), {
    "nano": (32, 2, 2, 64), "micro": (48, 3, 2, 96), "tiny": (64, 4, 3, 128),
    "small": (80, 5, 4, 160), "medium": (96, 6, 5, 192),
})

# The notebook's emergence family: vocab 100, context 16, dropout 0.1.
_NOTEBOOK_EMERGENCE = _family("notebook-emergence", dict(vocab_size=100, max_seq_len=16, dropout=0.1), {
    "micro": (32, 2, 2, 64), "tiny": (48, 3, 3, 96), "small": (64, 4, 4, 128),
    "medium": (80, 5, 5, 160), "large": (96, 6, 6, 192),
})

# Byte-level ladder (vocab 256, context 64, no dropout, head size 16 so any rungs can share a
# padded stack, MLP width 4·d). Rungs l1-l8 (3.3k to 85k non-embedding, 13k to 113k total
# parameters) are what the 10-minute CPU study trains at ~20 tokens per parameter; l9-l17 (to
# 25M non-embedding; the whole ladder spans 7,600×) are for accelerators.
_LADDER = _family("ladder", dict(vocab_size=256, max_seq_len=64, dropout=0.0), {
    "l1": (16, 1, 1, 64), "l2": (16, 1, 2, 64), "l3": (16, 1, 3, 64), "l4": (32, 2, 1, 128),
    "l5": (32, 2, 2, 128), "l6": (32, 2, 3, 128), "l7": (48, 3, 2, 192), "l8": (48, 3, 3, 192),
    "l9": (64, 4, 2, 256), "l10": (64, 4, 4, 256), "l11": (96, 6, 4, 384), "l12": (128, 8, 4, 512),
    "l13": (128, 8, 6, 512), "l14": (192, 12, 6, 768), "l15": (256, 16, 8, 1024),
    "l16": (384, 24, 8, 1536), "l17": (512, 32, 8, 2048),
})

FAMILIES: dict[str, dict[str, ModelConfig]] = {
    "notebook-scaling": _NOTEBOOK_SCALING,
    "notebook-emergence": _NOTEBOOK_EMERGENCE,
    "ladder": _LADDER,
}


def list_families() -> dict[str, list[str]]:
    """Family name -> its size names, smallest first."""
    return {fam: list(sizes) for fam, sizes in FAMILIES.items()}


def family_configs(family: str) -> list[ModelConfig]:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is unknown; known families: {sorted(FAMILIES)}")
    return list(FAMILIES[family].values())


def create_model_config(name: str, **overrides) -> ModelConfig:
    """A named config: ``family/size`` or a bare ``size`` when only one family has it.

    ``overrides`` replace fields (e.g. ``dropout=0.0``); the result is validated again.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if "/" in name:
        family, size = name.split("/", 1)
        if family not in FAMILIES:
            raise ValueError(f"model {name!r}: family {family!r} is unknown; known families: {sorted(FAMILIES)}")
        if size not in FAMILIES[family]:
            raise ValueError(f"model {name!r}: family {family!r} has no size {size!r}; "
                             f"its sizes are {list(FAMILIES[family])}")
        cfg = FAMILIES[family][size]
    else:
        matches = [fam_cfgs[name] for fam_cfgs in FAMILIES.values() if name in fam_cfgs]
        if not matches:
            known = [c.name for fams in FAMILIES.values() for c in fams.values()]
            raise ValueError(f"model {name!r} is unknown; known models: {known}")
        if len(matches) > 1:
            raise ValueError(f"model name {name!r} is ambiguous; candidates: {[c.name for c in matches]}")
        cfg = matches[0]
    return cfg.replace(**overrides) if overrides else cfg
