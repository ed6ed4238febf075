"""PRC resident ID numbers in statements and parameters, reduced to keyed hashes.

A resident identity number (GB 11643-1999) has 18 characters: a 6-digit region code, an
8-digit birth date ``YYYYMMDD``, a 3-digit sequence and a check character. The check
character is ``"10X98765432"[sum(d_i * w_i) mod 11]`` with weights
``7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2`` over the first 17 digits; ``X`` (value 10) may
be written lower-case.

A candidate is a *maximal* run of 17 digits followed by a digit or ``X``, so digits inside a
longer run (a 19-digit account number, a timestamp glued to an id) never match. It must then
pass the check character, start with a real province code and carry a real calendar date
between 1900 and 2099: a random 18-digit number passes all three about once in 10^4.

Privacy: raw ID numbers never leave this module. :func:`subject_keys_expr` returns keyed
SipHash-2-4 values of the first 17 digits (which determine the check character), keyed with
:func:`features.keyed_hash.derive_key` of the configured secret. :func:`redact_expr`
produces statement text fit for evidence.

Everything is a polars expression over whole columns; candidate lists are filtered with
``list.eval`` and hashed in one numpy call per batch.

>>> frame = pl.DataFrame({"sql": ["SELECT * FROM c WHERE id_no IN ('11010519491231002X', "
...                               "'110105194912310021', '9911010519491231002X')"]})
>>> frame.select(valid_ids_expr("sql")).item().to_list()
['11010519491231002X']
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from features.fingerprint import mask_literals
from features.keyed_hash import derive_key, siphash24_u64

WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS: Final = "10X98765432"

#: First two digits of every province-level region code (GB/T 2260), including 71 (Taiwan)
#: and 81-83 (Hong Kong, Macao and Taiwan residence permits).
PROVINCE_CODES: Final = (
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
)  # fmt: skip
MIN_BIRTH_YEAR: Final = 1900
MAX_BIRTH_YEAR: Final = 2099

# A maximal digit run of 17+ digits, optionally followed by X and more digits; anything but
# exactly 18 characters is dropped afterwards. Rust regex has no look-behind, but a match
# can only start at the first digit of a run: inside a run shorter than 17 nothing matches,
# and a longer run is consumed whole by the greedy repetition.
_CANDIDATE_RE: Final = r"[0-9]{17,}(?:[Xx][0-9]*)?"


def check_char(first17: str) -> str:
    """The GB 11643-1999 check character of 17 digits (reference implementation).

    >>> check_char("11010519491231002")
    'X'
    """
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def _digit(n: pl.Expr, i: int) -> pl.Expr:
    """The i-th (0-based, from the left) of the 17 digits held in the integer ``n``."""
    return (n // 10 ** (16 - i)) % 10


def is_valid_id_expr(candidate: pl.Expr) -> pl.Expr:
    """Whether each string is a valid 18-character resident ID number.

    >>> s = pl.Series(["11010519491231002X", "11010519491231002x", "110105194912310021",
    ...                "11010519491331002X", "99010519491231002X", "1101051949123100X"])
    >>> pl.select(is_valid_id_expr(pl.lit(s))).to_series().to_list()
    [True, True, False, False, False, False]
    """
    n = candidate.str.slice(0, 17).cast(pl.UInt64, strict=False)
    last = candidate.str.slice(17, 1)
    check_value = (
        pl.when(last.is_in(["X", "x"])).then(10).otherwise(last.cast(pl.Int64, strict=False))
    )
    total = pl.sum_horizontal([_digit(n, i) * w for i, w in enumerate(WEIGHTS)])
    # "10X98765432"[m] as a number is (12 - m) mod 11, with X standing for 10.
    expected = (12 - total % 11) % 11
    ymd = (n // 1_000) % 100_000_000
    year, month, day = ymd // 10_000, (ymd // 100) % 100, ymd % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = (
        pl.when(month == 2)
        .then(28 + leap.cast(pl.Int64))
        .when(month.is_in([4, 6, 9, 11]))
        .then(30)
        .otherwise(31)
    )
    return (
        (candidate.str.len_bytes() == 18)
        & (check_value == expected)
        & (n // 10**15).is_in(PROVINCE_CODES)
        & year.is_between(MIN_BIRTH_YEAR, MAX_BIRTH_YEAR)
        & month.is_between(1, 12)
        & day.is_between(1, month_days)
    ).fill_null(False)


def candidates_expr(text: str | pl.Expr) -> pl.Expr:
    """All maximal 18-character digit/X runs in ``text`` (unvalidated), as a list column.

    >>> pl.select(candidates_expr(pl.lit("a 11010519491231002X b 1110105194912310021 c"))
    ...           ).item().to_list()
    ['11010519491231002X']
    """
    expr = pl.col(text) if isinstance(text, str) else text
    return expr.str.extract_all(_CANDIDATE_RE).list.eval(
        pl.element().filter(pl.element().str.len_bytes() == 18)
    )


def valid_ids_expr(text: str | pl.Expr) -> pl.Expr:
    """Valid ID numbers in ``text``, upper-cased. For tests and offline use only: never
    put the result in the detector's output (see :func:`subject_keys_expr`).
    """
    return candidates_expr(text).list.eval(
        pl.element().filter(is_valid_id_expr(pl.element())).str.to_uppercase()
    )


def id_text_expr(
    statement: str | pl.Expr = "statement", parameters: str | pl.Expr = "parameters"
) -> pl.Expr:
    """Statement text and bound parameters joined into one searchable string.

    >>> pl.select(id_text_expr(pl.lit("SELECT $1"), pl.lit(["a", "b"]))).item()
    'SELECT $1\\na\\nb'
    """
    stmt = pl.col(statement) if isinstance(statement, str) else statement
    params = pl.col(parameters) if isinstance(parameters, str) else parameters
    return pl.concat_str([stmt, params.list.join("\n")], separator="\n", ignore_nulls=True).alias(
        "id_text"
    )


def subject_keys_expr(text: str | pl.Expr, id_key: bytes) -> pl.Expr:
    """Distinct keyed hashes (``list[u64]``) of the valid ID numbers in ``text``.

    Parameters
    ----------
    text
        Column to search, typically :func:`id_text_expr` (statement plus parameters).
    id_key
        Secret of at least 16 bytes; the same secret always gives the same keys.

    Examples
    --------
    >>> texts = pl.Series(["WHERE id = '11010519491231002x' OR id = '11010519491231002X'",
    ...                    "WHERE id = '110105194912310021'", None])
    >>> keys = pl.select(subject_keys_expr(pl.lit(texts), b"k" * 16)).to_series()
    >>> keys.list.len().to_list()
    [1, 0, None]
    """
    sip_key = derive_key(id_key)

    def _hash(words: pl.Series) -> pl.Series:
        hashed = siphash24_u64(words.to_numpy().astype(np.uint64, copy=False), sip_key)
        return pl.Series(words.name, hashed, dtype=pl.UInt64)

    return (
        candidates_expr(text)
        .list.eval(
            pl.element()
            .filter(is_valid_id_expr(pl.element()))
            .str.slice(0, 17)
            .cast(pl.UInt64)
            .map_batches(_hash, return_dtype=pl.UInt64, is_elementwise=True)
            .unique(maintain_order=True)
        )
        .alias("subject_keys")
    )


def redact_expr(col: str | pl.Expr, dialect: str = "postgres", *, min_digits: int = 5) -> pl.Expr:
    """Statement text safe to show as evidence: literals and long digit runs masked.

    String literals become ``'?'``, comments are dropped (they can carry personal data
    too) and any run of ``min_digits`` or more digits becomes ``?`` (ID, phone and card
    numbers written as bare numbers). Short numbers such as ``LIMIT 50`` stay readable.

    >>> pl.select(redact_expr(pl.lit(
    ...     "SELECT * FROM c WHERE sfz = '11010519491231002X' OR tel = 13800138000 LIMIT 50"
    ... ))).item()
    "SELECT * FROM c WHERE sfz = '?' OR tel = ? LIMIT 50"
    """
    expr = pl.col(col) if isinstance(col, str) else col
    return (
        mask_literals(expr, dialect, replacement="'?'", numbers=False)
        .str.replace_all(f"[0-9]{{{min_digits},}}", "?")
        .alias("statement_redacted")
    )
