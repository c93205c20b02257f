"""Metrics over per-example outputs: discontinuous and continuous ones, side by side.

Everything here is a pure function of a :class:`~jaxscale.evaluate.PerExampleOutputs`, so every
metric can be recomputed from saved outputs without retraining. The point of keeping them side by
side (Schaeffer et al. 2023): exact match of an L-token answer behaves like p^L in the per-token
accuracy p, and can look sudden while the per-token metrics improve smoothly. Reporting the
exact match *predicted* from per-position accuracies (Π_t p_t) next to the observed one shows how
far the independence assumption behind p^L holds (carries in addition correlate errors).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxscale.evaluate import PerExampleOutputs

__all__ = [
    "Z95", "Proportion", "wilson_interval", "proportion", "exact_match_N", "exact_match",
    "tolerance_match", "token_accuracy", "teacher_forced_token_accuracy", "edit_distance_N",
    "answer_log_likelihood_N", "brier_score", "predicted_exact_match", "MetricTable",
    "metric_table", "metric_tables_by_subtask",
]

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (arrays broadcast).

    centre = (p̂ + z²/2n)/(1 + z²/n), half-width = z·sqrt(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n). Unlike the
    normal interval it stays inside [0, 1] and is not degenerate at 0 or n successes, which is
    where emergence curves spend most of their points.
    """
    k = np.asarray(successes, np.float64)
    n = np.asarray(n, np.float64)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("wilson_interval needs n > 0 and 0 <= successes <= n")
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Proportion:
    """successes out of n, the rate, and its Wilson 95% interval."""

    successes: float
    n: int
    rate: float
    lo: float
    hi: float


def proportion(successes: float, n: int) -> Proportion:
    lo, hi = wilson_interval(successes, n)
    return Proportion(float(successes), int(n), float(successes) / n, float(lo), float(hi))


def exact_match_N(o: PerExampleOutputs) -> np.ndarray:
    """bool [N]: the greedy answer equals the gold answer token for token."""
    return np.all((o.pred_NA == o.target_NA) | ~o.inside_NA, axis=1)


def exact_match(o: PerExampleOutputs) -> Proportion:
    return proportion(int(exact_match_N(o).sum()), o.num_examples)


def tolerance_match(o: PerExampleOutputs, tolerance: float = 2.0) -> Proportion | None:
    """The notebook's metric: |predicted number − target| ≤ tolerance (None when the task's
    answers are not numbers). A prediction that is not a number never matches."""
    if o.pred_value_N is None or o.target_value_N is None:
        return None
    diff_N = np.abs(o.pred_value_N - o.target_value_N)
    ok_N = np.where(np.isnan(diff_N), False, diff_N <= tolerance)
    return proportion(int(ok_N.sum()), o.num_examples)


def token_accuracy(o: PerExampleOutputs) -> Proportion:
    """Greedy per-token (per-digit) accuracy, pooled over all answer tokens."""
    inside = o.inside_NA
    return proportion(int(((o.pred_NA == o.target_NA) & inside).sum()), int(inside.sum()))


def teacher_forced_token_accuracy(o: PerExampleOutputs) -> Proportion:
    """Share of answer tokens that are the argmax given the gold prefix."""
    return proportion(int(o.token_correct_NA.sum()), int(o.inside_NA.sum()))


def edit_distance_N(o: PerExampleOutputs) -> np.ndarray:
    """Levenshtein distance between greedy and gold answers, divided by the gold length
    (0 = exact, 1 = every token wrong); one dynamic programme per distinct answer length,
    vectorised over the examples of that length."""
    out_N = np.zeros(o.num_examples)
    for length in np.unique(o.answer_len_N):
        rows = np.flatnonzero(o.answer_len_N == length)
        a_NL, b_NL = o.pred_NA[rows, :length], o.target_NA[rows, :length]
        prev_NL = np.broadcast_to(np.arange(length + 1), (rows.size, length + 1)).copy()
        for i in range(1, length + 1):
            cur_NL = np.empty_like(prev_NL)
            cur_NL[:, 0] = i
            for j in range(1, length + 1):
                sub = prev_NL[:, j - 1] + (a_NL[:, i - 1] != b_NL[:, j - 1])
                cur_NL[:, j] = np.minimum(np.minimum(prev_NL[:, j] + 1, cur_NL[:, j - 1] + 1), sub)
            prev_NL = cur_NL
        out_N[rows] = prev_NL[:, length] / length
    return out_N


