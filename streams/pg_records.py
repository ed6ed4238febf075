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
   straddle two chunks is still merged once;
4. turns connection, authentication-failure and error records into session events.

Rows are ``unknown`` (null), not zero, where pgaudit logs 0 for a read it did not count:
the table form ``COPY t TO`` (what pg_dump runs) and cursor ``FETCH``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import polars as pl

from streams.base import ParseResult
from streams.deadletter import REJECT_SCHEMA, empty_rejects
from streams.pg_time import DEFAULT_ABBREVIATIONS, with_utc_time
from streams.pgaudit_payload import (
    NO_PARAMETERS,
    NOT_LOGGED,
    PREVIOUSLY_LOGGED,
    parse_audit,
    split_parameters,
)
from streams.schema import conform, empty_events

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

_SESSION_FIELDS: Final = ("user", "database", "application", "client_ip", "client_port")
_MAX_SESSIONS: Final = 200_000
#: What the statement merge needs of an audit line (the long message text is not kept).
_LINE_COLUMNS: Final = (
    "source", "line", "event_time", "session_key", *_SESSION_FIELDS, "pid", "session_id",
    "audit_type", "statement_id", "substatement_id", "command_class", "command_tag",
    "object_type", "object_name", "statement", "parameter", "rows",
)  # fmt: skip
_AUTH_FAILED = (
    r'^(?:password authentication failed for user|role "[^"]*" does not exist'
    r"|no pg_hba\.conf entry for host|pg_hba\.conf rejects connection"
    r"|(?:\w+ )?authentication failed for user)"
)


def _first_word(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars_start().str.extract(r"^([A-Za-z]+)").str.to_uppercase()


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
            pl.coalesce(pl.col("session_id"), pl.col("pid").cast(pl.String)).alias("session_key")
        )
        .with_row_index("_order")
    )
    bad_time = records["event_time"].is_null()
    rejects = [empty_rejects()]
    if bad_time.any():  # filtering copies every column: only when needed
        rejects.append(_rejects(records.filter(bad_time), "bad_timestamp", raw_of))
        records = records.filter(~bad_time)
    is_audit = records["message"].str.starts_with("AUDIT: ")
    audit = parse_audit(records.filter(is_audit))
    # A real pgaudit record hides its statement and context; a PL/pgSQL
    # RAISE LOG 'AUDIT: ...' forgery carries a CONTEXT line.
    forged = pl.col("context").is_not_null() & (pl.col("context") != "")
    bad_payload = pl.col("audit_type").is_null()
    rejects.append(_rejects(audit.filter(forged), "forged_audit", raw_of))
    rejects.append(_rejects(audit.filter(~forged & bad_payload), "bad_audit_payload", raw_of))
    return PreparedRecords(
        records=records.select("_order", "session_key", "message", "severity", *_SESSION_FIELDS),
        audit=audit.filter(~forged & ~bad_payload).select(*_LINE_COLUMNS, "_order"),
        others=records.filter(~is_audit),
        rejects=pl.concat(rejects),
    )


