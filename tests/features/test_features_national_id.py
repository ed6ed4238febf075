"""Resident ID detection: check character, birth date, boundaries, keyed hashing."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from features.exceptions import IdKeyError
from features.keyed_hash import derive_key, siphash24_u64
from features.national_id import (
    check_char,
    id_text_expr,
    redact_expr,
    subject_keys_expr,
    valid_ids_expr,
)

KEY = b"test-key-0123456789"
VALID = "11010519491231002X"  # the standard's worked example
VALID_DIGIT = "440308199901010012"


def make_id(rng: random.Random) -> str:
    body = (
        f"{rng.choice([11, 31, 44, 65])}{rng.randint(0, 9999):04d}"
        f"{rng.randint(1920, 2010)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        f"{rng.randint(0, 999):03d}"
    )
    return body + check_char(body)


def ids_in(texts: list[str | None]) -> list[list[str] | None]:
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return frame.select(valid_ids_expr("t"))["t"].to_list()


def keys_of(texts: list[str | None], key: bytes = KEY) -> list[list[int] | None]:
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return frame.select(subject_keys_expr("t", key))["subject_keys"].to_list()


def test_fixture_ids_are_valid() -> None:
    assert check_char(VALID[:17]) == "X"
    assert check_char(VALID_DIGIT[:17]) == VALID_DIGIT[17]


def test_valid_ids_found_with_x_any_case() -> None:
    text = f"WHERE a = '{VALID}' OR a = '{VALID.lower()}' OR b = {VALID_DIGIT}"
    assert ids_in([text]) == [[VALID, VALID, VALID_DIGIT]]


@pytest.mark.parametrize(
    "bad",
    [
        VALID[:17] + "1",  # wrong check character
        VALID_DIGIT[:17] + "3",  # wrong check digit
        "99" + VALID[2:17] + check_char("99" + VALID[2:17]),  # no such province
        VALID[:10] + "1332" + VALID[14:17] + check_char(VALID[:10] + "1332" + VALID[14:17]),
        VALID[:6] + "19490230" + VALID[14:17] + check_char(VALID[:6] + "19490230" + VALID[14:17]),
        VALID[:6] + "18000101" + VALID[14:17] + check_char(VALID[:6] + "18000101" + VALID[14:17]),
    ],
)
def test_invalid_ids_rejected(bad: str) -> None:
    assert ids_in([f"x = '{bad}'"]) == [[]]


def test_leap_day() -> None:
    body = "110105200002290" + "01"
    assert ids_in([body + check_char(body)]) == [[body + check_char(body)]]
    body = "110105190002290" + "01"  # 1900 is not a leap year
    assert ids_in([body + check_char(body)]) == [[]]


@pytest.mark.parametrize(
    "text",
    [
        f"9{VALID}",  # preceded by a digit
        f"{VALID_DIGIT}7",  # followed by a digit
        f"{VALID}5",  # X followed by a digit
        f"12{VALID_DIGIT}34",
    ],
)
def test_no_match_inside_longer_digit_runs(text: str) -> None:
    assert ids_in([text]) == [[]]


def test_letters_and_punctuation_are_boundaries() -> None:
    assert ids_in([f"id:{VALID},{VALID_DIGIT}abc"]) == [[VALID, VALID_DIGIT]]


def test_ids_in_parameters() -> None:
    frame = pl.DataFrame(
        {
            "statement": ["SELECT * FROM c WHERE sfz = $1", "SELECT 1"],
            "parameters": [[VALID, "x"], None],
        },
        schema={"statement": pl.String, "parameters": pl.List(pl.String)},
    )
    out = frame.select(subject_keys_expr(id_text_expr(), KEY))["subject_keys"].to_list()
    assert len(out[0]) == 1
    assert out[1] == []


def test_keys_are_deterministic_distinct_and_keyed() -> None:
    rng = random.Random(3)
    ids = [make_id(rng) for _ in range(200)]
    text = " ".join(f"'{i}'" for i in ids)
    first = keys_of([text, text])
    assert first[0] == first[1]
    assert len(first[0]) == len(set(ids))
    assert keys_of([text], KEY)[0] != keys_of([text], b"another-key-0123456")[0]
    # case of X and repetition do not create new subjects
    assert keys_of([f"{VALID} {VALID.lower()} {VALID}"]) == [keys_of([VALID])[0]]


def test_keys_never_contain_the_number() -> None:
    (keys,) = keys_of([VALID_DIGIT])
    assert int(VALID_DIGIT[:17]) not in keys
    assert int(VALID_DIGIT) not in keys


def test_short_key_rejected() -> None:
    with pytest.raises(IdKeyError):
        subject_keys_expr("t", b"short")


def test_siphash_reference_vector() -> None:
    message = np.array([int.from_bytes(bytes(range(8)), "little")], dtype=np.uint64)
    assert int(siphash24_u64(message, bytes(range(16)))[0]) == 0x93F5F5799A932462


def test_derive_key_handles_long_secrets() -> None:
    assert derive_key(b"a" * 100) != derive_key(b"a" * 64)


def test_redaction_hides_literals_and_long_numbers() -> None:
    sql = (
        f"SELECT * FROM c WHERE sfz = '{VALID}' AND tel = 13800138000 /* {VALID_DIGIT} */ LIMIT 20"
    )
    out = pl.select(redact_expr(pl.lit(sql))).item()
    assert VALID not in out and VALID_DIGIT not in out and "13800138000" not in out
    assert out == "SELECT * FROM c WHERE sfz = '?' AND tel = ?   LIMIT 20"
    mysql = pl.select(redact_expr(pl.lit('SELECT "secret" FROM t'), "mysql")).item()
    assert mysql == "SELECT '?' FROM t"
