"""Statement fingerprints: the statement's shape with every literal replaced by ``?``.

Two statements that differ only in their literals (strings, numbers, bound-parameter
markers, the length of an ``IN`` list or of a multi-row ``VALUES``) get the same
fingerprint, so the expensive SQL analysis runs once per distinct fingerprint and baselines
can be kept per statement shape. Fingerprints contain no literal and no comment, so they
are safe to print and to use as metric labels.

Everything here is a :class:`polars.Expr` over a whole column (the hot path) except
:func:`fingerprint_ids`, which hashes each *distinct* fingerprint once in Python.

How it works
------------
Rust's regex engine (the one polars uses) has no look-around and no conditional
replacement, so one pass cannot both keep quoted identifiers and replace string literals.
The trick: one alternation regex matches, left to right, quoted identifiers (group ``k``),
comments (group ``c``), string literals, numbers and ``$n`` parameters, and replaces every
match with ``\\x01${k}${c}``. A sentinel followed by a quote is therefore an identifier,
followed by ``/*``, ``--`` or ``#`` a comment, anything else a literal; three cheap passes
resolve them. Scanning left to right in one pass is what makes quotes inside comments,
``--`` inside strings and digits inside identifiers come out right.

Dialects
--------
``postgres``
    ``'...'`` with ``''`` escapes (standard_conforming_strings), ``E'...'`` with backslash
    escapes, ``B'..'``/``X'..'``/``N'..'``/``U&'..'``, ``$$...$$`` and ``$tag$...$tag$``
    dollar quoting, ``"identifiers"``, ``$1`` parameters, ``--`` and ``/* */`` comments.
``mysql`` (MariaDB too)
    ``'...'`` and ``"..."`` are both strings with backslash and doubled-quote escapes,
    `` `identifiers` ``, ``--␠``, ``#`` and ``/* */`` comments; executable comments
    ``/*!40001 SQL_NO_CACHE */`` are unwrapped, not dropped.

Limitations: regex has no back-references, so ``$tag$...$tag$`` closes at the first
non-empty ``$other$`` tag (``$$`` inside it is handled): text between two inner
``$q$...$q$`` of a nested dollar quote is not masked. Nested ``/* /* */ */`` comments close
at the first ``*/``. Unterminated
strings and comments (MariaDB cuts statements at ``server_audit_query_log_limit``) run to
the end of the text, so a truncated literal never leaks into the fingerprint.

Examples
--------
>>> frame = pl.DataFrame({"sql": ["SELECT * FROM t WHERE id = 42 AND name = 'O''Brien'",
...                               "select * from t where id = 7  and name = 'x' -- hi"]})
>>> frame.select(fingerprint_expr("sql")).to_series().to_list()
['SELECT * FROM t WHERE id = ? AND name = ?', 'select * from t where id = ? and name = ?']
"""

from __future__ import annotations

import hashlib
from typing import Final

import polars as pl

from features.exceptions import DialectError

DIALECTS: Final = ("postgres", "mysql")

#: Which SQL dialect each :data:`streams.schema.SOURCE_FORMATS` entry speaks.
SOURCE_DIALECTS: Final = {
    "pgaudit-csv": "postgres",
    "pgaudit-json": "postgres",
    "pgaudit-stderr": "postgres",
    "mariadb-audit": "mysql",
}

#: Marks a match of the first pass; control characters never occur in logged SQL, and
#: :func:`fingerprint_expr` strips any that do before using it.
_SENTINEL: Final = "\x01"

_PG_IDENT: Final = r'"(?:[^"]|"")*"?'
_MY_IDENT: Final = r"`(?:[^`]|``)*`?"
_PG_COMMENT: Final = r"/\*(?s:.*?)(?:\*/|$)|--[^\n]*"
# MySQL needs whitespace after "--" (a--1 is arithmetic there).
_MY_COMMENT: Final = r"/\*(?s:.*?)(?:\*/|$)|--[ \t\r\f][^\n]*|--(?:\n|$)|#[^\n]*"
_PG_STRING: Final = "|".join(
    [
        # E'..' takes backslash escapes; the optional closing quote lets an unterminated
        # (truncated) string run to the end of the text.
        r"\b[Ee]'(?:[^'\\]|\\(?s:.)|'')*'?",
        r"(?:\b[BbXxNn]|\b[Uu]&)?'(?:[^']|'')*'?",
        # $$..$$ closes only at $$, $tag$..$tag$ only at a non-empty tag (see Limitations).
        r"\$\$(?s:.*?)(?:\$\$|$)",
        r"\$[A-Za-z_][A-Za-z0-9_]*\$(?s:.*?)(?:\$[A-Za-z_][A-Za-z0-9_]*\$|$)",
    ]
)
_MY_STRING: Final = "|".join(
    [
        r"(?:\b[BbXxNn]|\b_[A-Za-z0-9]+\s*)?'(?:[^'\\]|\\(?s:.)|'')*'?",
        r'"(?:[^"\\]|\\(?s:.)|"")*"?',
    ]
)
_NUMBER: Final = (
    r"\b0[xX][0-9A-Fa-f]+\b|\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b|\B\.\d+(?:[eE][+-]?\d+)?\b"
)
_PG_PARAM: Final = r"\$\d+"

