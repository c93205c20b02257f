"""Metrics on hand-built per-example outputs."""

import math

import numpy as np
import pytest

from jaxscale.evaluate import PerExampleOutputs
from jaxscale.metrics import (
    Z95, brier_score, edit_distance_N, exact_match, metric_table, metric_tables_by_subtask,
    predicted_exact_match, tolerance_match, token_accuracy, wilson_interval,
)


def outputs(pred, target, logprob=None, correct=None, **kw):
    pred, target = np.asarray(pred, np.int32), np.asarray(target, np.int32)
    n, a = target.shape
    length = kw.pop("answer_len_N", np.full(n, a))
    return PerExampleOutputs(
        task="t", vocab_size=kw.pop("vocab_size", 10), answer_len_N=np.asarray(length, np.int32),
        target_NA=target, pred_NA=pred,
        token_logprob_NA=np.zeros((n, a), np.float32) if logprob is None else np.asarray(
            logprob, np.float32),
        token_correct_NA=(pred == target) if correct is None else np.asarray(correct, bool), **kw)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (37, 1000), (500, 1000)])
def test_wilson_interval_matches_closed_form(k, n):
    lo, hi = wilson_interval(k, n)
    # the Wilson bounds are the roots p of (p_hat - p)^2 = z^2 p (1 - p) / n
    p_hat, z2 = k / n, Z95 ** 2
    roots = np.roots([1 + z2 / n, -(2 * p_hat + z2 / n), p_hat ** 2])
    np.testing.assert_allclose(sorted(roots.real), [lo, hi], atol=1e-12)
    if k == 0:
        assert lo == 0 and hi == pytest.approx(z2 / (n + z2))


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_exact_match_token_accuracy_and_edit_distance():
    target = [[1, 2, 3], [1, 2, 3], [1, 2, 3], [4, 5, 6]]
    pred = [[1, 2, 3], [1, 3, 3], [2, 3, 0], [4, 5, 6]]
    o = outputs(pred, target)
    em = exact_match(o)
    assert (em.successes, em.n, em.rate) == (2, 4, 0.5)
    assert token_accuracy(o).rate == pytest.approx(8 / 12)
    # one substitution -> 1/3; [2,3,0] vs [1,2,3]: delete 1, insert 0 -> 2/3 (Hamming would say 1)
    np.testing.assert_allclose(edit_distance_N(o), [0, 1 / 3, 2 / 3, 0])


def test_slots_past_an_answer_are_ignored():
    o = outputs([[1, -1], [2, 5]], [[1, -1], [2, 3]], answer_len_N=[1, 2])
    assert exact_match(o).rate == 0.5
    assert token_accuracy(o).n == 3
    np.testing.assert_allclose(edit_distance_N(o), [0, 0.5])


def test_tolerance_match_is_the_notebooks_plus_minus_two():
    o = outputs([[0]] * 4, [[0]] * 4, target_value_N=np.array([10.0, 10, 10, 10]),
                pred_value_N=np.array([12.0, 7, np.nan, 8]))
    assert tolerance_match(o).successes == 2
    assert tolerance_match(o, tolerance=3).successes == 3
    assert tolerance_match(outputs([[0]], [[0]])) is None


def test_brier_score_bounds():
    V = 4
    perfect = outputs([[2]], [[2]], answer_probs_NV=np.eye(V, dtype=np.float32)[[2]])
    uniform = outputs([[0]], [[2]], answer_probs_NV=np.full((1, V), 1 / V, np.float32))
    assert brier_score(perfect) == 0.0
    assert brier_score(uniform) == pytest.approx(1 - 1 / V)
    assert brier_score(outputs([[1, 2]], [[1, 2]])) is None


def test_predicted_exact_match_is_product_of_per_position_accuracies():
    # position accuracies 1.0, 0.5, 0.75 over four examples -> predicted EM 0.375
    correct = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 1]], bool)
    o = outputs(np.zeros((4, 3)), np.zeros((4, 3)), correct=correct)
    assert predicted_exact_match(o) == pytest.approx(1.0 * 0.5 * 0.75)


def test_metric_table_side_by_side_and_by_subtask():
    logprob = np.log(np.array([[0.5, 0.5], [1.0, 0.25]]))
    o = outputs([[1, 2], [3, 4]], [[1, 2], [3, 5]], logprob=logprob,
                subtask_N=np.array([0, 1], np.int32))
    t = metric_table(o)
    assert t.answer_log_likelihood == pytest.approx(math.log(0.25))
    assert t.answer_probability == pytest.approx(0.25)
    assert t.answer_nll_per_token == pytest.approx(-logprob.sum() / 4)
    d = t.as_dict()
    for key in ("exact_match", "exact_match_lo", "exact_match_hi", "exact_match_n",
                "token_accuracy", "edit_distance", "brier", "predicted_exact_match"):
        assert key in d
    by = metric_tables_by_subtask(o)
    assert by[0].exact_match.rate == 1.0 and by[1].exact_match.rate == 0.0
    with pytest.raises(ValueError, match="subtask"):
        metric_tables_by_subtask(outputs([[1]], [[1]]))
