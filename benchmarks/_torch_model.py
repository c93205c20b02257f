"""The GPT that ``torch_baseline.py`` trains: an eager PyTorch copy of ``jaxscale/model.py``.

Split out of ``benchmarks/torch_baseline.py`` (which re-exports every name here) so that the
model definition can be read apart from the notebook's training loops and the command line.
It is imported by that script, which puts this folder and the repository on ``sys.path`` first.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from jaxscale.config import ModelConfig

LN_EPS = 1e-5
INIT_STD = 0.02


# ----- the model (mirrors jaxscale/model.py) ---------------------------------------------------

class Block(nn.Module):
    """Pre-LN block: x + Drop(Proj(Attn(LN(x)))), then x + Drop(FC2(GELU(FC1(LN(x)))))."""

    def __init__(self, cfg: ModelConfig, sdpa: bool = False):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim, self.rate, self.sdpa = cfg.n_heads, cfg.head_dim, cfg.dropout, sdpa
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.fc1 = nn.Linear(d, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, d)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.mlp_drop = nn.Dropout(cfg.dropout)
        mask = torch.tril(torch.ones(cfg.max_seq_len, cfg.max_seq_len, dtype=torch.bool))
        self.register_buffer("causal", mask, persistent=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        # Fused projection laid out as (qkv, head, head_dim), as jaxscale's wqkv is.
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.rate if self.training else 0.0)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            s = s.masked_fill(~self.causal[:T, :T], float("-inf"))
            o = self.attn_drop(torch.softmax(s, dim=-1)) @ v
        return self.proj(o.transpose(1, 2).reshape(B, T, D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.resid_drop(self.attention(self.ln1(x)))
        return x + self.mlp_drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class TorchGPT(nn.Module):
    """Token + learned position embeddings, ``n_layers`` pre-LN blocks, final LN, untied head."""

    def __init__(self, cfg: ModelConfig, sdpa: bool = False):
        super().__init__()
        if cfg.tie_embeddings:
            raise ValueError("the torch baseline builds untied heads only (as the notebook does)")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, sdpa) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=LN_EPS)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        resid_std = INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.normal_(0.0, INIT_STD)
                if isinstance(module, nn.Linear):
                    module.bias.zero_()
                if isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            for block in self.blocks:
                block.proj.weight.normal_(0.0, resid_std)
                block.fc2.weight.normal_(0.0, resid_std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        pos = torch.arange(T, device=tokens.device)
        x = self.drop(self.tok_emb(tokens) + self.pos_emb(pos)[None])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(cfg: ModelConfig, seed: int, sdpa: bool = False) -> TorchGPT:
    """A freshly initialised model whose parameter count is checked against jaxscale's."""
    torch.manual_seed(seed)
    model = TorchGPT(cfg, sdpa=sdpa)
    n, expected = count_parameters(model), cfg.param_counts().total
    if n != expected:
        raise AssertionError(f"{cfg.name}: torch model has {n} parameters, jaxscale counts {expected}")
    return model
