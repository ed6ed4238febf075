"""Enrich canonical events with "which tables, which columns, how sensitive, how much".

:func:`enrich` takes a frame with :data:`streams.schema.EVENT_SCHEMA` and returns it with
the columns of :data:`ENRICHED_COLUMNS` appended (:data:`ENRICHED_SCHEMA`).

Pipeline
--------
1. Hot path, polars expressions over the batch's distinct statement texts (streaming
   engine, so both cores work): fingerprint per dialect, keyed hashes of valid ID numbers
   in the text, the analysis key ``(dialect, default schema, fingerprint)``.
2. Cold path, Python per *distinct* key (cached across batches):
   :mod:`features.analysis_table`.
3. Hot path again: join the analyses back onto the events, add keys of IDs in bound
   parameters, read per-event LIMIT/OFFSET/FETCH values, estimate the rows
   (:mod:`features.row_values`).

Only ``event_kind == "statement"`` rows with a statement text are analysed; other rows get
nulls in every added column.

Multi-statement texts: pgaudit logs the whole text on each statement's line. A line is
matched to the statement of its command tag's kind, the k-th line of a session with the
same text and kind taking the k-th such statement (modulo their number); when no statement
has that kind the line gets the union of all statements. The count restarts with each
batch, so a multi-statement text split across two batches may be mismatched.

Added columns
-------------
fingerprint, fingerprint_id
    Statement shape without literals (:mod:`features.fingerprint`) and its stable id.
statement_kind
    select, insert, update, delete, copy, fetch, ddl, set, other (from the command tag
    when the text could not be analysed).
tables_read, tables_written
    ``schema.table`` names (the source's ``tables`` when the text could not be parsed).
columns_read
    Returned columns ``schema.table.column`` (``*`` expanded from the catalog).
sensitive_columns, sensitive_classes
    The classed subset of ``columns_read`` and the distinct classes, catalog first, then
    column-name heuristics.
has_where, has_limit, limit_value, has_offset, offset_value
    See :class:`features.sql_analysis.StatementAnalysis`; values are per event.
has_group_by, has_aggregate, aggregate_only
    See :class:`features.sql_analysis.StatementAnalysis`; values are per event.
is_export, export_form, export_target
    ``COPY ... TO`` / ``COPY (query) TO`` / ``INTO OUTFILE`` and where to.
is_lookup
    Equality/IN lookup on an identifying column (national_id, passport, phone, email,
    bank_account): enumeration shows up as many of these.
key_range_rows
    Width of a read's ``BETWEEN a AND b`` on a surrogate key (``id``, ``*_id``): how many
    records it walks through, null when it has none (a sweep shows up as many of these).
fetch_count
    Rows a cursor ``FETCH`` asked for (null for ``FETCH ALL``).
sql_parse_ok
    Whether the analysis understood the statement.
subject_keys, subject_count
    Distinct keyed hashes of valid ID numbers in literals and bound parameters
    (:mod:`features.national_id`); raw numbers never appear.
rows_estimate, rows_estimate_source
    Rows the event returned or affected, and how that was known
    (:data:`features.row_values.ROWS_ESTIMATE_SOURCES`).
"""

from __future__ import annotations

from typing import Final

import polars as pl

from features.analysis_table import WHOLE_TEXT, analysis_table, key_expr
from features.catalog import Catalog
from features.exceptions import FeaturesError
from features.fingerprint import DIALECTS, dialect_expr, fingerprint_expr
from features.keyed_hash import derive_key
from features.national_id import subject_keys_expr
from features.row_values import (
    cursor_fetch_count,
    key_range_width,
    limit_values,
    rows_estimate_exprs,
)
from features.sql_rules import KEYWORD_KINDS, STATEMENT_KINDS
from streams.schema import EVENT_SCHEMA

ENRICHED_COLUMNS: Final = pl.Schema(
    {
        "fingerprint": pl.String,
        "fingerprint_id": pl.UInt64,
        "statement_kind": pl.String,
        "tables_read": pl.List(pl.String),
        "tables_written": pl.List(pl.String),
        "columns_read": pl.List(pl.String),
        "sensitive_columns": pl.List(pl.String),
        "sensitive_classes": pl.List(pl.String),
        "has_where": pl.Boolean,
        "has_limit": pl.Boolean,
        "limit_value": pl.Int64,
        "has_offset": pl.Boolean,
        "offset_value": pl.Int64,
        "has_group_by": pl.Boolean,
        "has_aggregate": pl.Boolean,
        "aggregate_only": pl.Boolean,
        "is_export": pl.Boolean,
        "export_form": pl.String,
        "export_target": pl.String,
        "is_lookup": pl.Boolean,
        "key_range_rows": pl.Int64,
        "fetch_count": pl.Int64,
        "sql_parse_ok": pl.Boolean,
        "subject_keys": pl.List(pl.UInt64),
        "subject_count": pl.Int64,
        "rows_estimate": pl.Int64,
        "rows_estimate_source": pl.String,
    }
)
ENRICHED_SCHEMA: Final = pl.Schema({**EVENT_SCHEMA, **ENRICHED_COLUMNS})

