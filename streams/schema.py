"""The canonical audit event table: one row per statement or session event.

Every parser in :mod:`streams` produces a :class:`polars.DataFrame` with exactly
:data:`EVENT_SCHEMA` (same names, order and dtypes), whatever the source format. This is
the contract the feature layer reads; ARCHITECTURE.md documents each column.

Columns
-------
event_time
    When the server logged the event, converted to UTC.
source_format
    One of :data:`SOURCE_FORMATS`.
server
    Name of the database server (``--server`` or the MariaDB ``serverhost`` field).
database
    Database (PostgreSQL) or default schema (MariaDB) of the session.
user
    Database role / account that ran the statement.
client_ip, client_port
    Client address; for PostgreSQL prefixes without ``%h`` it comes from the session's
    ``connection received`` line. ``[local]`` (Unix socket) is kept as ``"[local]"``.
application
    ``application_name`` where the source has it.
session_id
    Stable session key: PostgreSQL ``%c`` session id (or ``pid`` when the source lacks it),
    MariaDB connection id. Statement ids are unique only within a session.
pid
    Server process id (PostgreSQL) or null.
event_kind
    ``statement`` | ``connect`` | ``disconnect`` | ``failed_connect``.
audit_type
    pgaudit ``SESSION`` / ``OBJECT``; ``QUERY`` for MariaDB statements; ``TABLE`` for a
    MariaDB table event whose QUERY line never came (kept as access evidence); null for
    session events and for failed statements.
statement_id, substatement_id
    pgaudit statement and sub-statement ids; MariaDB query id (substatement null).
command_class
    ``READ`` | ``WRITE`` | ``DDL`` | ``ROLE`` | ``FUNCTION`` | ``MISC`` | ``MISC_SET`` ...
    (pgaudit's classes; MariaDB statements are classed from their first keyword).
command_tag
    ``SELECT``, ``COPY``, ``FETCH``, ``INSERT`` ...
object_type
    pgaudit object type of the first relation (``TABLE``, ``VIEW`` ...) or null.
tables
    Relations the source says the statement touched (merged across pgaudit's
    one-line-per-relation logging and MariaDB's TABLE events); may be empty.
statement
    Statement text as logged (may contain literals: never print it unredacted).
parameters
    Bound parameters (``pgaudit.log_parameter``) or null when not logged.
rows
    Rows the statement returned or affected; null when unknown.
rows_status
    ``counted`` (the source gave the count), ``not_logged`` (the source has no counts:
    MariaDB, pgaudit without ``log_rows``) or ``unknown`` (pgaudit logged 0 where the
    real count is unknown: ``COPY table TO``, cursor ``FETCH``; the catalog sizes it).
error_code
    SQLSTATE (PostgreSQL) or return code (MariaDB) of a statement or login that failed;
    null when it succeeded (MariaDB's retcode 0).
raw_ref
    ``path:line`` of the first physical line the event came from.
"""

from __future__ import annotations

from typing import Final

import polars as pl

SOURCE_FORMATS: Final = ("pgaudit-csv", "pgaudit-json", "pgaudit-stderr", "mariadb-audit")
EVENT_KINDS: Final = ("statement", "connect", "disconnect", "failed_connect")
ROWS_STATUSES: Final = ("counted", "not_logged", "unknown")

EVENT_SCHEMA: Final = pl.Schema(
    {
        "event_time": pl.Datetime("us", "UTC"),
        "source_format": pl.String,
        "server": pl.String,
        "database": pl.String,
        "user": pl.String,
        "client_ip": pl.String,
        "client_port": pl.Int32,
        "application": pl.String,
        "session_id": pl.String,
        "pid": pl.Int64,
        "event_kind": pl.String,
        "audit_type": pl.String,
        "statement_id": pl.Int64,
        "substatement_id": pl.Int64,
        "command_class": pl.String,
        "command_tag": pl.String,
        "object_type": pl.String,
        "tables": pl.List(pl.String),
        "statement": pl.String,
        "parameters": pl.List(pl.String),
        "rows": pl.Int64,
        "rows_status": pl.String,
        "error_code": pl.String,
        "raw_ref": pl.String,
    }
)


def empty_events() -> pl.DataFrame:
    """Return an empty frame with the canonical schema.

    >>> empty_events().columns[:3]
    ['event_time', 'source_format', 'server']
    """
    return pl.DataFrame(schema=EVENT_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing canonical columns as nulls, cast, and order them as the schema says.

    Parsers build only the columns their format has and call this last, so the schema is
    enforced in one place.

    >>> conform(pl.DataFrame({"user": ["alice"]})).schema == EVENT_SCHEMA
    True
    """
    exprs = []
    for name, dtype in EVENT_SCHEMA.items():
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)
