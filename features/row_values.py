"""Per-event values the fingerprint hides, and the row-count estimate.

A fingerprint reads ``LIMIT ?``: the number differs per event, so it is read back from the
statement text (or, for ``LIMIT $2``, from the bound parameters) with vectorised regexes,
only on rows whose analysis says there is a limit. The *last* ``LIMIT`` of the text is
taken: the outermost one comes last in SQL (only ``FOR UPDATE``, MariaDB ``INTO OUTFILE``
or a trailing comment may follow it).

:func:`rows_estimate_exprs` then sizes each event (see :data:`ROWS_ESTIMATE_SOURCES`).
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: Where ``rows_estimate`` came from, in order of precedence:
#:
#: ``logged``     the source counted the rows (``rows_status == "counted"``);
#: ``limit``      ``LIMIT n``/``FETCH FIRST n``/cursor ``FETCH n`` (capped by the catalog size);
#: ``aggregate``  aggregate-only projection without GROUP BY: one row;
#: ``lookup``     equality/IN lookup on an identifying column: one row per ID found
#:                (at least one);
#: ``range``      ``key BETWEEN a AND b`` on a surrogate key (``id``, ``*_id``): its width
#:                ``b - a + 1`` (capped by the catalog size);
#: ``catalog``    whole-table read (no WHERE, no LIMIT) of tables the catalog sizes;
#: ``none``       unknown (null estimate), also for writes, DDL and the ``COPY`` line of
#:                ``COPY (SELECT ...) TO``, whose SELECT line already carries the rows.
ROWS_ESTIMATE_SOURCES: Final = (
    "logged", "limit", "aggregate", "lookup", "range", "catalog", "none"
)  # fmt: skip

_NUM: Final = r"(\$?[0-9]+)"
# Each clause is found with a literal-prefixed regex (fast: the engine skips to "limit"),
# the last occurrence kept, then its numbers read from that short match.
_LIMIT_CLAUSE: Final = r"(?i)\blimit\s+\$?[0-9]+(?:\s*,\s*\$?[0-9]+)?"
_LIMIT_RE: Final = rf"(?i)limit\s+{_NUM}(?:\s*,\s*{_NUM})?"
_FETCH_FIRST_CLAUSE: Final = r"(?i)\bfetch\s+(?:first|next)\s+\$?[0-9]+"
_OFFSET_CLAUSE: Final = r"(?i)\boffset\s+\$?[0-9]+"
_TRAILING_NUM: Final = r"(\$?[0-9]+)$"
#: A surrogate key by its name (``id``, ``citizen_id``): a range of it reads at most its
#: width in rows (or people).
KEY_COLUMN: Final = r"id|\w+_id"
# on a key-named column, so "age BETWEEN 30 AND 40 AND id BETWEEN ..." sizes the id range
_BETWEEN_RE: Final = rf"(?i)\b(?:{KEY_COLUMN})\s+between\s+{_NUM}\s+and\s+{_NUM}"
_CURSOR_FETCH_RE: Final = rf"(?is)^\s*(?:fetch|move)\s+(?:forward\s+|backward\s+)?{_NUM}"


def _last(text: pl.Expr, clause: str) -> pl.Expr:
    return text.str.extract_all(clause).list.last()


def _number(token: pl.Expr, parameters: pl.Expr) -> pl.Expr:
    """``"50"`` -> 50; ``"$2"`` -> the second bound parameter as a number."""
    index = token.str.slice(1).cast(pl.Int64, strict=False) - 1
    value = (
        pl.when(token.str.starts_with("$"))
        .then(parameters.list.get(index, null_on_oob=True))
        .otherwise(token)
    )
    return value.str.strip_chars().cast(pl.Int64, strict=False)


def limit_values(
    statement: pl.Expr, parameters: pl.Expr, need_limit: pl.Expr, need_offset: pl.Expr
) -> tuple[pl.Expr, pl.Expr]:
    """``(limit, offset)`` read from the text where ``need_*`` is true, else null.

    MySQL's ``LIMIT offset, count`` is understood.

    >>> frame = pl.DataFrame({"s": ["SELECT 1 LIMIT 5, 20", "SELECT 1 LIMIT $1 OFFSET 7"],
    ...                       "p": [None, ["30"]]})
    >>> lim, off = limit_values(pl.col("s"), pl.col("p"), pl.lit(True), pl.lit(True))
    >>> frame.select(lim.alias("l"), off.alias("o")).rows()
    [(20, 5), (30, 7)]
    """
    text = pl.when(need_limit | need_offset).then(statement)
    clause = _last(text, _LIMIT_CLAUSE)
    first = _number(clause.str.extract(_LIMIT_RE, 1), parameters)
    second = _number(clause.str.extract(_LIMIT_RE, 2), parameters)
    fetch_first = _number(
        _last(pl.when(need_limit).then(statement), _FETCH_FIRST_CLAUSE).str.extract(
            _TRAILING_NUM, 1
        ),
        parameters,
    )
    limit = pl.when(need_limit).then(pl.coalesce(second, first, fetch_first))
    offset_clause = _last(pl.when(need_offset).then(statement), _OFFSET_CLAUSE)
    offset = pl.when(need_offset).then(
        pl.when(second.is_not_null())
        .then(first)
        .otherwise(_number(offset_clause.str.extract(_TRAILING_NUM, 1), parameters))
    )
    return limit, offset


def cursor_fetch_count(statement: pl.Expr, parameters: pl.Expr, need: pl.Expr) -> pl.Expr:
    """Rows a ``FETCH n``/``FETCH FORWARD n`` asks for, where ``need`` is true.

    >>> no_params = pl.lit(None, pl.List(pl.String))
    >>> pl.select(cursor_fetch_count(pl.lit("FETCH FORWARD 50 FROM c"), no_params,
    ...                              pl.lit(True))).item()
    50
    """
    return _number(pl.when(need).then(statement).str.extract(_CURSOR_FETCH_RE, 1), parameters)


def key_range_width(statement: pl.Expr, parameters: pl.Expr, need: pl.Expr) -> pl.Expr:
    """Width ``b - a + 1`` of the first ``key BETWEEN a AND b`` (``id``, ``*_id``) with
    whole-number bounds, where ``need`` is true (the analysis found a key range); null when
    the bounds are not numbers or the range is empty.

    >>> no_params = pl.lit(None, pl.List(pl.String))
    >>> frame = pl.DataFrame({"s": ["SELECT phone FROM citizens WHERE id BETWEEN 101 AND 250",
    ...                             "SELECT 1 FROM t WHERE age BETWEEN 30 AND 40"
    ...                             " AND t.person_id between $1 AND $2"],
    ...                       "p": [None, ["7", "9"]]})
    >>> frame.select(key_range_width(pl.col("s"), pl.col("p"), pl.lit(True))).to_series().to_list()
    [150, 3]
    """
    text = pl.when(need).then(statement)
    low = _number(text.str.extract(_BETWEEN_RE, 1), parameters)
    high = _number(text.str.extract(_BETWEEN_RE, 2), parameters)
    width = high - low + 1
    return pl.when(width > 0).then(width)


def rows_estimate_exprs(
    *,
    rows: pl.Expr,
    rows_status: pl.Expr,
    kind: pl.Expr,
    is_copy_wrapper: pl.Expr,
    fetch_count: pl.Expr,
    limit_value: pl.Expr,
    has_group_by: pl.Expr,
    aggregate_only: pl.Expr,
    is_lookup: pl.Expr,
    subject_count: pl.Expr,
    key_range: pl.Expr,
    whole_table: pl.Expr,
    catalog_rows: pl.Expr,
) -> tuple[pl.Expr, pl.Expr]:
    """``(rows_estimate, rows_estimate_source)`` expressions (see the module docstring)."""
    reading = kind.is_in(["select", "copy", "fetch"])
    capped_limit = pl.min_horizontal(limit_value, catalog_rows)
    cases: list[tuple[pl.Expr, pl.Expr, str]] = [
        (rows_status == "counted", rows, "logged"),
        (is_copy_wrapper | ~reading, pl.lit(None, pl.Int64), "none"),
        ((kind == "fetch") & fetch_count.is_not_null(), fetch_count, "limit"),
        (limit_value.is_not_null(), capped_limit, "limit"),
        (aggregate_only & ~has_group_by, pl.lit(1, pl.Int64), "aggregate"),
        (is_lookup, pl.max_horizontal(subject_count, pl.lit(1, pl.Int64)), "lookup"),
        (key_range.is_not_null(), pl.min_horizontal(key_range, catalog_rows), "range"),
        (whole_table & catalog_rows.is_not_null(), catalog_rows, "catalog"),
    ]
    value: pl.Expr | None = None
    source: pl.Expr | None = None
    for cond, val, name in reversed(cases):
        cond = cond.fill_null(False)
        value = pl.when(cond).then(val).otherwise(value if value is not None else pl.lit(None))
        source = (
            pl.when(cond)
            .then(pl.lit(name))
            .otherwise(source if source is not None else pl.lit("none"))
        )
    assert value is not None and source is not None
    return value.cast(pl.Int64), source
