"""Synthetic tasks: seeded, small, correctly labelled, and train/test disjoint (bar the notebook's)."""

import numpy as np
import pytest

from jaxscale.data.tasks import (
    NumberCodec, TaskSplit, check_disjoint, count_overlap, loss_mask, make_task, parity_features, task_names,
)

FIXED = [n for n in task_names() if n != "notebook-arithmetic"]


@pytest.mark.parametrize("name", FIXED)
def test_train_and_test_are_disjoint(name):
    task = make_task(name, seed=3)
    assert count_overlap(task.train, task.test) == 0
    check_disjoint(task)
    assert not task.overlap_by_design


def test_count_overlap_detects_a_leak():
    task = make_task("addition", seed=0, n_train=500, n_test=50)
    leaky = task.test.take(np.arange(10))
    assert count_overlap(leaky, task.test) == 10


def test_notebook_task_is_faithful_and_its_flaw_is_named():
    task = make_task("notebook-arithmetic", seed=0)
    assert task.overlap_by_design and task.vocab_size == 100 and task.seq_len == 5
    assert task.train.num_examples == 300 and task.test.num_examples == 100
    numbers = np.concatenate([task.train.tokens_NT, task.test.tokens_NT]) - 10
    start, step = numbers[:, 0], numbers[:, 1] - numbers[:, 0]
    assert start.min() >= 1 and start.max() <= 14 and step.min() >= 1 and step.max() <= 3
    np.testing.assert_array_equal(numbers[:, 4], start + 4 * step)
    assert task.test.answer_len_N.max() == 1
    assert len({tuple(r) for r in numbers}) <= 42
    assert count_overlap(task.train, task.test) > 0
    with pytest.raises(ValueError, match="also occur in the training split"):
        check_disjoint(task)


@pytest.mark.parametrize("name", task_names())
def test_tasks_are_seeded_small_and_consistent(name):
    a, b, c = make_task(name, seed=1), make_task(name, seed=1), make_task(name, seed=2)
    np.testing.assert_array_equal(a.test.tokens_NT, b.test.tokens_NT)
    assert not np.array_equal(a.test.tokens_NT, c.test.tokens_NT)
    assert a.seq_len <= 64 and a.vocab_size <= 128
    for split in (a.train, a.test):
        assert split.tokens_NT.shape[1] == a.seq_len and split.tokens_NT.max() < a.vocab_size
        mask = loss_mask(split)
        np.testing.assert_array_equal(mask.sum(1), split.answer_len_N)
        # position t is masked in exactly when token t + 1 is an answer token
        t, n = np.nonzero(mask.T)
        rel = t + 1 - split.answer_start_N[n]
        assert np.all((rel >= 0) & (rel < split.answer_len_N[n]))
    if name not in ("notebook-arithmetic", "modular-addition"):
        assert a.test.num_examples >= 1000


@pytest.mark.parametrize("reverse", [False, True])
def test_addition_answers_are_the_sum_digits(reverse):
    task = make_task("addition", seed=0, n_digits=4, reverse=reverse, n_train=200, n_test=100)
    tok = task.test.tokens_NT
    a = tok[:, 0:4] @ 10 ** np.arange(3, -1, -1)
    b = tok[:, 5:9] @ 10 ** np.arange(3, -1, -1)
    assert np.all(tok[:, 4] == task.tokens["+"]) and np.all(tok[:, 9] == task.tokens["="])
    digits = tok[:, 10:15]
    weights = 10 ** (np.arange(5) if reverse else np.arange(4, -1, -1))
    np.testing.assert_array_equal(digits @ weights, a + b)
    np.testing.assert_array_equal(task.test.target_value_N, a + b)
    np.testing.assert_array_equal(task.test.answer_len_N, 5)
    decoded = task.test.codec.decode(task.test.answers_NA(), task.test.answer_len_N)
    np.testing.assert_array_equal(decoded, a + b)


def test_fixed_arithmetic_holds_out_start_step_pairs_and_has_digit_answers():
    task = make_task("arithmetic", seed=0)
    def pairs(split):
        v = split.tokens_NT
        first = v[:, 0:3] @ np.array([100, 10, 1])
        second = v[:, 4:7] @ np.array([100, 10, 1])
        return set(zip(first.tolist(), (second - first).tolist()))
    assert not pairs(task.train) & pairs(task.test)
    assert task.test.max_answer_len == 3
    assert len(pairs(task.test)) == task.test.num_examples == 1000
    assert task.train.num_examples + 1000 == 400 * 24


