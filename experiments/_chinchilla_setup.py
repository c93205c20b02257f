"""The Chinchilla experiment's fixed settings and the reference points it is compared with.

Split out of ``experiments/chinchilla.py`` (which re-exports every name here) because the
script, its figures (``_chinchilla_plots.py``) and its report (``_chinchilla_report.py``) all
read them: the sequence length, the race's strategies, the per-mode plans, Hoffmann et al.'s
exponents and the notebook's own (unequal) race. Imported by ``chinchilla.py`` after it has put
this folder on ``sys.path``.
"""

from __future__ import annotations

SEQ_LEN = 64
STRATEGIES = (("small, overtrained", "l2"), ("balanced", "l4"), ("big, undertrained", "l7"))
HOFFMANN_A = {1: 0.50, 2: 0.49, 3: 0.46}  # Hoffmann et al. (2022), Table 2

# Per mode: the balanced strategy's tokens per parameter (which sets the race's FLOPs), the race's
# learning rates and seeds; the IsoFLOP budgets (6·N·D FLOPs), sizes, learning rates and seeds;
# batch, held-out windows, bootstrap resamples.
PLANS = {
    "smoke": dict(race_tokens_per_param=0.2, race_lrs=(4e-3, 1e-2), race_seeds=(0,),
                  budgets=(5e8, 1e9, 2e9), sizes=("l2", "l3", "l4"), lrs=(4e-3, 1e-2), seeds=(0,),
                  batch_size=8, eval_windows=8, bootstrap=20, isoflop_extend_rounds=1),
    "quick": dict(race_tokens_per_param=2.0, race_lrs=(4e-3, 1e-2), race_seeds=(0,),
                  budgets=(3e9, 8e9, 2e10), sizes=("l1", "l2", "l3", "l4"), lrs=(4e-3, 1e-2), seeds=(0,),
                  batch_size=16, eval_windows=32, bootstrap=100, isoflop_extend_rounds=1),
    # full: five learning rates, so that the choices are bracketed (``jaxscale/lr_grid.py``). With
    # 4e-3 and 1e-2 alone every race strategy and IsoFLOP point chose an end, and the balanced
    # model won the race by 0.072 nats; with 1.6e-3 to 2.5e-2 the small model chose 2.5e-2 and the
    # margin fell to 0.015 nats, and 6 of 15 IsoFLOP points still chose 2.5e-2 (2026-12-04).
    # isoflop_extend_rounds: rounds of the ladder's next size out, at every rate and seed, for a
    # budget whose lowest validation loss is an end of its sizes (``jaxscale/isoflop_grid.py``).
    "full": dict(race_tokens_per_param=20.0, race_lrs=(1.6e-3, 4e-3, 1e-2, 2.5e-2, 6.25e-2), race_seeds=(0, 1),
                 budgets=(3e10, 8e10, 2e11), sizes=("l2", "l3", "l4", "l5", "l6"),
                 lrs=(1.6e-3, 4e-3, 1e-2, 2.5e-2, 6.25e-2),
                 seeds=(0, 1),
                 batch_size=16, eval_windows=64, bootstrap=300, isoflop_extend_rounds=2),
}


def notebook_race_counted() -> list[dict]:
    """The notebook's own race (its three architectures, vocab 400, context 32, batch 4 × 24,
    25 / 100 / 60 steps) counted by the model's FLOP formula: its budgets were not equal."""
    from jaxscale.config import ModelConfig

    rows = []
    for strategy, (d, h, layers, f), steps in (("big, undertrained", (128, 8, 6, 256), 25),
                                               ("small, overtrained", (64, 4, 3, 128), 100),
                                               ("balanced", (96, 6, 4, 192), 60)):
        cfg = ModelConfig(vocab_size=400, d_model=d, n_heads=h, n_layers=layers, d_ff=f, max_seq_len=32, dropout=0.1)
        tokens = steps * 4 * 24
        rows.append({"strategy": strategy, "params": cfg.param_counts().total, "steps": steps, "tokens": tokens,
                     "flops": cfg.flops_per_token(seq_len=24).total * tokens,
                     "tokens_per_param": tokens / cfg.param_counts().total})
    return rows
