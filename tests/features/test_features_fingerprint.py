"""Fingerprints: same shape, same fingerprint; literals and comments never survive."""

from __future__ import annotations

import polars as pl
import pytest

from features.exceptions import DialectError
from features.fingerprint import (
    dialect_expr,
    fingerprint_expr,
    fingerprint_id,
    fingerprint_ids,
)


def fp(texts: list[str | None], dialect: str = "postgres") -> list[str | None]:
    return (
        pl.DataFrame({"s": texts}, schema={"s": pl.String})
        .select(fingerprint_expr("s", dialect))["fingerprint"]
        .to_list()
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 987654"),
        ("SELECT * FROM t WHERE n = 'abc'", "SELECT * FROM t WHERE n = 'it''s -- not a comment'"),
        ("SELECT * FROM t WHERE n = E'a\\'b'", "SELECT * FROM t WHERE n = 'x'"),
        ("SELECT $$a 'b' 1$$", "SELECT $fn$ other $$ text $fn$"),
        ("SELECT * FROM t WHERE id = $1", "SELECT * FROM t WHERE id = 42"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN ($1)"),
        ("SELECT  *\n FROM t\tWHERE x = 1.5e3", "SELECT * FROM t WHERE x = .5"),
        ("SELECT 1 /* trace='abc' */", "SELECT 2 -- end"),
        ("SELECT x'1F', B'101'", "SELECT 0x1F, 7"),
        ("SELECT 1;", "SELECT 2"),
        ("INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (3, 'c')"),
    ],
)
def test_same_shape_same_fingerprint(a: str, b: str) -> None:
    fa, fb = fp([a, b])
    assert fa == fb


def test_different_shapes_differ() -> None:
    fa, fb = fp(["SELECT a FROM t WHERE id = 1", "SELECT b FROM t WHERE id = 1"])
    assert fa != fb


def test_quoted_identifiers_keep_their_content_and_case() -> None:
    (out,) = fp(['SELECT "Col 1", "it\'s" FROM "T2" WHERE x = 3'])
    assert out == 'SELECT "Col 1", "it\'s" FROM "T2" WHERE x = ?'


def test_digits_inside_identifiers_stay() -> None:
    (out,) = fp(["SELECT col1 FROM t2 WHERE x = 3"])
    assert out == "SELECT col1 FROM t2 WHERE x = ?"


def test_mysql_double_quotes_and_backslashes_are_strings() -> None:
    a, b = fp(
        [
            "SELECT * FROM `t` WHERE a = \"x\\\"y\" AND b = 'it\\'s'",
            "SELECT * FROM `t` WHERE a = 'z' AND b = \"q\"",
        ],
        "mysql",
    )
    assert a == b == "SELECT * FROM `t` WHERE a = ? AND b = ?"


def test_mysql_hash_comment() -> None:
    (out,) = fp(["SELECT 1 # secret 110105194912310021"], "mysql")
    assert out == "SELECT ?"


def test_postgres_double_quotes_are_identifiers() -> None:
    (pg,) = fp(['SELECT "a" FROM t'])
    (my,) = fp(['SELECT "a" FROM t'], "mysql")
    assert pg == 'SELECT "a" FROM t'
    assert my == "SELECT ? FROM t"


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_truncated_literal_does_not_leak(dialect: str) -> None:
    (out,) = fp(["SELECT * FROM t WHERE n = 'Zhang San lives at No. 5 Some Ro"], dialect)
    assert out == "SELECT * FROM t WHERE n = ?"
    (out,) = fp(["SELECT 1 /* unterminated secret"], dialect)
    assert "secret" not in out


def test_null_stays_null() -> None:
    assert fp([None]) == [None]


def test_fingerprint_id_is_stable_and_64_bit() -> None:
    ids = fingerprint_ids(pl.Series(fp(["SELECT 1", "SELECT 2", None])))
    assert ids[0] == ids[1] == fingerprint_id("SELECT ?")
    assert ids[2] is None
    assert 0 <= ids[0] < 2**64
    assert ids.dtype == pl.UInt64


def test_unknown_dialect() -> None:
    with pytest.raises(DialectError, match="oracle"):
        fingerprint_expr("s", "oracle")


def test_dialect_of_source_format() -> None:
    frame = pl.DataFrame({"source_format": ["mariadb-audit", "pgaudit-json", "other"]})
    assert frame.select(dialect_expr())["dialect"].to_list() == ["mysql", "postgres", "postgres"]


def test_mysql_executable_comments_are_unwrapped() -> None:
    (out,) = fp(["SELECT /*!40001 SQL_NO_CACHE */ * FROM `t` WHERE a = 5"], "mysql")
    assert out == "SELECT SQL_NO_CACHE * FROM `t` WHERE a = ?"
    (out,) = fp(["/*M!100100 SET x = 1 */"], "mysql")
    assert out == "SET x = ?"
