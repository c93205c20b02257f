"""The per-task verdict: is a transition in the model or in the metric, and do the seeds settle it?

The label compares the sharpness of exact match with that of a continuous metric over the sizes
(:func:`emergence_verdict`), once exact match has risen at all: the sharpness ratio is
scale-free, so a series that stays on its floor scores whatever its noise makes of it (the
emergence smoke run, exact match 0.008 / 0.018 / 0.007 / 0.015, scored −0.39 and read
"smooth, settled"). Such a series is labelled "no transition" first (see ``_rise_se``). Where
guessing scores something (``chance``: sparse parity's one-bit answer scores 1/2), the rise is
measured from chance when the first size lies below it: the smallest models of a study may not
yet write a valid answer (exact match 0.3 on parity) while larger ones guess (0.5), and that
climb to chance is no ability. The label
is read from a few seeds per size, so it can flip with them: on
2-digit addition a two-layer model either learns the carry or does not, seed by seed, and near
the transition the mean over three seeds is a coin's worth of such runs (the experiment's runs
of 2026-12-02 and 2026-12-04 read "metric-induced" and "smooth" from the same sizes). Hence two
checks beside the label:

* **agreement**: the seeds of each size are resampled with replacement (then, where the
  success counts are given, each model's test examples: ``resample.hierarchical_resample``), the
  label recomputed on every replicate, and the share of replicates that agree with it reported;
  the verdict is *settled* when that share is at least ``VERDICT_AGREEMENT``;
* **seed splits**: the sizes where some seeds reach the exact-match threshold and others do not.
  There the mean over seeds mixes runs that found the solution with runs that did not, so it
  measures how often training finds it rather than how well a model of that size does, and it
  is there that more seeds narrow the verdict.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxscale.fit.emergence.resample import hierarchical_resample, resample_seeds
from jaxscale.fit.emergence.series import check_series, pool_by_scale, sharpness_ratio, to_x

__all__ = ["VERDICTS", "EM_ONLY_VERDICTS", "VERDICT_AGREEMENT", "RISE_Z", "SeedSplit", "Verdict",
           "emergence_verdict"]

VERDICTS = ("metric-induced", "sharp under both", "smooth", "no transition")
# the labels without a continuous metric (a table of published scores): a sharp series cannot be
# told "metric-induced" from "sharp under both" there, and reads "sharp"
EM_ONLY_VERDICTS = ("sharp", "smooth", "no transition")
VERDICT_AGREEMENT = 0.9  # share of resamples that must agree for a verdict to count as settled
# How many standard errors a size's mean exact match must rise above the first size's for the
# series to count as rising (see ``_rise_se``). Three, not two: every size is compared with the
# first (m − 1 one-sided tests), and with 3 seeds the spread is itself estimated from 3 numbers,
# so the z scores have heavy tails.
RISE_Z = 3.0


@dataclasses.dataclass(frozen=True)
class SeedSplit:
    """A size whose seeds disagree: ``above`` of ``seeds`` reached the exact-match threshold."""

    scale: float
    above: int
    seeds: int


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Is a transition in the model or in the metric?

    label: "no transition" (exact match never rises clearly above its level at the first size,
    or above ``chance`` where that is higher, so its sharpness measures noise), else
    "metric-induced" (sharp under exact match, smooth under the continuous metric), "sharp under
    both", or "smooth" (exact match itself is not sharp). Without a continuous metric
    (``continuous_sharpness`` NaN) a sharp series reads "sharp" (``EM_ONLY_VERDICTS``). ``em_rise``: the largest rise of a
    size's mean exact match over the first size's (or over ``chance``, where that is higher);
    ``em_rise_z``: the largest such rise in standard errors, which must reach ``rise_z``. With a
    bootstrap (``n_boot`` > 0): ``label_share`` (each label's share of the replicates, in
    ``VERDICTS`` order) and percentile intervals of the two sharpness ratios; NaN without one.
    ``seed_splits``: the sizes whose seeds fall on both sides of ``split_threshold``.
    ``chance``: the exact-match level of guessing that the rise and the sharpness were read
    against (0: none).
    """

    label: str
    em_sharpness: float
    continuous_sharpness: float
    sharp_ratio: float
    n_sizes: int
    note: str
    n_boot: int = 0
    label_share: tuple[float, ...] = ()
    em_sharpness_ci: tuple[float, float] = (float("nan"), float("nan"))
    continuous_sharpness_ci: tuple[float, float] = (float("nan"), float("nan"))
    split_threshold: float = 0.5
    seed_splits: tuple[SeedSplit, ...] = ()
    em_rise: float = float("nan")
    em_rise_z: float = float("nan")
    rise_z: float = RISE_Z
    chance: float = 0.0

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels this verdict chose among, in ``label_share`` order: ``VERDICTS``, or
        ``EM_ONLY_VERDICTS`` where no continuous metric was given."""
        return EM_ONLY_VERDICTS if np.isnan(self.continuous_sharpness) else VERDICTS

    @property
    def agreement(self) -> float:
        """Share of the bootstrap replicates with this label (NaN without a bootstrap)."""
        return self.label_share[self.labels.index(self.label)] if self.label_share else float("nan")

    @property
    def settled(self) -> bool | None:
        """Whether at least ``VERDICT_AGREEMENT`` of the replicates agree (None: no bootstrap)."""
        return None if not self.label_share else bool(self.agreement >= VERDICT_AGREEMENT)

    def as_dict(self) -> dict:
        """JSON-ready fields, with the label shares by name and the derived agreement."""
        d = dataclasses.asdict(self)
        d["label_share"] = dict(zip(self.labels, self.label_share))
        d["agreement"], d["settled"] = self.agreement, self.settled
        return d


def _label(em_r: float, cont_r: float, sharp_ratio: float, em_rise_z: float, rise_z: float) -> str:
    if not em_rise_z >= rise_z:
        return "no transition"
    if em_r < sharp_ratio:
        return "smooth"
    if np.isnan(cont_r):  # no continuous metric to compare with
        return "sharp"
    return "sharp under both" if cont_r >= sharp_ratio else "metric-induced"


def emergence_verdict(scale, em, continuous, *, continuous_is_loss: bool = True,
                      sharp_ratio: float = 2.0, log_scale: bool = True,
                      decreasing: bool = False, successes=None, trials=None, n_boot: int = 0,
                      seed: int = 0, ci: float = 0.95, split_threshold: float = 0.5,
                      rise_z: float = RISE_Z, chance: float = 0.0) -> Verdict:
    """Classify a task from its exact-match series and a continuous-metric series.

    First, does exact match rise at all? Unless some size's mean exact match is at least
    ``rise_z`` standard errors above the first size's (``_rise_z``), the label is "no
    transition". Otherwise both series are pooled per scale and scored with
    :func:`sharpness_ratio` (BIG-bench breakthroughness over m − 1); a series is "sharp" when the
    ratio ≥ ``sharp_ratio`` (2: the root-median-square step is at most half of an even ramp's
    step). A loss (``continuous_is_loss``, e.g. answer NLL per token) is scored as −log(loss), so
    a power law, the smooth null of Schaeffer et al. 2023, is a straight ramp on a log-uniform
    grid and scores 1. Use a loss here, not per-token accuracy: accuracy = exp(−loss) is itself a
    sigmoid in log scale and would read as sharp.

    ``successes`` and ``trials`` (exact-match counts per point, with ``em`` = successes /
    trials) give the rise test a binomial noise floor. ``n_boot`` > 0 adds the bootstrap of the
    module docstring: seeds within each scale, and each model's test examples too when the
    counts are given; the continuous metric follows the seed draw, and every replicate gets the
    whole label, the rise test included (judged with the data's standard errors: ``_rise_z``).
    ``ci``: the sharpness intervals' coverage.

    ``chance`` is exact match's level under guessing (the task's ``chance_levels``). The rise is
    then measured from chance or from the first size, whichever is higher (a climb from a
    sub-chance first size up to chance is no transition), and the sharpness is read on the
    per-size means raised to chance (``max(em, chance)``: the part of the series that is above
    guessing). At 0, the default, both are as without it.

    ``continuous`` None (a table of published scores, which has no loss): the rise test, the
    sharpness of exact match and the bootstrap are as with one, but a sharp series reads "sharp"
    (``EM_ONLY_VERDICTS``: telling "metric-induced" from "sharp under both" needs the continuous
    metric); ``continuous_sharpness`` and its interval are NaN.
    """
    scale, em = check_series(scale, em, "em", log_scale=log_scale, unit_interval=True)
    cont = None
    if continuous is not None:
        _, cont = check_series(scale, continuous, "continuous", log_scale=log_scale)
        if continuous_is_loss:
            if np.any(cont <= 0):
                raise ValueError("continuous must be a positive loss when continuous_is_loss=True")
            cont = -np.log(cont)
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot!r}")
    if not 0 < split_threshold <= 1:
        raise ValueError(f"split_threshold must lie in (0, 1], got {split_threshold!r}")
    if not rise_z >= 0:
        raise ValueError(f"rise_z must be >= 0, got {rise_z!r}")
    if not 0.0 <= chance < 1.0:
        raise ValueError(f"chance must lie in [0, 1), got {chance!r}")
    successes, trials = _counts(successes, trials, em)
    x_S = to_x(scale, log_scale, decreasing)
    x_M, em_M, _ = pool_by_scale(x_S, em)
    if x_M.size < 3:
        raise ValueError(f"a verdict needs at least 3 distinct scales, got {x_M.size}")
    cont_r = float("nan") if cont is None else sharpness_ratio(pool_by_scale(x_S, cont)[1])
    em_r = sharpness_ratio(np.maximum(em_M, chance))
    inverse_S = np.unique(x_S, return_inverse=True)[1]
    onehot_SM = (inverse_S[:, None] == np.arange(x_M.size)[None, :]).astype(np.float64)
    se_J = _rise_se(onehot_SM, em, successes, trials, chance)
    (rise,), (z,) = _rise_z(onehot_SM, em[None], se_J, chance)
    gaps = np.diff(x_M)
    note = "" if gaps.max() <= 1.5 * gaps.min() else (
        "scale grid is not log-uniform; breakthroughness assumes it")
    verdict = Verdict(_label(em_r, cont_r, sharp_ratio, z, rise_z), em_r, cont_r, float(sharp_ratio),
                      int(x_M.size), note, split_threshold=float(split_threshold),
                      seed_splits=_seed_splits(scale, x_S, em, split_threshold),
                      em_rise=float(rise), em_rise_z=float(z), rise_z=float(rise_z),
                      chance=float(chance))
    if n_boot <= 0:
        return verdict
    em_BS, pick_BS = _resampled_em(x_S, em, successes, trials, n_boot, seed)
    per_scale_M = onehot_SM.sum(axis=0)
    em_r_B = np.array([sharpness_ratio(np.maximum(y, chance)) for y in em_BS @ onehot_SM / per_scale_M])
    cont_r_B = np.full(n_boot, np.nan) if cont is None else np.array(
        [sharpness_ratio(y) for y in cont[pick_BS] @ onehot_SM / per_scale_M])
    _, z_B = _rise_z(onehot_SM, em_BS, se_J, chance)
    labels_B = [_label(a, b, sharp_ratio, zb, rise_z) for a, b, zb in zip(em_r_B, cont_r_B, z_B)]
    share = tuple(float(np.mean([lab == name for lab in labels_B])) for name in verdict.labels)
    return dataclasses.replace(verdict, n_boot=int(n_boot), label_share=share,
                               em_sharpness_ci=_interval(em_r_B, ci),
                               continuous_sharpness_ci=verdict.continuous_sharpness_ci if cont is None
                               else _interval(cont_r_B, ci))


def _rise_se(onehot_SM, em_S, s_S=None, n_S=None, chance: float = 0.0) -> np.ndarray:
    """Standard errors [M − 1] of the difference between each later size's mean exact match and
    the first size's (``onehot_SM`` maps points to sizes in axis order) under the null of no
    rise, i.e. of models at size j scoring like those at the first size: the larger of

    * the first size's seed spread, sd_1 · sqrt(1/k_1 + 1/k_j) (k: seeds), which carries the
      test items' noise too, since each seed's exact match is itself a sample. The first size's
      and not size j's own: where some seeds of size j learned the task and others did not, its
      spread is large because it rose (seeds at 0.08 and at 1.0), and would hide that rise;
    * with counts, the two-proportion binomial one, sqrt(p(1 − p)(1/n_1 + 1/n_j)) with p the
      two sizes' pooled rate, which stays positive where the first size's seeds happen to agree
      or it has only one;
    Where the first size's mean lies below a ``chance`` level c > 0, the rise is measured from
    chance (``_rise_z``), and so is its error: with counts, the binomial error of size j's rate
    around chance, sqrt(c(1 − c)/n_j), alone. The first size then plays no part: its seeds'
    spread (small parity models that do not yet write a valid bit, 0 to 0.5) would hide a rise
    from chance to 0.8, and the chance term would in turn inflate a rise measured from a first
    size above chance (0.90 → 0.96 on 160 items read "no transition" at chance 1/2, "smooth" at 0).

    Without counts, and with one seed at the first size (or seeds that agree exactly), it is 0:
    there is no noise to judge a rise by, and any rise counts.
    """
    k_M = onehot_SM.sum(axis=0)
    first_S = onehot_SM[:, 0] > 0
    if s_S is not None and chance > 0 and float(np.mean(em_S[first_S])) < chance:
        n_M = n_S @ onehot_SM
        return np.sqrt(chance * (1 - chance) / n_M[1:])
    sd_1 = float(np.std(em_S[first_S], ddof=1)) if k_M[0] > 1 else 0.0
    se_J = sd_1 * np.sqrt(1 / k_M[0] + 1 / k_M[1:])
    if s_S is not None:
        s_M, n_M = s_S @ onehot_SM, n_S @ onehot_SM
        p_J = (s_M[1:] + s_M[0]) / (n_M[1:] + n_M[0])
        se_J = np.maximum(se_J, np.sqrt(p_J * (1 - p_J) * (1 / n_M[1:] + 1 / n_M[0])))
    return se_J


def _rise_z(onehot_SM, em_BS, se_J, chance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Does exact match rise above its level at the first size? Per replicate (a row of
    ``em_BS``): the rise of each later size's mean over the first size's, or over ``chance``
    where the first size lies below it, in standard errors ``se_J`` (``_rise_se``); returns
    (the rise where this is largest, the largest z), each [B].
    A rise with no noise to judge it by (se 0) has z = inf; a flat or falling series z ≤ 0.

    The bootstrap replicates are judged with the data's standard errors, not their own: a
    replicate's seed spread collapses to 0 wherever it draws one seed every time (1 size in 9
    with 3 seeds), which would make a floor-level series rise in many replicates.
    """
    mean_BM = em_BS @ onehot_SM / onehot_SM.sum(axis=0)
    rise_BJ = mean_BM[:, 1:] - np.maximum(mean_BM[:, :1], chance)
    rise_BJ = np.where(np.abs(rise_BJ) < 1e-12, 0.0, rise_BJ)  # round-off is no rise
    se_BJ = np.broadcast_to(se_J, rise_BJ.shape)
    z_BJ = np.where(rise_BJ > 0, np.inf, np.where(rise_BJ < 0, -np.inf, 0.0))
    np.divide(rise_BJ, se_BJ, out=z_BJ, where=se_BJ > 1e-12)
    best_B = np.argmax(z_BJ, axis=1)
    rows = np.arange(z_BJ.shape[0])
    return rise_BJ[rows, best_B], z_BJ[rows, best_B]