_IDENT: Final = {"postgres": _PG_IDENT, "mysql": _MY_IDENT}
_IDENT_QUOTE: Final = {"postgres": '"', "mysql": "`"}
_COMMENT: Final = {"postgres": _PG_COMMENT, "mysql": _MY_COMMENT}
_STRING: Final = {"postgres": _PG_STRING, "mysql": _MY_STRING}
_PARAM: Final = {"postgres": _PG_PARAM, "mysql": ""}
_MY_EXECUTABLE_START: Final = r"/\*M?!"
_MY_EXECUTABLE: Final = r"/\*M?![0-9]*((?s:.*?))\*/"
# Rows without these substrings need no capture groups (see mask_literals).
_NEEDS_GROUPS: Final = {"postgres": r'"|/\*|--', "mysql": r"`|/\*|--|#"}

# An IN list or a multi-row VALUES made only of placeholders, whatever its length.
_PLACEHOLDER_TUPLE: Final = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_LIST_RE: Final = rf"(?i)\b(?P<w>IN|VALUES)\s*{_PLACEHOLDER_TUPLE}(?:\s*,\s*{_PLACEHOLDER_TUPLE})*"

#: What a collapsed list looks like in a fingerprint.
COLLAPSED_LIST: Final = "(?+)"


def check_dialect(dialect: str) -> str:
    """Return ``dialect`` if it is one of :data:`DIALECTS`, else raise.

    >>> check_dialect("mysql")
    'mysql'
    >>> check_dialect("oracle")
    Traceback (most recent call last):
    ...
    features.exceptions.DialectError: unknown SQL dialect 'oracle'; expected one of postgres, mysql
    """
    if dialect not in DIALECTS:
        raise DialectError(
            f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}"
        )
    return dialect


def dialect_expr(source_format: str | pl.Expr = "source_format") -> pl.Expr:
    """Map a ``source_format`` column to its SQL dialect (``postgres`` when unknown).

    >>> pl.DataFrame({"source_format": ["mariadb-audit", "pgaudit-csv", None]}).select(
    ...     dialect_expr()).to_series().to_list()
    ['mysql', 'postgres', 'postgres']
    """
    col = pl.col(source_format) if isinstance(source_format, str) else source_format
    return (
        col.replace_strict(SOURCE_DIALECTS, default="postgres", return_dtype=pl.String)
        .fill_null("postgres")
        .alias("dialect")
    )


def first_pass_regex(dialect: str, *, numbers: bool) -> str:
    """The one-pass alternation: identifiers (``k``), comments (``c``), then literals.

    ``numbers=False`` leaves numbers and parameters alone (used by redaction, which keeps
    short numbers readable).

    >>> first_pass_regex("mysql", numbers=False).startswith("(?P<k>`")
    True
    """
    check_dialect(dialect)
    groups = f"(?P<k>{_IDENT[dialect]})|(?P<c>{_COMMENT[dialect]})"
    return f"{groups}|{_literal_regex(dialect, numbers=numbers)}"


