"""PostgreSQL log records to canonical events: the part all three log formats share.

Each PostgreSQL format parser (csvlog, jsonlog, stderr) turns its text into a *record
frame* (:data:`RECORD_COLUMNS`, one row per log record) and hands it to
:class:`PgEventBuilder`, which

1. parses timestamps to UTC (unknown zones are rejected, not guessed);
2. fills each record's user, database, application and client address from its session:
   prefixes like PostgreSQL's default ``'%m [%p] '`` carry none of them, so they come from
   the session's ``connection received`` / ``connection authorized`` lines, carried across
   chunks in :attr:`PgEventBuilder.sessions_`;
3. parses ``AUDIT:`` payloads and merges every line of one statement (same session and
   statement id) into one event: ``pgaudit.log_relation`` logs a statement once per
   relation (a self-join twice), OBJECT logging repeats it, and sub-statements of
   ``COPY (SELECT ...) TO`` split its row count off the COPY line. Lines of statements
   logged in the last :attr:`holdback` of a chunk are held back, so a statement whose lines
   straddle two chunks is still merged once (:mod:`streams.pg.merge`);
4. turns connection, authentication-failure and error records into session events.

Rows are ``unknown`` (null), not zero, where pgaudit logs 0 for a read it did not count:
the table form ``COPY t TO`` (what pg_dump runs) and cursor ``FETCH``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

import polars as pl

from streams.base import ParseResult
from streams.deadletter import empty_rejects
from streams.pg.merge import SESSION_FIELDS, merge_statements
from streams.pg.prepare import RECORD_COLUMNS, PreparedRecords, RawLookup, prepare_records
from streams.pg.timestamps import DEFAULT_ABBREVIATIONS
from streams.schema import EVENT_SCHEMA, conform, empty_events

_SESSION_FIELDS: Final = SESSION_FIELDS
_MAX_SESSIONS: Final = 200_000
#: What :meth:`PgEventBuilder._finish` needs of its parts: the events' columns and keys.
_FINISH_COLUMNS: Final = frozenset(EVENT_SCHEMA) | {"source", "line"}
_AUTH_FAILED = (
    r'^(?:password authentication failed for user|role "[^"]*" does not exist'
    r"|no pg_hba\.conf entry for host|pg_hba\.conf rejects connection"
    r"|(?:\w+ )?authentication failed for user)"
)


def _first_word(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars_start().str.extract(r"^([A-Za-z]+)").str.to_uppercase()


class PgEventBuilder:
    """Stateful record-frame-to-events step shared by the PostgreSQL format parsers.

    Parameters
    ----------
    format_name
        Source format written into ``source_format``.
    server
        Server name written into ``server``.
    abbreviations
        Time-zone abbreviation table (see :mod:`streams.pg.timestamps`).
    holdback
        Event-time span at the end of each chunk whose audit lines wait for the next chunk.

    Examples
    --------
    >>> b = PgEventBuilder("pgaudit-csv")
    >>> rec = pl.DataFrame({"source": ["a.csv"], "line": [1], "pid": [7],
    ...     "timestamp": ["2026-11-28 07:50:00.000 UTC"], "severity": ["LOG"],
    ...     "user": ["alice"], "message": ["AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1"]})
    >>> b.feed(rec).events.height, b.flush().events.select("user", "rows").row(0)
    (0, ('alice', 1))
    """

    def __init__(
        self,
        format_name: str,
        *,
        server: str | None = None,
        abbreviations: Mapping[str, int] = DEFAULT_ABBREVIATIONS,
        holdback: timedelta = timedelta(seconds=1),
    ) -> None:
        self.format_name = format_name
        self.server = server
        self.abbreviations = abbreviations
        self.holdback = holdback

    # learned state, built lazily so a fresh builder pickles small
    @property
    def sessions_(self) -> pl.DataFrame:
        if not hasattr(self, "_sessions"):
            self._sessions = pl.DataFrame(
                schema={"session_key": pl.String} | {f: RECORD_COLUMNS[f] for f in _SESSION_FIELDS}
            )
        return self._sessions

    @property
    def held_(self) -> pl.DataFrame | None:
        return getattr(self, "_held", None)

    def feed(self, records: pl.DataFrame, raw_of: RawLookup | None = None) -> ParseResult:
        """Events and rejects for one record frame.

        ``raw_of`` rebuilds the text of rejected records from their ``_row`` column, for
        formats whose fast path keeps no raw text (csvlog).
        """
        return self.consume(prepare_records(records, self.abbreviations, raw_of))

    def consume(self, prepared: PreparedRecords) -> ParseResult:
        """The stateful half of :meth:`feed`: sessions, statement merge, session events.

        Must see the prepared chunks in input order.
        """
        audit, others = prepared.audit, prepared.others
        # csvlog and jsonlog carry user, database and client on every session record;
        # only logs whose prefix lacks them need the session fill (and its state).
        needs_fill = audit.select(
            pl.any_horizontal(pl.col("user", "database", "client_ip").is_null()).any()
        ).item()
        if needs_fill or not self.sessions_.is_empty():
            filled = self._fill_sessions(prepared.records)
            audit = audit.drop(*_SESSION_FIELDS).join(
                filled, on="_order", how="left", maintain_order="left"
            )
            others = others.drop(*_SESSION_FIELDS).join(
                filled, on="_order", how="left", maintain_order="left"
            )
        statements = self._merge_statements(audit.drop("_order"), final=False)
        session_events = self._session_events(others)
        return ParseResult(
            events=self._finish([statements, session_events]),
            rejects=prepared.rejects,
            lines=0,
        )

    def flush(self) -> ParseResult:
        """Release held-back statements (end of input)."""
        statements = self._merge_statements(None, final=True)
        return ParseResult(self._finish([statements]), empty_rejects(), 0)

    # -- steps -------------------------------------------------------------------------

    def _fill_sessions(self, records: pl.DataFrame) -> pl.DataFrame:
        """Session fields of every record (by ``_order``), filled from its session."""
        msg = pl.col("message")
        received = msg.str.extract_groups(
            r"^connection received: host=(?<h>\S+)(?: port=(?<p>\d+))?"
        )
        authorized = msg.str.extract_groups(
            r"^connection authorized: user=(?<u>\S+)(?: database=(?<d>\S+))?"
            r"(?: application_name=(?<a>.*?))?(?: (?:SSL|GSS) enabled.*)?$"
        )
        records = records.with_columns(
            pl.coalesce("client_ip", received.struct.field("h")).alias("client_ip"),
            pl.coalesce("client_port", received.struct.field("p").cast(pl.Int32)).alias(
                "client_port"
            ),
            pl.coalesce("user", authorized.struct.field("u")).alias("user"),
            pl.coalesce("database", authorized.struct.field("d")).alias("database"),
            pl.coalesce("application", authorized.struct.field("a")).alias("application"),
            msg.str.starts_with("connection received: ").alias("_new_session"),
        )
        seed = self.sessions_.join(
            records.select("session_key").unique(), on="session_key", how="semi"
        ).with_columns(pl.lit(-1, pl.Int64).alias("_pos"), pl.lit(False).alias("_new_session"))
        body = records.with_columns(pl.col("_order").cast(pl.Int64).alias("_pos"))
        # A "connection received" line starts a new session for that key (pid reuse), so
        # values never flow across it.
        both = pl.concat([seed, body.select(seed.columns)], how="vertical").sort(
            "session_key", "_pos"
        )
        both = both.with_columns(
            pl.col("_new_session").cum_sum().over("session_key").alias("_epoch")
        ).with_columns(
            [pl.col(f).forward_fill().over("session_key", "_epoch") for f in _SESSION_FIELDS]
        )
        filled = both.filter(pl.col("_pos") >= 0).select(
            pl.col("_pos").cast(pl.UInt32).alias("_order"), *_SESSION_FIELDS
        )

        ended = (
            records.filter(
                msg.str.starts_with("disconnection: ")
                | ((pl.col("severity") == "FATAL") & msg.str.contains(_AUTH_FAILED))
            )
            .select("session_key")
            .unique()
        )
        latest = both.group_by("session_key").agg(
            *[pl.col(f).last() for f in _SESSION_FIELDS], pl.col("_pos").max().alias("_last")
        )
        self._sessions = (
            pl.concat(
                [
                    self.sessions_.join(latest, on="session_key", how="anti").with_columns(
                        pl.lit(-1, pl.Int64).alias("_last")
                    ),
                    latest,
                ],
                how="vertical",
            )
            .join(ended, on="session_key", how="anti")
            .sort("_last")
            .tail(_MAX_SESSIONS)
            .drop("_last")
        )
        return filled

    def _merge_statements(self, lines: pl.DataFrame | None, *, final: bool) -> pl.DataFrame:
        parts = [f for f in (self.held_, lines) if f is not None and not f.is_empty()]
        self._held = None
        if not parts:
            return empty_events()
        statements, self._held = merge_statements(parts, None if final else self.holdback)
        return statements

    def _session_events(self, records: pl.DataFrame) -> pl.DataFrame:
        msg = pl.col("message")
        sev = pl.col("severity")
        # Regexes run only on the rows that can match (the others are null).
        kind = (
            pl.when(msg.str.starts_with("connection authorized: "))
            .then(pl.lit("connect"))
            .when(msg.str.starts_with("disconnection: "))
            .then(pl.lit("disconnect"))
            .when(pl.when(sev == "FATAL").then(msg).str.contains(_AUTH_FAILED))
            .then(pl.lit("failed_connect"))
            .when((sev == "ERROR") & pl.col("query").is_not_null())
            .then(pl.lit("statement"))
        )
        kinds = records.select(kind).to_series()
        events = records.with_columns(kinds.alias("event_kind")).filter(kinds.is_not_null())
        if events.is_empty():
            return empty_events()
        is_error = pl.col("event_kind") == "statement"
        failed_user = (
            pl.when(pl.col("event_kind") == "failed_connect")
            .then(msg)
            .str.extract(r'(?:for user|user) "([^"]*)"')
        )
        return events.with_columns(
            pl.when(pl.col("event_kind") == "failed_connect")
            .then(pl.coalesce(failed_user, pl.col("user")))
            .otherwise(pl.col("user"))
            .alias("user"),
            pl.when(is_error).then(pl.col("query")).alias("statement"),
            pl.when(is_error).then(_first_word(pl.col("query"))).alias("command_tag"),
            pl.when(is_error).then(pl.lit(0, pl.Int64)).alias("rows"),
            pl.when(is_error).then(pl.lit("counted")).alias("rows_status"),
            pl.when(is_error | (pl.col("event_kind") == "failed_connect"))
            .then(pl.coalesce(pl.col("sqlstate"), sev))
            .alias("error_code"),
        )

    def _finish(self, parts: list[pl.DataFrame]) -> pl.DataFrame:
        frames = [p for p in parts if not p.is_empty()]
        if not frames:
            return empty_events()
        # Only what the events keep is joined and copied (session events still carry
        # their message text); lazily, so no frame is joined whole first. One piece per
        # column after: every eager operation on a frame in pieces joins them first.
        events = pl.concat(
            [f.lazy().select(c for c in f.columns if c in _FINISH_COLUMNS) for f in frames],
            how="diagonal_relaxed",
        ).collect()
        events = events.rechunk()
        order = events.select(
            pl.arg_sort_by("event_time", "source", "line", maintain_order=True)
        ).to_series()
        events = conform(
            events.with_columns(
                (pl.col("source") + ":" + pl.col("line").cast(pl.String)).alias("raw_ref"),
                pl.lit(self.format_name).alias("source_format"),
                pl.lit(self.server, pl.String).alias("server"),
                pl.coalesce(pl.col("session_id"), pl.col("pid").cast(pl.String)).alias(
                    "session_id"
                ),
            )
        )
        # Gathering copies every column: only when the events are not in order already
        # (a log written in time order, read by one parser, usually is not: statements
        # and session events come out of separate steps).
        in_order = (order == pl.int_range(order.len(), dtype=order.dtype, eager=True)).all()
        return events if in_order else events[order]
