"""The hierarchical bootstrap shared by the emergence fits: seeds within a scale, then examples.

A point is one (scale, seed) with ``successes`` out of ``trials``. One replicate replaces each
point by a random point of the same scale (resampling seeds with replacement) and then draws its
successes from Binomial(trials, successes/trials), which is exactly resampling that model's
test examples with replacement when each example scores 0 or 1. For a fractional score
(per-token accuracy over ``trials`` tokens) it is the same scheme applied to the pooled tokens.
The x value of every point is unchanged, so a fit can keep x fixed and vmap over replicates.

When seeds differ only by sampling noise the two levels count that noise twice, so intervals
are conservative (the simulated coverage of a nominal 95% interval is close to 100%); when seeds
genuinely differ (initialisation, data order) the seed level is what carries that spread.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hierarchical_resample", "resample_seeds"]


def hierarchical_resample(x_S: np.ndarray, successes_S: np.ndarray, trials_S: np.ndarray,
                          n_boot: int, seed: int = 0, return_index: bool = False):
    """(successes_BS, trials_BS) for ``n_boot`` replicates; see the module docstring. With
    ``return_index`` also the index of the point each replicate point was drawn from, so other
    per-point quantities (a loss) can follow the same seed resample."""
    x_S = np.asarray(x_S)
    trials_S = np.asarray(trials_S, np.float64)
    successes_S = np.asarray(successes_S, np.float64)
    if np.any(trials_S <= 0) or np.any(successes_S < 0) or np.any(successes_S > trials_S):
        raise ValueError("bootstrap needs trials > 0 and 0 <= successes <= trials")
    rng = np.random.default_rng(seed)
    pick_BS = resample_seeds(x_S, n_boot, rng)
    n_BS = np.round(trials_S[pick_BS]).astype(np.int64)
    p_BS = np.clip(successes_S[pick_BS] / trials_S[pick_BS], 0.0, 1.0)
    s_BS = rng.binomial(n_BS, p_BS).astype(np.float64)
    if return_index:
        return s_BS, n_BS.astype(np.float64), pick_BS
    return s_BS, n_BS.astype(np.float64)


def resample_seeds(x_S: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The seed level alone: [n_boot, S] indices, each point replaced by a uniformly drawn point
    of the same x (its scale), with replacement. A per-point quantity ``v_S`` resampled is
    ``v_S[pick_BS]``."""
    _, group_S = np.unique(np.asarray(x_S), return_inverse=True)
    order = np.argsort(group_S, kind="stable")
    counts_G = np.bincount(group_S)
    starts_G = np.concatenate([[0], np.cumsum(counts_G)[:-1]])
    u_BS = rng.random((n_boot, group_S.size))
    return order[starts_G[group_S][None, :] + np.floor(u_BS * counts_G[group_S][None, :]).astype(np.int64)]
