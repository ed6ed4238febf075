"""The statements the baselines read: the same logs, parsed and enriched as replay does.

One row per statement (session events dropped), in event-time order, with what a DAM or
an anomaly rule would see of it:

``event_time``, ``user``, ``database``
    As logged (UTC; ``database`` empty when the source has none).
``rows``
    Rows the statement *returned* (``SELECT``, ``FETCH``, ``COPY ... TO``; 0 for writes,
    DDL, failures): the source's count where it has one (pgaudit ``log_rows``), else the
    catalog / statement-shape estimate (``rows_estimate``, :mod:`features.row_values`).
    MariaDB's audit log has no row counts at all, so there every value is an estimate,
    where a DAM in front of the server would count result sets on the wire.
``rows_logged``
    Whether ``rows`` is the source's count.
``sensitive_rows``, ``identifier_rows``, ``lookups``, ``exports``
    :func:`features.access.event_features` signals (rows returning classed / identifying
    columns, equality lookups on identifiers, ``COPY ... TO`` / ``INTO OUTFILE``).
``tables_read``, ``subject_keys``
    Tables read; keyed hashes of national ID numbers in the text and parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.config import Config
from detector.lab.evaluation.errors import EvaluationError
from features.access import event_features
from features.enrich import enrich
from streams.exceptions import ExfilDetectorError
from streams.file_source import iter_file_batches

STATEMENT_COLUMNS: Final = (
    "event_time",
    "user",
    "database",
    "rows",
    "rows_logged",
    "sensitive_rows",
    "identifier_rows",
    "lookups",
    "exports",
    "tables_read",
    "subject_keys",
)


_DEFAULTS: Final = {
    "database": pl.lit("", pl.String),
    "rows": pl.lit(0.0),
    "rows_logged": pl.lit(True),
    "sensitive_rows": pl.lit(0.0),
    "identifier_rows": pl.lit(0.0),
    "lookups": pl.lit(0.0),
    "exports": pl.lit(0.0),
    "tables_read": pl.lit([], pl.List(pl.String)),
    "subject_keys": pl.lit([], pl.List(pl.UInt64)),
}
_TYPES: Final = {
    "event_time": pl.Datetime("us", "UTC"),
    "user": pl.String,
    "database": pl.String,
    "rows": pl.Float64,
    "rows_logged": pl.Boolean,
    "sensitive_rows": pl.Float64,
    "identifier_rows": pl.Float64,
    "lookups": pl.Float64,
    "exports": pl.Float64,
    "tables_read": pl.List(pl.String),
    "subject_keys": pl.List(pl.UInt64),
}


def statement_frame(data: pl.DataFrame | dict[str, Any]) -> pl.DataFrame:
    """A statement frame from just some columns (``event_time`` and ``user`` at least):
    the rest filled with neutral values (no rows, nothing sensitive), types enforced.
    For hand-made inputs (tests, examples).

    >>> import datetime as dt
    >>> t = dt.datetime(2024, 3, 6, 10, tzinfo=dt.UTC)
    >>> statement_frame({"event_time": [t], "user": ["d07"], "rows": [5]}).columns == list(
    ...     STATEMENT_COLUMNS)
    True
    """
    frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(data)
    missing = {"event_time", "user"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"statements lack {sorted(missing)}")
    return frame.with_columns(
        [expr.alias(name) for name, expr in _DEFAULTS.items() if name not in frame.columns]
    ).select([pl.col(name).cast(dtype) for name, dtype in _TYPES.items()])


def statements_from_enriched(enriched: pl.DataFrame) -> pl.DataFrame:
    """Enriched events (:data:`features.enrich.ENRICHED_SCHEMA`) -> the statement frame.

    The signals come from :func:`features.access.event_features` (the detector's own
    definition of a read); ``database`` and ``rows_logged`` are taken from the same rows,
    which are filtered first so the two line up.
    """
    kept = enriched.filter((pl.col("event_kind") == "statement") & pl.col("user").is_not_null())
    signals = event_features(kept)
    if signals.height != kept.height:
        raise EvaluationError("event_features dropped statements; cannot line up databases")
    return signals.select(
        "event_time",
        "user",
        kept["database"].fill_null("").alias("database"),
        pl.col("rows_read").alias("rows"),
        (kept["rows_estimate_source"] == "logged").fill_null(False).alias("rows_logged"),
        "sensitive_rows",
        "identifier_rows",
        "lookups",
        "exports",
        "tables_read",
        "subject_keys",
    )


def load_statements(paths: Sequence[Path], config: Config) -> pl.DataFrame:
    """Parse and enrich ``paths`` (the config's source options and catalog) into the
    statement frame, sorted by event time (stable: log order within an instant)."""
    catalog = config.load_catalog()
    id_key = config.id_hash_key()
    parts = []
    try:
        for batch in iter_file_batches(paths, config.source_options()):
            events = batch.result.events
            if events.height:
                part = statements_from_enriched(enrich(events, catalog, id_key=id_key))
                if part.height:
                    parts.append(part)
    except EvaluationError:
        raise
    except ExfilDetectorError as exc:
        raise EvaluationError(f"cannot read the logs: {exc}") from exc
    if not parts:
        raise EvaluationError(f"no statements in {', '.join(p.name for p in paths)}")
    return pl.concat(parts).sort("event_time", maintain_order=True)


def active_days(statements: pl.DataFrame) -> pl.DataFrame:
    """Distinct ``(user, day)`` pairs (UTC day) with at least one statement.

    >>> import datetime as dt
    >>> t = dt.datetime(2024, 3, 6, 23, 59, tzinfo=dt.UTC)
    >>> frame = pl.DataFrame({"user": ["a", "a", "b"],
    ...                       "event_time": [t, t + dt.timedelta(minutes=2), t]})
    >>> [(user, day.isoformat()) for user, day in active_days(frame).rows()]
    [('a', '2024-03-06'), ('a', '2024-03-07'), ('b', '2024-03-06')]
    """
    return (
        statements.select("user", pl.col("event_time").dt.date().alias("day"))
        .unique()
        .sort("user", "day")
    )
