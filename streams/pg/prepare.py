"""The stateless half of turning PostgreSQL log records into events (safe on worker
threads): times to UTC, ``AUDIT:`` payloads parsed, bad timestamps, bad payloads and forged
records rejected. :class:`~streams.pg.records.PgEventBuilder` consumes the result in input
order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import polars as pl

from streams.deadletter import REJECT_SCHEMA, empty_rejects
from streams.pg.merge import SESSION_FIELDS
from streams.pg.payload import parse_audit
from streams.pg.timestamps import with_utc_time

_SESSION_FIELDS: Final = SESSION_FIELDS

#: Columns a format parser must provide (nullable where the format lacks them).
RECORD_COLUMNS: Final = pl.Schema(
    {
        "source": pl.String,
        "line": pl.Int64,
        "raw": pl.String,
        "timestamp": pl.String,
        "pid": pl.Int64,
        "session_id": pl.String,
        "user": pl.String,
        "database": pl.String,
        "application": pl.String,
        "client_ip": pl.String,
        "client_port": pl.Int32,
        "severity": pl.String,
        "sqlstate": pl.String,
        "message": pl.String,
        "context": pl.String,
        "query": pl.String,
    }
)

#: Rebuilds the raw text of the records at the given ``_row`` positions.
RawLookup = Callable[[pl.Series], pl.Series]

#: What the statement merge needs of an audit line (the long message text is not kept).
_LINE_COLUMNS: Final = (
    "source", "line", "event_time", "session_key", *_SESSION_FIELDS, "pid", "session_id",
    "audit_type", "statement_id", "substatement_id", "command_class", "command_tag",
    "object_type", "object_name", "statement", "parameter", "rows",
)  # fmt: skip
#: What the payload parse needs of an audit record.
_AUDIT_INPUT: Final = (
    "source", "line", "event_time", "session_key", *_SESSION_FIELDS, "pid", "session_id",
    "message", "context", "_order",
)  # fmt: skip
#: What session events need of the other records.
_OTHER_INPUT: Final = (
    "source", "line", "event_time", "session_key", *_SESSION_FIELDS, "pid", "session_id",
    "severity", "sqlstate", "message", "query", "_order",
)  # fmt: skip


@dataclass(frozen=True)
class PreparedRecords:
    """A record frame after the stateless steps, ready for :meth:`PgEventBuilder.consume`."""

    records: pl.DataFrame
    audit: pl.DataFrame
    others: pl.DataFrame
    rejects: pl.DataFrame


def _complete(records: pl.DataFrame) -> pl.DataFrame:
    missing = [
        pl.lit(None, dtype).alias(name)
        for name, dtype in RECORD_COLUMNS.items()
        if name not in records.columns
    ]
    return records.with_columns(missing).with_columns(
        [pl.col(n).cast(t) for n, t in RECORD_COLUMNS.items()]
    )


def _rejects(frame: pl.DataFrame, reason: str, raw_of: RawLookup | None) -> pl.DataFrame:
    if frame.is_empty():
        return empty_rejects()
    raw = pl.col("raw")
    if raw_of is not None and "_row" in frame.columns:
        raw = pl.coalesce(raw, raw_of(frame["_row"]))
    return frame.select(
        pl.col("source"), pl.col("line"), pl.lit(reason).alias("reason"), raw.alias("raw")
    ).cast(REJECT_SCHEMA)  # type: ignore[arg-type]


def prepare_records(
    records: pl.DataFrame, abbreviations: Mapping[str, int], raw_of: RawLookup | None = None
) -> PreparedRecords:
    """The stateless half of :meth:`PgEventBuilder.feed` (safe to run on worker threads).

    Times to UTC, AUDIT payloads parsed, bad timestamps, bad payloads and forged records
    rejected.
    """
    records = _complete(records)
    records = (
        with_utc_time(records, "timestamp", "event_time", abbreviations)
        .with_columns(
            # csvlog and jsonlog name every session: share that column, don't copy it.
            pl.col("session_id").alias("session_key")
            if records["session_id"].null_count() == 0
            else pl.coalesce(pl.col("session_id"), pl.col("pid").cast(pl.String)).alias(
                "session_key"
            )
        )
        .with_row_index("_order")
    )
    bad_time = records["event_time"].is_null()
    rejects = [empty_rejects()]
    if bad_time.any():  # filtering copies every column: only when needed
        rejects.append(_rejects(records.filter(bad_time), "bad_timestamp", raw_of))
        records = records.filter(~bad_time)
    is_audit = records["message"].str.starts_with("AUDIT: ")
    # Filtering copies every column it keeps: narrow each side to what it needs first.
    keep = [c for c in (*_AUDIT_INPUT, "raw", "_row") if c in records.columns]
    audit = parse_audit(records.select(keep).filter(is_audit))
    # A real pgaudit record hides its statement and context; a PL/pgSQL
    # RAISE LOG 'AUDIT: ...' forgery carries a CONTEXT line.
    forged = audit["context"].is_not_null() & (audit["context"] != "")
    bad_payload = audit["audit_type"].is_null()
    if forged.any():
        rejects.append(_rejects(audit.filter(forged), "forged_audit", raw_of))
    if (bad_payload & ~forged).any():
        rejects.append(_rejects(audit.filter(~forged & bad_payload), "bad_audit_payload", raw_of))
    usable = ~forged & ~bad_payload
    # Lazily, so only the kept columns are joined into one piece (an eager select or
    # filter on a frame in pieces joins every column first, the message text too).
    lines = audit.lazy().select(*_LINE_COLUMNS, "_order")
    if not usable.all():
        lines = lines.filter(usable)
    audit = lines.collect().rechunk()
    return PreparedRecords(
        records=records.select("_order", "session_key", "message", "severity", *_SESSION_FIELDS),
        audit=audit,
        others=records.select(_OTHER_INPUT).filter(~is_audit),
        rejects=pl.concat(rejects),
    )