def mask_literals(expr: pl.Expr, dialect: str, *, replacement: str, numbers: bool) -> pl.Expr:
    """Replace literals with ``replacement``, drop comments, keep quoted identifiers.

    This is the shared core of :func:`fingerprint_expr` and
    :func:`features.national_id.redact_expr`. Capture groups make a regex pass about three
    times slower, so rows without quoted identifiers or comments (most of them) take a
    capture-free pass; the split is done by nulling the other rows, which string kernels
    skip for free.

    >>> pl.select(mask_literals(pl.lit("SELECT \\"a'b\\", 'x' /* 'c' */ FROM t"), "postgres",
    ...                         replacement="'?'", numbers=False)).item()
    'SELECT "a\\'b", \\'?\\'   FROM t'
    """
    quote = _IDENT_QUOTE[check_dialect(dialect)]
    if dialect == "mysql":
        # /*!40001 SQL_NO_CACHE */ and /*M!100100 ... */ are SQL that MySQL/MariaDB run
        # (mysqldump writes them): unwrap them instead of dropping them as comments.
        has_exec = expr.str.contains(_MY_EXECUTABLE_START)
        unwrapped = pl.when(has_exec).then(expr).str.replace_all(_MY_EXECUTABLE, " ${1} ")
        expr = pl.coalesce(unwrapped, expr)
    needs_groups = expr.str.contains(_NEEDS_GROUPS[dialect])
    slow = (
        pl.when(needs_groups)
        .then(expr)
        .str.replace_all(_SENTINEL, "", literal=True)
        .str.replace_all(first_pass_regex(dialect, numbers=numbers), _SENTINEL + "${k}${c}")
        .str.replace_all(f"{_SENTINEL}(?:{_COMMENT[dialect]})", " ")
        .str.replace_all(_SENTINEL + quote, quote, literal=True)
        .str.replace_all(_SENTINEL, replacement, literal=True)
    )
    fast = (
        pl.when(needs_groups.not_())
        .then(expr)
        .str.replace_all(_literal_regex(dialect, numbers=numbers), replacement, literal=False)
    )
    return pl.coalesce(slow, fast)


def _literal_regex(dialect: str, *, numbers: bool) -> str:
    parts = [_STRING[dialect]]
    if numbers:
        parts.append(_NUMBER)
        if _PARAM[dialect]:
            parts.append(_PARAM[dialect])
    return "|".join(parts)


def fingerprint_expr(col: str | pl.Expr, dialect: str = "postgres") -> pl.Expr:
    """Fingerprint a statement column: literals become ``?``, lists collapse to ``(?+)``.

    Parameters
    ----------
    col
        Column name or expression holding statement text.
    dialect
        ``postgres`` or ``mysql`` (decides which quotes delimit strings).

    Returns
    -------
    polars.Expr
        A string expression named ``fingerprint``; null where the input is null.

    Examples
    --------
    >>> sql = pl.Series("s", [
    ...     "SELECT name FROM t WHERE id IN (1, 2, 3) AND note = E'it\\\\'s' LIMIT $1",
    ...     "SELECT name FROM t WHERE id IN (9) AND note = 'x' LIMIT 10;",
    ...     'SELECT "Col1" FROM t WHERE x = $tag$ 1 $tag$ /* 2 */',
    ... ])
    >>> for fp in pl.select(fingerprint_expr(sql)).to_series():
    ...     print(fp)
    SELECT name FROM t WHERE id IN (?+) AND note = ? LIMIT ?
    SELECT name FROM t WHERE id IN (?+) AND note = ? LIMIT ?
    SELECT "Col1" FROM t WHERE x = ?
    >>> pl.select(fingerprint_expr(pl.lit('INSERT INTO t VALUES (1, "a\\\\"b"), (2, "c")'),
    ...                            "mysql")).item()
    'INSERT INTO t VALUES (?+)'
    """
    expr = pl.col(col) if isinstance(col, str) else col
    return (
        mask_literals(expr, dialect, replacement="?", numbers=True)
        .str.replace_all(_LIST_RE, "${w} " + COLLAPSED_LIST)
        # A lone space is the common case: matching only runs and odd whitespace is ~3x
        # faster than r"\s+", which matches (and rewrites) every single space.
        .str.replace_all(r"\s{2,}|[\t\n\r\f\v]", " ")
        .str.strip_chars("; ")
        .alias("fingerprint")
    )


def fingerprint_id(fingerprint: str) -> int:
    """Stable 64-bit id of one fingerprint: BLAKE2b-64 of its UTF-8 text, big-endian.

    Stable across runs, processes and polars versions (unlike ``Expr.hash``), so ids can
    be stored in baselines and compared after a restart or a replay.

    >>> fingerprint_id("SELECT ?")
    13927515361300711258
    """
    digest = hashlib.blake2b(fingerprint.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def fingerprint_ids(fingerprints: pl.Series) -> pl.Series:
    """:func:`fingerprint_id` of a whole column, hashing each distinct value once.

    >>> fingerprint_ids(pl.Series(["SELECT ?", None, "SELECT ?"])).to_list()
    [13927515361300711258, None, 13927515361300711258]
    """
    distinct = fingerprints.drop_nulls().unique()
    ids = pl.Series([fingerprint_id(f) for f in distinct.to_list()], dtype=pl.UInt64)
    return fingerprints.replace_strict(distinct, ids, default=None, return_dtype=pl.UInt64).alias(
        "fingerprint_id"
    )