_TAG_KINDS: Final = tuple(k for k in STATEMENT_KINDS if k != "other")


def _tag_kind_expr() -> pl.Expr:
    """Vectorised :func:`features.sql_rules.kind_of_command_tag` (first word of the tag)."""
    return (
        pl.col("command_tag")
        .str.extract(r"^\s*([A-Za-z]+)", 1)
        .str.to_lowercase()
        .replace_strict(KEYWORD_KINDS, default="other", return_dtype=pl.String)
        .alias("_tag_kind")
    )


def _row_columns(catalog: Catalog) -> list[pl.Expr]:
    """Cheap per-event columns: default schema, command-tag kind."""
    mysql_db = pl.col("database").str.to_lowercase()
    if catalog.mysql_schema:
        mysql_db = mysql_db.fill_null(catalog.mysql_schema)
    return [
        pl.when(pl.col("_dialect") == "mysql")
        .then(mysql_db)
        .otherwise(pl.lit(catalog.postgres_schema))
        .alias("_schema"),
        _tag_kind_expr(),
    ]


def _distinct_statements(frame: pl.DataFrame, id_key: bytes) -> pl.DataFrame:
    """Fingerprint, analysis key and statement-literal subject keys per distinct
    ``(statement, dialect, schema)``.

    Real logs repeat texts (prepared statements log ``$1`` and the same text every time),
    and even with distinct literals, hashing the texts once and joining back costs less
    than running the fingerprint regexes on every event.
    """
    per_dialect = [
        fingerprint_expr(pl.when(pl.col("_dialect") == d).then(pl.col("statement")), d)
        for d in DIALECTS
    ]
    return (
        frame.lazy()
        .filter(pl.col("_has_text"))
        .select("statement", "_dialect", "_schema")
        .unique()
        .with_columns(
            pl.coalesce(per_dialect).alias("fingerprint"),
            subject_keys_expr(pl.col("statement"), id_key).alias("_stmt_keys"),
        )
        .with_columns(
            key_expr(pl.col("_dialect"), pl.col("_schema"), pl.col("fingerprint")).alias("_key")
        )
        .collect(engine="streaming")
    )


def _subject_keys_expr(id_key: bytes) -> pl.Expr:
    """Statement-literal keys plus keys of IDs in bound parameters (where there are any)."""
    params = pl.col("parameters")
    with_params = pl.col("_has_text") & params.is_not_null()
    param_keys = subject_keys_expr(pl.when(with_params).then(params.list.join("\n")), id_key)
    return (
        pl.when(with_params)
        .then(pl.concat_list(pl.col("_stmt_keys"), param_keys).list.unique(maintain_order=True))
        .otherwise(pl.col("_stmt_keys"))
        .alias("subject_keys")
    )


def _pick_statements(
    frame: pl.DataFrame, rows: pl.DataFrame, matches: pl.DataFrame
) -> pl.DataFrame:
    """Give lines of multi-statement texts their own statement's analysis (see the
    module docstring); other lines keep the whole-text analysis."""
    frame = frame.with_row_index("_row")
    is_multi = (pl.col("_statement_count") > 1).fill_null(False)
    analysis_cols = [c for c in rows.columns if c not in ("_key", "_pick")]
    multi = (
        frame.filter(is_multi)
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64)
            .over(["session_id", "statement", "_tag_kind"])
            .alias("_rank")
        )
        .join(matches, on=["_key", "_tag_kind"], how="left", maintain_order="left")
        .with_columns(
            pl.col("_matches")
            .list.get(pl.col("_rank") % pl.col("_matches").list.len(), null_on_oob=True)
            .fill_null(WHOLE_TEXT)
            .cast(pl.Int32)
            .alias("_pick")
        )
        .drop("_rank", "_matches", *analysis_cols)
        .join(rows, on=["_key", "_pick"], how="left", maintain_order="left")
        .select(frame.columns)
    )
    return pl.concat([frame.filter(~is_multi), multi]).sort("_row").drop("_row")