def _counts(successes, trials, em_S) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Exact-match counts per point as float arrays (or both None), checked against ``em``."""
    if (successes is None) != (trials is None):
        raise ValueError("successes and trials must be given together (or neither)")
    if successes is None:
        return None, None
    successes = np.asarray(successes, np.float64).reshape(-1)
    trials = np.asarray(trials, np.float64).reshape(-1)
    if successes.shape != em_S.shape or trials.shape != em_S.shape:
        raise ValueError(f"successes and trials must have one entry per point ({em_S.size}), got "
                         f"{successes.size} and {trials.size}")
    if np.any(trials <= 0) or not np.allclose(successes / trials, em_S, rtol=0, atol=1e-9):
        raise ValueError("em must equal successes / trials, with trials > 0, point by point")
    return successes, trials


def _resampled_em(x_S, em_S, successes, trials, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """([n_boot, S] resampled exact match, the seed draw [n_boot, S] that produced it); the
    counts, if any, checked by ``_counts``."""
    if successes is None:
        pick_BS = resample_seeds(x_S, n_boot, np.random.default_rng(seed))
        return em_S[pick_BS], pick_BS
    s_BS, n_BS, pick_BS = hierarchical_resample(x_S, successes, trials, n_boot, seed, return_index=True)
    return s_BS / n_BS, pick_BS


def _interval(r_B: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval by order statistics (no interpolation, so a ±inf ratio of a pure step
    stays an end point instead of making the bound NaN)."""
    lo, hi = np.quantile(r_B, [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf")
    return float(lo), float(hi)


def _seed_splits(scale_S, x_S, em_S, threshold: float) -> tuple[SeedSplit, ...]:
    """The sizes (in axis order, scale as given) whose seeds fall on both sides of ``threshold``."""
    splits = []
    for x in np.unique(x_S):
        at = x_S == x
        above = int(np.sum(em_S[at] >= threshold))
        if 0 < above < int(at.sum()):
            splits.append(SeedSplit(float(scale_S[at][0]), above, int(at.sum())))
    return tuple(splits)