def test_sparse_parity_labels_frequencies_and_balance():
    task = make_task("sparse-parity", seed=0, n_tasks=8, n_bits=16, k=3, n_train=20000,
                     n_test_per_subtask=50)
    subsets = np.array(task.params["subsets"])
    for split in (task.train, task.test):
        code = split.tokens_NT[:, 0] - 3
        bits = split.tokens_NT[:, 1:17]
        label = np.take_along_axis(bits, subsets[code], 1).sum(1) % 2
        np.testing.assert_array_equal(split.tokens_NT[:, -1], label)
        np.testing.assert_array_equal(split.subtask_N, code)
    counts = np.bincount(task.train.subtask_N, minlength=8)
    expected = task.subtask_probs * task.train.num_examples
    np.testing.assert_allclose(counts, expected, rtol=0.1)
    assert np.all(np.diff(task.subtask_probs) < 0)
    assert np.all(np.bincount(task.test.subtask_N) == 50)
    feats = parity_features(task.test, 8)
    assert feats.shape == (400, 24) and np.all(feats[:, :8].sum(1) == 1)


def test_induction_second_copy_repeats_the_first():
    task = make_task("induction", seed=0, n_symbols=20, copy_len=8, n_train=500, n_test=100)
    tok = task.test.tokens_NT
    np.testing.assert_array_equal(tok[:, :8], tok[:, 9:])
    assert np.all(tok[:, 8] == 20)
    assert all(len(set(r)) == 8 for r in tok[:, :8].tolist())


def test_modular_addition_split_and_labels():
    task = make_task("modular-addition", seed=0, p=23, train_fraction=0.4)
    tok = np.concatenate([task.train.tokens_NT, task.test.tokens_NT])
    np.testing.assert_array_equal(tok[:, 4], (tok[:, 0] + tok[:, 2]) % 23)
    assert task.train.num_examples == round(0.4 * 23 * 23)
    assert len({tuple(r) for r in tok.tolist()}) == 23 * 23


def test_modular_addition_operator_tokens_are_not_numbers():
    # '+' and '=' are tokens p and p+1: read as numbers they would sit within +-2 of the largest
    # answers and count as near misses in the tolerance metric
    task = make_task("modular-addition", seed=0, p=97, train_fraction=0.3)
    codec = task.test.codec
    plus, equals = task.tokens["+"], task.tokens["="]
    decoded = codec.decode(np.array([[0], [96], [plus], [equals]]), np.ones(4))
    np.testing.assert_array_equal(decoded[:2], [0.0, 96.0])
    assert np.isnan(decoded[2:]).all()
    with pytest.raises(ValueError, match="n_values"):
        NumberCodec("digits", n_values=10)


@pytest.mark.parametrize("name,kwargs,match", [
    ("addition", dict(n_digits=0), "n_digits"),
    ("addition", dict(n_digits=12), "n_digits"),
    ("modular-addition", dict(train_fraction=1.5), "train_fraction"),
    ("induction", dict(copy_len=40, n_symbols=10), "copy_len"),
    ("sparse-parity", dict(k=30, n_bits=10), "k="),
    ("arithmetic", dict(n_test=0), "n_test"),
    ("no-such-task", {}, "unknown task"),
    # as `--task-arg` delivers them: a word, NaN, a fraction, a yes/no that is neither
    ("addition", dict(n_digits="abc"), "n_digits must be an integer >= 1, got 'abc'"),
    ("induction", dict(copy_len=float("nan")), "copy_len must be an integer >= 1, got nan"),
    ("sparse-parity", dict(n_bits=2.5), "n_bits must be an integer >= 1, got 2.5"),
    ("addition", dict(reverse="maybe"), "reverse must be true or false, got 'maybe'"),
    ("arithmetic", dict(reverse=1), "reverse must be true or false, got 1"),
])
def test_bad_knobs_raise_value_error_naming_them(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(name, **kwargs)


def test_a_whole_float_knob_is_used_as_the_integer_it_is():
    """``--task-arg n_train=300.0`` arrives as a float; slicing with it failed with a TypeError."""
    task = make_task("addition", n_digits=2.0, n_train=300.0, n_test=50.0)
    assert task.train.num_examples == 300 and task.test.num_examples == 50
    assert task.params["n_digits"] == 2 and isinstance(task.params["n_train"], int)


def test_task_split_validates_layout():
    with pytest.raises(ValueError, match="answer"):
        TaskSplit("x", np.zeros((2, 4)), [0, 1], [1, 1], vocab_size=5, pad_id=0)
    with pytest.raises(ValueError, match="vocab_size"):
        TaskSplit("x", np.full((2, 4), 7), [1, 1], [1, 1], vocab_size=5, pad_id=0)