def enrich(events: pl.DataFrame, catalog: Catalog, *, id_key: bytes) -> pl.DataFrame:
    """Add the :data:`ENRICHED_COLUMNS` to canonical events.

    Parameters
    ----------
    events
        Frame with at least the :data:`streams.schema.EVENT_SCHEMA` columns.
    catalog
        Sensitivity catalog (``Catalog()`` for heuristics only).
    id_key
        Secret (at least 16 bytes) keying the ID-number hashes; the same secret gives the
        same ``subject_keys``, so replays are reproducible.

    Returns
    -------
    polars.DataFrame
        ``events`` (same rows, same order) followed by the added columns, with
        :data:`ENRICHED_SCHEMA`.

    Examples
    --------
    >>> from streams.schema import conform
    >>> events = conform(pl.DataFrame({
    ...     "event_kind": ["statement", "connect"], "source_format": ["pgaudit-csv"] * 2,
    ...     "statement": ["COPY citizens TO STDOUT", None], "rows_status": ["unknown", None],
    ...     "command_tag": ["COPY", None]}))
    >>> cat = Catalog.loads('[tables."public.citizens"]\\nrows = 1200')
    >>> out = enrich(events, cat, id_key=b"k" * 16)
    >>> out.select("statement_kind", "is_export", "rows_estimate", "rows_estimate_source").rows()
    [('copy', True, 1200, 'catalog'), (None, None, None, None)]
    """
    missing = [name for name in EVENT_SCHEMA if name not in events.columns]
    if missing:
        raise FeaturesError(f"events lack canonical columns: {', '.join(missing)}")
    derive_key(id_key)  # fail fast on a bad key, before any work
    frame = events.select(list(EVENT_SCHEMA))

    frame = (
        frame.lazy()
        .with_columns(
            dialect_expr("source_format").alias("_dialect"),
            (pl.col("event_kind") == "statement").fill_null(False).alias("_is_stmt"),
        )
        .with_columns((pl.col("_is_stmt") & pl.col("statement").is_not_null()).alias("_has_text"))
        .with_columns(_row_columns(catalog))
        .collect()
    )
    distinct = _distinct_statements(frame, id_key)
    rows, matches = analysis_table(distinct["_key"], catalog)
    whole = rows.filter(pl.col("_pick") == WHOLE_TEXT).drop("_pick")
    joined = frame.join(
        distinct.join(whole, on="_key", how="left"),
        on=["statement", "_dialect", "_schema"],
        how="left",
        nulls_equal=True,  # a MariaDB event without a database has a null schema
        maintain_order="left",
    )
    if not matches.is_empty():
        joined = _pick_statements(joined, rows, matches)
    return (
        joined.lazy()
        .with_columns(_subject_keys_expr(id_key))
        .with_columns(_value_columns())
        .with_columns(_estimate_columns())
        .select([pl.col(name).cast(dtype) for name, dtype in ENRICHED_SCHEMA.items()])
        .collect()
    )


def _value_columns() -> list[pl.Expr]:
    """Per-event values; a separate step from the estimate that reads them, so the regex
    extractions are not evaluated twice."""
    col = pl.col
    parse_failed = ~col("sql_parse_ok")
    kind = (
        pl.when(
            parse_failed & (col("statement_kind") == "other") & col("_tag_kind").is_in(_TAG_KINDS)
        )
        .then(col("_tag_kind"))
        .otherwise(col("statement_kind"))
    )
    source_tables = col("tables").list.eval(pl.element().str.to_lowercase())
    tables_read = (
        pl.when(
            parse_failed
            & (col("tables_read").list.len() == 0)
            & (source_tables.list.len() > 0)
            & (kind != "insert")
        )
        .then(source_tables)
        .otherwise(col("tables_read"))
    )
    need_limit = (col("has_limit") & col("_limit").is_null()).fill_null(False)
    need_offset = (col("has_offset") & col("_offset").is_null()).fill_null(False)
    limit, offset = limit_values(col("statement"), col("parameters"), need_limit, need_offset)
    is_fetch = (kind == "fetch").fill_null(False)
    need_fetch = is_fetch & col("_fetch").is_null() & ~col("_fetch_all").fill_null(False)
    fetch = cursor_fetch_count(col("statement"), col("parameters"), need_fetch)
    need_range = col("_key_range").fill_null(False) & kind.is_in(["select", "copy"])
    return [
        kind.alias("statement_kind"),
        tables_read.alias("tables_read"),
        pl.when(col("has_limit")).then(pl.coalesce(col("_limit"), limit)).alias("limit_value"),
        pl.when(col("has_offset")).then(pl.coalesce(col("_offset"), offset)).alias("offset_value"),
        pl.when(is_fetch).then(pl.coalesce(col("_fetch"), fetch)).alias("fetch_count"),
        col("subject_keys").list.len().cast(pl.Int64).alias("subject_count"),
        key_range_width(col("statement"), col("parameters"), need_range).alias("key_range_rows"),
    ]


def _estimate_columns() -> list[pl.Expr]:
    col = pl.col
    estimate, source = rows_estimate_exprs(
        rows=col("rows"),
        rows_status=col("rows_status"),
        kind=col("statement_kind"),
        is_copy_wrapper=(col("export_form") == "copy_query_to") & (col("_tag_kind") == "copy"),
        fetch_count=col("fetch_count"),
        limit_value=col("limit_value"),
        has_group_by=col("has_group_by"),
        aggregate_only=col("aggregate_only"),
        is_lookup=col("is_lookup"),
        subject_count=col("subject_count"),
        key_range=col("key_range_rows"),
        whole_table=col("_whole_table"),
        catalog_rows=col("_catalog_rows"),
    )
    is_stmt = col("_is_stmt")
    return [
        pl.when(is_stmt).then(estimate).alias("rows_estimate"),
        pl.when(is_stmt).then(source).alias("rows_estimate_source"),
    ]