def answer_log_likelihood_N(o: PerExampleOutputs) -> np.ndarray:
    """Teacher-forced log p(answer | prompt) per example, summed over answer tokens (nats)."""
    return np.sum(np.where(o.inside_NA, o.token_logprob_NA, 0.0), axis=1, dtype=np.float64)


def brier_score(o: PerExampleOutputs) -> float | None:
    """Multi-class Brier score Σ_v (p_v − 1[v = y])², averaged over examples; one-token answers
    only (None otherwise). 0 is perfect; a uniform guess over V scores 1 − 1/V."""
    if o.answer_probs_NV is None:
        return None
    probs_NV = o.answer_probs_NV.astype(np.float64)
    onehot_NV = np.zeros_like(probs_NV)
    onehot_NV[np.arange(o.num_examples), o.target_NA[:, 0]] = 1.0
    return float(np.mean(np.sum((probs_NV - onehot_NV) ** 2, axis=1)))


def predicted_exact_match(o: PerExampleOutputs) -> float:
    """Exact match predicted from per-position teacher-forced accuracies p_t as if errors were
    independent: mean over examples of Π_{t < L_i} p_t (= p^L for a constant per-token p)."""
    inside = o.inside_NA
    count_A = inside.sum(axis=0)
    p_A = np.where(count_A > 0, (o.token_correct_NA & inside).sum(axis=0) / np.maximum(count_A, 1),
                   1.0)
    log_p_A = np.log(np.maximum(p_A, 1e-300))
    return float(np.mean(np.exp(np.sum(np.where(inside, log_p_A[None, :], 0.0), axis=1))))


@dataclasses.dataclass(frozen=True)
class MetricTable:
    """Every metric of one (model, task) evaluation. Log-likelihoods are in nats; ``None`` marks a
    metric that does not apply (tolerance: non-numeric answers; Brier: multi-token answers)."""

    task: str
    n: int
    answer_len: float
    exact_match: Proportion
    tolerance_match: Proportion | None
    token_accuracy: Proportion
    teacher_forced_token_accuracy: Proportion
    edit_distance: float
    answer_log_likelihood: float
    answer_nll_per_token: float
    answer_probability: float
    brier: float | None
    predicted_exact_match: float

    def as_dict(self) -> dict:
        """Flat JSON-ready dict (proportions expand to rate, lo, hi, successes, n)."""
        out: dict = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Proportion):
                for k, v in dataclasses.asdict(value).items():
                    out[f"{f.name}" if k == "rate" else f"{f.name}_{k}"] = v
            else:
                out[f.name] = value
        return out


def metric_table(o: PerExampleOutputs, tolerance: float = 2.0) -> MetricTable:
    """All metrics of ``o`` side by side."""
    if o.num_examples == 0:
        raise ValueError("outputs have no examples")
    ll_N = answer_log_likelihood_N(o)
    return MetricTable(
        task=o.task, n=o.num_examples, answer_len=float(o.answer_len_N.mean()),
        exact_match=exact_match(o), tolerance_match=tolerance_match(o, tolerance),
        token_accuracy=token_accuracy(o),
        teacher_forced_token_accuracy=teacher_forced_token_accuracy(o),
        edit_distance=float(edit_distance_N(o).mean()),
        answer_log_likelihood=float(ll_N.mean()),
        answer_nll_per_token=float(-ll_N.sum() / o.answer_len_N.sum()),
        answer_probability=float(np.mean(np.exp(ll_N))),
        brier=brier_score(o), predicted_exact_match=predicted_exact_match(o))


def metric_tables_by_subtask(o: PerExampleOutputs, tolerance: float = 2.0
                             ) -> dict[int, MetricTable]:
    """One table per subtask label (sparse parity's per-subtask transitions)."""
    if o.subtask_N is None:
        raise ValueError(f"outputs of task {o.task!r} carry no subtask labels")
    return {int(s): metric_table(o.select(o.subtask_N == s), tolerance)
            for s in np.unique(o.subtask_N)}


