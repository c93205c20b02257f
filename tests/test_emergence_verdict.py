"""The emergence verdict (is a jump in the model or in the metric, and do the seeds settle it?)
and the sharpness scores behind it, on hand-built and simulated series."""

import math

import numpy as np
import pytest

from jaxscale.fit.emergence import (
    VERDICT_AGREEMENT, VERDICTS, SeedSplit, breakthroughness, emergence_verdict, linearity, sharpness_ratio,
)
from jaxscale.fit.emergence.resample import resample_seeds


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---- sharpness ---------------------------------------------------------------------------------

def test_breakthroughness_ranks_step_above_ramp():
    ramp = np.linspace(0, 1, 9)
    step = np.r_[np.zeros(5), np.ones(4)]
    soft_step = sigmoid(4 * (np.arange(9) - 4.0))
    assert breakthroughness(ramp) == pytest.approx(8.0)       # m - 1 for equal steps
    assert breakthroughness(step) > breakthroughness(soft_step) > breakthroughness(ramp)
    assert linearity(ramp) == pytest.approx(8.0)
    assert linearity(step) == pytest.approx(math.sqrt(8))
    assert breakthroughness(ramp[::-1]) == pytest.approx(-8.0)  # getting worse is negative
    assert sharpness_ratio(ramp) == pytest.approx(1.0)


def test_verdicts():
    # one model per decade over 8 decades: the grid spans the flat parts on both sides of the
    # EM knee, as a real sweep does (on a grid inside the knee no series looks sharp)
    scale = np.logspace(2, 10, 9)
    # Schaeffer: per-token loss a power law -> EM = p^L sharp, loss smooth: metric-induced
    loss = (scale / 1e4) ** -0.5
    em = np.exp(-10 * loss)
    v = emergence_verdict(scale, em, loss)
    assert v.label == "metric-induced", v
    # a real transition: the loss itself drops in one step
    loss_step = np.where(scale < 1e6, 2.0, 0.01)
    em_step = np.exp(-10 * loss_step)
    assert emergence_verdict(scale, em_step, loss_step).label == "sharp under both"
    # a ramp in EM
    assert emergence_verdict(scale, np.linspace(0.1, 0.9, 9), loss).label == "smooth"


# The emergence smoke run's transition study (2-digit addition, 20 training steps): exact-match
# successes of 200 test sums per seed, 3 seeds at each of 4 sizes, and the answer NLL per token.
# Nothing was learned: exact match 0.008 / 0.018 / 0.007 / 0.015, which scored a sharpness of -0.39
# and read "smooth, settled in 98% of resamples".
SMOKE_SCALE = np.repeat([3902.0, 13934.0, 26638.0, 102414.0], 3)
SMOKE_SUCCESSES = np.array([0, 1, 4, 3, 6, 2, 0, 4, 0, 2, 4, 3], float)
SMOKE_NLL = np.array([2.305, 2.285, 2.255, 2.021, 2.024, 2.022, 2.041, 2.028, 2.029, 1.761, 1.775, 1.794])


def test_verdict_says_no_transition_when_exact_match_stays_on_its_floor():
    n = np.full(SMOKE_SCALE.size, 200.0)
    em = SMOKE_SUCCESSES / n
    v = emergence_verdict(SMOKE_SCALE, em, SMOKE_NLL, successes=SMOKE_SUCCESSES, trials=n, n_boot=300)
    assert v.label == "no transition", v
    assert v.em_sharpness < 0 and v.em_rise == pytest.approx(0.01) and v.em_rise_z < v.rise_z == 3.0
    # the bootstrap counts the outcome too, and a floor-level series settles on it
    assert dict(zip(VERDICTS, v.label_share))["no transition"] == v.agreement >= VERDICT_AGREEMENT
    assert v.settled and v.as_dict()["label_share"]["no transition"] == v.agreement
    # without counts the seed spread alone is the yardstick, with the same outcome
    assert emergence_verdict(SMOKE_SCALE, em, SMOKE_NLL).label == "no transition"
    # a series that falls, or stays at 0, never rises: "no transition" even with one seed per size
    scale = np.logspace(2, 10, 9)
    loss = (scale / 1e4) ** -0.5
    assert emergence_verdict(scale, np.linspace(0.9, 0.1, 9), loss).label == "no transition"
    assert emergence_verdict(scale, np.zeros(9), loss).label == "no transition"


def test_a_small_rise_well_above_the_noise_is_a_transition_to_judge():
    """The criterion is noise, not level: exact match from 0.001 to 0.05 over 3 seeds x 2,000
    items is far outside the floor's noise, and is then labelled by its sharpness as before; so
    is a rise where only the largest size's seeds split (the largest seed spread there is the
    rise itself, not noise)."""
    scale = np.repeat(np.logspace(4, 7, 7), 3)
    n = np.full(scale.size, 2000.0)
    s = np.round(np.repeat(np.linspace(0.001, 0.05, 7), 3) * n)
    loss = 3 * (scale / 1e4) ** -0.2
    v = emergence_verdict(scale, s / n, loss, successes=s, trials=n)
    assert v.label == "smooth" and v.em_rise_z > 10, v
    scale, em, nll, s, n = _seed_split_study((0, 0, 0, 0, 0, 1, 2))
    v = emergence_verdict(scale, em, nll, successes=s, trials=n)
    assert v.label != "no transition" and v.em_rise_z > v.rise_z, v
    with pytest.raises(ValueError, match="rise_z must be >= 0"):
        emergence_verdict(scale, em, nll, rise_z=-1.0)