class PgEventBuilder:
    """Stateful record-frame-to-events step shared by the PostgreSQL format parsers.

    Parameters
    ----------
    format_name
        Source format written into ``source_format``.
    server
        Server name written into ``server``.
    abbreviations
        Time-zone abbreviation table (see :mod:`streams.pg_time`).
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
        lines = pl.concat(parts, how="vertical_relaxed")
        key = ["session_key", "statement_id"]
        lines = lines.with_columns(
            pl.len().over(key).alias("_n"),
            pl.col("event_time").max().over(key).alias("_last"),
            pl.when(~pl.col("statement").is_in([NOT_LOGGED, PREVIOUSLY_LOGGED]))
            .then(pl.col("statement"))
            .alias("_text"),
            pl.when(~pl.col("parameter").is_in([NOT_LOGGED, PREVIOUSLY_LOGGED, NO_PARAMETERS]))
            .then(pl.col("parameter"))
            .alias("_param"),
        )
        if not final:
            cutoff = lines["event_time"].max() - self.holdback  # type: ignore[operator]
            recent = pl.col("_last") >= cutoff
            self._held = lines.filter(recent).drop("_n", "_last", "_text", "_param")
            lines = lines.filter(~recent)
            if lines.is_empty():
                return empty_events()
        # Most statements are logged on one line: only the others pay for a group_by.
        single = lines.filter(pl.col("_n") == 1).select(
            *key,
            "event_time", "source", "line", *_SESSION_FIELDS, "pid", "session_id",
            "audit_type", "substatement_id", "command_tag", "command_class", "object_type",
            pl.when(pl.col("object_name") != "")
            .then(pl.concat_list("object_name"))
            .otherwise(pl.lit([], pl.List(pl.String)))
            .alias("tables"),
            pl.col("_text").alias("statement"),
            "_param",
            "rows",
            (pl.col("command_tag") == "SELECT").alias("_has_select"),
        )  # fmt: skip
        multi = lines.filter(pl.col("_n") > 1)
        parts = [single]
        if not multi.is_empty():
            parts.append(self._merge_multi(multi, key).select(single.columns))
        merged = pl.concat(parts, how="vertical_relaxed")
        tag = pl.col("command_tag")
        unknown = (pl.col("rows") == 0) & (
            (tag == "FETCH") | ((tag == "COPY") & ~pl.col("_has_select"))
        )
        return merged.with_columns(
            pl.lit("statement").alias("event_kind"),
            split_parameters(merged["_param"]).alias("parameters"),
            pl.when(pl.col("rows").is_null())
            .then(pl.lit("not_logged"))
            .when(unknown)
            .then(pl.lit("unknown"))
            .otherwise(pl.lit("counted"))
            .alias("rows_status"),
            pl.when(unknown).then(None).otherwise(pl.col("rows")).alias("rows"),
        )

    @staticmethod
    def _merge_multi(lines: pl.DataFrame, key: list[str]) -> pl.DataFrame:
        """Merge statements logged on several lines (per relation, per sub-statement)."""
        lines = lines.with_columns(pl.col("_text").drop_nulls().first().over(key))
        # The statement's own command is the line whose tag matches the text's first
        # keyword (COPY for COPY (SELECT ...) TO, whose rows sit on the SELECT line).
        head = pl.col("_text").str.slice(0, 64).str.strip_chars_start().str.to_uppercase()
        tag_word = pl.col("command_tag").str.splitn(" ", 2).struct.field("field_0")
        lines = lines.with_columns(head.str.starts_with(tag_word).fill_null(False).alias("_own"))
        return lines.group_by(key, maintain_order=True).agg(
            pl.col("event_time").min(),
            pl.col("source").first(),
            pl.col("line").min(),
            *[pl.col(f).first() for f in (*_SESSION_FIELDS, "pid", "session_id")],
            pl.when((pl.col("audit_type") == "SESSION").any())
            .then(pl.lit("SESSION"))
            .otherwise(pl.lit("OBJECT"))
            .alias("audit_type"),
            pl.col("substatement_id").min(),
            pl.col("command_tag").sort_by(~pl.col("_own"), "substatement_id").first(),
            pl.col("command_class").sort_by(~pl.col("_own"), "substatement_id").first(),
            pl.col("object_type").drop_nulls().first(),
            pl.col("object_name")
            .filter(pl.col("object_name") != "")
            .unique(maintain_order=True)
            .alias("tables"),
            pl.col("_text").first().alias("statement"),
            pl.col("_param").drop_nulls().first().alias("_param"),
            pl.col("rows").max(),
            (pl.col("command_tag") == "SELECT").any().alias("_has_select"),
        )

    def _session_events(self, records: pl.DataFrame) -> pl.DataFrame:
        msg = pl.col("message")
        sev = pl.col("severity")
        failed_user = msg.str.extract(r'(?:for user|user) "([^"]*)"')
        kind = (
            pl.when(msg.str.starts_with("connection authorized: "))
            .then(pl.lit("connect"))
            .when(msg.str.starts_with("disconnection: "))
            .then(pl.lit("disconnect"))
            .when((sev == "FATAL") & msg.str.contains(_AUTH_FAILED))
            .then(pl.lit("failed_connect"))
            .when((sev == "ERROR") & pl.col("query").is_not_null())
            .then(pl.lit("statement"))
        )
        events = records.with_columns(kind.alias("event_kind")).filter(
            pl.col("event_kind").is_not_null()
        )
        if events.is_empty():
            return empty_events()
        is_error = pl.col("event_kind") == "statement"
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
        events = pl.concat(
            [
                f.with_columns(
                    (pl.col("source") + ":" + pl.col("line").cast(pl.String)).alias("raw_ref")
                )
                for f in frames
            ],
            how="diagonal_relaxed",
        ).sort("event_time", "source", "line", maintain_order=True)
        return conform(
            events.with_columns(
                pl.lit(self.format_name).alias("source_format"),
                pl.lit(self.server, pl.String).alias("server"),
                pl.coalesce(pl.col("session_id"), pl.col("pid").cast(pl.String)).alias(
                    "session_id"
                ),
            )
        )
