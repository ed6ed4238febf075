"""Keyed 64-bit hashing of whole columns: SipHash-2-4 vectorised with numpy.

The detector counts *distinct data subjects* (ID numbers) without ever holding the numbers
themselves, so it keeps a keyed hash of each. The hash must be

* keyed, so whoever reads the detector's output cannot brute-force the ~10^10 plausible ID
  numbers back from an unkeyed hash;
* deterministic for a given key, so a replay of the same logs reproduces the same keys and
  baselines survive restarts (``Expr.hash`` changes between polars versions);
* vectorised, because high-cardinality IDs (an enumeration is one new ID per statement)
  would make a per-value Python call the bottleneck.

SipHash-2-4 (Aumasson & Bernstein, 2012) is the standard keyed PRF for short inputs; here
it is specialised to one 8-byte little-endian message word, with numpy's wrapping ``uint64``
arithmetic. The reference vector (key ``00..0f``, message ``00..07``) is checked below.

Key handling
------------
:func:`derive_key` turns a configured secret of any length (at least 16 bytes) into the two
64-bit SipHash key words with keyed BLAKE2b, so a passphrase-like secret is acceptable and
keys for different purposes stay separate (``purpose``). :func:`random_key` gives the
per-process random default: subject keys are then comparable only within one process run.

>>> key = bytes(range(16))
>>> hex(int(siphash24_u64(np.array([0x0706050403020100], dtype=np.uint64), key)[0]))
'0x93f5f5799a932462'
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

import numpy as np

from features.exceptions import IdKeyError

#: Shortest configured secret accepted by :func:`derive_key` (128 bits).
MIN_KEY_BYTES: Final = 16

_MASK64: Final = (1 << 64) - 1
_INIT: Final = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)
# Final block of an 8-byte message: the length (8) in the top byte, no leftover bytes.
_LAST_BLOCK: Final = np.uint64(8 << 56)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _sipround(
    v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, v3: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    v0 = v0 + v1
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = v2 + v3
    v3 = _rotl(v3, 16) ^ v2
    v0 = v0 + v3
    v3 = _rotl(v3, 21) ^ v0
    v2 = v2 + v1
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24_u64(words: np.ndarray, key: bytes) -> np.ndarray:
    """SipHash-2-4 of each ``uint64`` in ``words`` taken as an 8-byte little-endian message.

    Parameters
    ----------
    words
        Messages, any integer dtype castable to ``uint64``.
    key
        Exactly 16 bytes (the raw SipHash key; see :func:`derive_key`).

    Returns
    -------
    numpy.ndarray
        ``uint64`` hashes, same shape as ``words``.

    Examples
    --------
    >>> siphash24_u64(np.array([1, 1, 2], dtype=np.uint64), bytes(16)).tolist()[0:2] == [
    ...     siphash24_u64(np.array([1], dtype=np.uint64), bytes(16))[0]] * 2
    True
    """
    if len(key) != 16:
        raise IdKeyError(f"SipHash needs a 16-byte key, got {len(key)} bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    m = np.asarray(words).astype(np.uint64, copy=False)
    shape = m.shape
    v0 = np.full(shape, k0 ^ _INIT[0], dtype=np.uint64)
    v1 = np.full(shape, k1 ^ _INIT[1], dtype=np.uint64)
    v2 = np.full(shape, k0 ^ _INIT[2], dtype=np.uint64)
    v3 = np.full(shape, k1 ^ _INIT[3], dtype=np.uint64) ^ m
    for _ in range(2):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= m
    v3 ^= _LAST_BLOCK
    for _ in range(2):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= _LAST_BLOCK
    v2 ^= np.uint64(0xFF)
    for _ in range(4):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def derive_key(secret: bytes, purpose: str = "subject-id") -> bytes:
    """Derive the 16-byte SipHash key for ``purpose`` from a configured secret.

    >>> derive_key(b"0123456789abcdef") == derive_key(b"0123456789abcdef")
    True
    >>> derive_key(b"short")
    Traceback (most recent call last):
    ...
    features.exceptions.IdKeyError: the ID-hashing key must be at least 16 bytes, got 5
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_KEY_BYTES:
        size = len(secret) if isinstance(secret, bytes | bytearray) else type(secret).__name__
        raise IdKeyError(f"the ID-hashing key must be at least {MIN_KEY_BYTES} bytes, got {size}")
    # BLAKE2b keys are at most 64 bytes: longer secrets are hashed down first, not cut.
    material = bytes(secret) if len(secret) <= 64 else hashlib.blake2b(secret).digest()
    return hashlib.blake2b(
        purpose.encode("utf-8"), key=material, digest_size=16, person=b"exfil-detector"
    ).digest()


def random_key() -> bytes:
    """A fresh 32-byte random secret: the documented default when none is configured.

    Keys made with it differ on every run, so subject keys are then comparable only within
    one process; configure a fixed secret to make replays and restarts reproducible.

    >>> len(random_key())
    32
    """
    return secrets.token_bytes(32)
