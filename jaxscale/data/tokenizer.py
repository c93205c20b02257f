"""Byte-level tokenizer: token = byte value, vocab 256. Lossless, needs no training or download."""

from __future__ import annotations

import numpy as np

BYTE_VOCAB_SIZE = 256


def encode_bytes(data: bytes) -> np.ndarray:
    """Token ids (uint8) of raw bytes."""
    return np.frombuffer(data, dtype=np.uint8).copy()


def encode(text: str) -> np.ndarray:
    """Token ids (uint8) of a string's UTF-8 bytes."""
    return encode_bytes(text.encode("utf-8"))


def decode(tokens) -> str:
    """The string whose UTF-8 bytes are ``tokens`` (invalid sequences shown as U+FFFD)."""
    arr = np.asarray(tokens)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):  # 1.5 read as byte 1; a string failed in numpy
        raise ValueError(f"byte tokens must be whole numbers, got an array of {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= BYTE_VOCAB_SIZE):
        raise ValueError(f"byte tokens must be in [0, 255], got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