def _seed_split_study(learners_per_size=(0, 0, 0, 1, 2, 3, 3), seeds=3, n=1000):
    """Per seed, a model either learns the task (EM 1, NLL ~0) or not (EM ~0.08, NLL ~0.85), like
    two-layer models on 2-digit addition: ``learners_per_size[i]`` of the seeds at size i learn."""
    scale, em, nll = [], [], []
    for i, k in enumerate(learners_per_size):
        for j in range(seeds):
            learned = j < k
            scale.append(10 ** (3.5 + 0.25 * i))
            em.append(1.0 if learned else 0.08 - 0.01 * (j % 2))
            nll.append(0.001 if learned else 0.85 - 0.02 * i)
    scale, em = np.array(scale), np.array(em)
    return scale, em, np.array(nll), np.round(em * n), np.full(em.size, float(n))


def test_verdict_bootstrap_settles_a_clean_series_and_keeps_the_point_verdict():
    scale = np.repeat(np.logspace(2, 10, 9), 4)
    loss = (scale / 1e4) ** -0.5 * np.exp(np.random.default_rng(0).normal(0, 0.02, scale.size))
    em = np.exp(-10 * loss)
    s, n = np.round(em * 2000), np.full(em.size, 2000.0)
    em = s / n
    plain = emergence_verdict(scale, em, loss)
    v = emergence_verdict(scale, em, loss, successes=s, trials=n, n_boot=300, seed=1)
    assert v.label == plain.label == "metric-induced"
    assert (v.em_sharpness, v.continuous_sharpness) == (plain.em_sharpness, plain.continuous_sharpness)
    assert v.n_boot == 300 and sum(v.label_share) == pytest.approx(1.0)
    assert v.settled and v.agreement >= VERDICT_AGREEMENT, v
    assert v.em_sharpness_ci[0] <= v.em_sharpness <= v.em_sharpness_ci[1]
    assert v.continuous_sharpness_ci[0] <= v.continuous_sharpness <= v.continuous_sharpness_ci[1]
    assert v.seed_splits == () and math.isnan(plain.agreement) and plain.settled is None
    # the same seed gives the same replicates
    assert emergence_verdict(scale, em, loss, successes=s, trials=n, n_boot=300, seed=1) == v


def test_verdict_is_not_settled_when_seeds_split_at_the_transition():
    scale, em, nll, s, n = _seed_split_study()
    v = emergence_verdict(scale, em, nll, successes=s, trials=n, n_boot=500)
    sizes = np.unique(scale)
    assert v.seed_splits == (SeedSplit(sizes[3], 1, 3), SeedSplit(sizes[4], 2, 3))
    assert not v.settled and v.agreement < VERDICT_AGREEMENT, v
    assert sorted(x > 0 for x in v.label_share).count(True) >= 2  # resamples reach other labels
    # the seed level alone (no counts) resamples too, and splits need no bootstrap
    assert emergence_verdict(scale, em, nll, n_boot=200).n_boot == 200
    assert emergence_verdict(scale, em, nll).seed_splits == v.seed_splits
    # where every seed of a size agrees, no size is split
    scale, em, nll, s, n = _seed_split_study((0, 0, 0, 0, 3, 3, 3))
    assert emergence_verdict(scale, em, nll).seed_splits == ()


def test_verdict_bootstrap_rejects_inconsistent_counts():
    scale, em, nll, s, n = _seed_split_study()
    with pytest.raises(ValueError, match="successes and trials must be given together"):
        emergence_verdict(scale, em, nll, successes=s, n_boot=10)
    with pytest.raises(ValueError, match="em must equal successes / trials"):
        emergence_verdict(scale, em, nll, successes=s + 5, trials=n, n_boot=10)
    with pytest.raises(ValueError, match="one entry per point"):
        emergence_verdict(scale, em, nll, successes=s[:-1], trials=n[:-1], n_boot=10)
    with pytest.raises(ValueError, match="ci must lie in"):
        emergence_verdict(scale, em, nll, n_boot=10, ci=1.5)
    with pytest.raises(ValueError, match="n_boot must be >= 0"):
        emergence_verdict(scale, em, nll, n_boot=-1)
    with pytest.raises(ValueError, match="split_threshold must lie in"):
        emergence_verdict(scale, em, nll, split_threshold=0.0)


def test_resample_seeds_draws_within_each_scale():
    x = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    pick = resample_seeds(x, 400, np.random.default_rng(0))
    assert pick.shape == (400, 6)
    np.testing.assert_array_equal(x[pick], np.broadcast_to(x, pick.shape))
    assert set(np.unique(pick[:, 0])) == {0, 1, 2} and set(np.unique(pick[:, 5])) == {5}
