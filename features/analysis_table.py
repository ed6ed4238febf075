"""The cold path of :func:`features.enrich.enrich`: one analysis row per distinct statement key.

A *key* is ``(dialect, default schema, fingerprint)``: the fingerprint alone is not enough
because an unqualified table name means a different table in another MariaDB database.
Each key is analysed once (:mod:`features.sql_analysis`), classed against the catalog,
and cached; :func:`analysis_table` turns a batch's distinct keys into a frame that the hot
path joins back onto the events.

Multi-statement texts get one row per statement (``pick`` = statement index) besides the
union row (``pick`` = -1) that single-statement keys use; :data:`MATCH_SCHEMA` lists, per
key and statement kind, which statements a log line of that kind may be.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import polars as pl

from features.catalog import Catalog
from features.column_classes import IDENTIFIER_CLASSES
from features.fingerprint import fingerprint_id
from features.row_values import KEY_COLUMN
from features.sql_analysis import StatementAnalysis, analyse_statements, combine
from features.sql_lineage import UNKNOWN_TABLE

#: ``pick`` of the row describing the whole text (the only row of single statements).
WHOLE_TEXT: Final = -1

#: One row per (key, pick): what the hot path joins onto each event.
ANALYSIS_SCHEMA: Final = pl.Schema(
    {
        "_key": pl.String,
        "_pick": pl.Int32,
        "fingerprint_id": pl.UInt64,
        "statement_kind": pl.String,
        "tables_read": pl.List(pl.String),
        "tables_written": pl.List(pl.String),
        "columns_read": pl.List(pl.String),
        "sensitive_columns": pl.List(pl.String),
        "sensitive_classes": pl.List(pl.String),
        "has_where": pl.Boolean,
        "has_limit": pl.Boolean,
        "_limit": pl.Int64,
        "has_offset": pl.Boolean,
        "_offset": pl.Int64,
        "has_group_by": pl.Boolean,
        "has_aggregate": pl.Boolean,
        "aggregate_only": pl.Boolean,
        "is_export": pl.Boolean,
        "export_form": pl.String,
        "export_target": pl.String,
        "is_lookup": pl.Boolean,
        "_key_range": pl.Boolean,
        "_fetch": pl.Int64,
        "_fetch_all": pl.Boolean,
        "_whole_table": pl.Boolean,
        "_catalog_rows": pl.Int64,
        "sql_parse_ok": pl.Boolean,
        "_statement_count": pl.Int32,
    }
)

#: Which statements (by index) a line of a given kind may be, for multi-statement keys.
MATCH_SCHEMA: Final = pl.Schema(
    {"_key": pl.String, "_tag_kind": pl.String, "_matches": pl.List(pl.Int32)}
)


def key_expr(dialect: pl.Expr, schema: pl.Expr, fingerprint: pl.Expr) -> pl.Expr:
    """One string per key; ``\\x1f`` cannot occur in a dialect or schema name."""
    return pl.concat_str([dialect, schema.fill_null(""), fingerprint], separator="\x1f")


@dataclass(frozen=True)
class KeyResult:
    """Analysis rows and match rows of one key."""

    rows: tuple[dict[str, object], ...]
    matches: tuple[dict[str, object], ...]


def _split_key(key: str) -> tuple[str, str | None, str]:
    dialect, schema, fingerprint = key.split("\x1f", 2)
    return dialect, schema or None, fingerprint


def _is_key(column: str) -> bool:
    """A surrogate key by its name (:data:`features.row_values.KEY_COLUMN`); the caller
    also rules out classed columns (``national_id`` is a value, not a key)."""
    return re.fullmatch(KEY_COLUMN, column, re.IGNORECASE) is not None


def _row(
    key: str, pick: int, a: StatementAnalysis, catalog: Catalog, fid: int
) -> dict[str, object]:
    sensitive: list[str] = []
    classes: list[str] = []
    for ref in a.columns_read:
        table, _, column = ref.rpartition(".")
        if column == "*":
            continue
        cls = catalog.column_class(None if table == UNKNOWN_TABLE else table, column)
        if cls is not None:
            sensitive.append(ref)
            classes.append(cls)
    lookup = any(
        catalog.column_class(None if t == UNKNOWN_TABLE else t, c) in IDENTIFIER_CLASSES
        for t, _, c in (ref.rpartition(".") for ref in a.lookup_columns)
    )
    key_range = any(
        _is_key(c) and catalog.column_class(None if t == UNKNOWN_TABLE else t, c) is None
        for t, _, c in (ref.rpartition(".") for ref in a.range_columns)
    )
    sizes = [r for r in map(catalog.rows_of, a.tables_read) if r is not None]
    return {
        "_key": key,
        "_pick": pick,
        "fingerprint_id": fid,
        "statement_kind": a.kind,
        "tables_read": list(a.tables_read),
        "tables_written": list(a.tables_written),
        "columns_read": list(a.columns_read),
        "sensitive_columns": sensitive,
        "sensitive_classes": list(dict.fromkeys(classes)),
        "has_where": a.has_where,
        "has_limit": a.has_limit,
        "_limit": a.limit_value,
        "has_offset": a.has_offset,
        "_offset": a.offset_value,
        "has_group_by": a.has_group_by,
        "has_aggregate": a.has_aggregate,
        "aggregate_only": a.aggregate_only,
        "is_export": a.is_export,
        "export_form": a.export_form,
        "export_target": a.export_target,
        "is_lookup": lookup,
        "_key_range": key_range,
        "_fetch": a.fetch_count,
        "_fetch_all": a.fetch_all,
        "_whole_table": a.reads_whole_table,
        # A join is sized by its largest known table: most joins follow a foreign key.
        "_catalog_rows": max(sizes) if sizes else None,
        "sql_parse_ok": a.parse_ok,
        "_statement_count": a.statement_count,
    }


@functools.lru_cache(maxsize=65_536)
def key_result(key: str, catalog: Catalog) -> KeyResult:
    """Analyse and class one key (cached per key and catalog)."""
    dialect, schema, fingerprint = _split_key(key)
    analyses = analyse_statements(fingerprint, dialect, catalog=catalog, default_schema=schema)
    fid = fingerprint_id(fingerprint)
    whole = analyses[0] if len(analyses) == 1 else combine(analyses)
    rows = [_row(key, WHOLE_TEXT, whole, catalog, fid)]
    matches: list[dict[str, object]] = []
    if len(analyses) > 1:
        rows += [_row(key, i, a, catalog, fid) for i, a in enumerate(analyses)]
        by_kind: dict[str, list[int]] = {}
        for i, a in enumerate(analyses):
            by_kind.setdefault(a.kind, []).append(i)
        matches = [{"_key": key, "_tag_kind": k, "_matches": v} for k, v in by_kind.items()]
    return KeyResult(tuple(rows), tuple(matches))


def analysis_table(keys: pl.Series, catalog: Catalog) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(analysis rows, match rows)`` for distinct non-null ``keys``.

    >>> key = pl.select(key_expr(pl.lit("postgres"), pl.lit("public"),
    ...                          pl.lit("SELECT phone FROM t"))).to_series()
    >>> rows, matches = analysis_table(key, Catalog())
    >>> rows.select("statement_kind", "sensitive_classes").row(0), matches.height
    (('select', ['phone']), 0)
    """
    rows: list[dict[str, object]] = []
    matches: list[dict[str, object]] = []
    for key in keys.drop_nulls().unique().to_list():
        result = key_result(key, catalog)
        rows += result.rows
        matches += result.matches
    return (
        pl.DataFrame(rows, schema=ANALYSIS_SCHEMA),
        pl.DataFrame(matches, schema=MATCH_SCHEMA),
    )
