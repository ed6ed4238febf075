"""Parser for the MariaDB ``server_audit`` plugin's file output.

One physical line is one record (the plugin escapes newlines inside statements)::

    timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode

* ``QUERY`` lines carry the statement single-quoted with ``\\'``, ``\\\\``, ``\\n``,
  ``\\t``, ``\\r`` escapes (a quote in the SQL is always ``\\'``, never ``''``); it may
  hold commas and is cut silently at ``server_audit_query_log_limit`` (1024) *escaped*
  characters. Only the framing is checked: opening quote, unescaped closing quote, retcode.
* Table events (``READ``, ``WRITE``, ``CREATE``, ``ALTER``, ``RENAME``, ``DROP``) come
  *before* the ``QUERY`` line with the same connection and query id: they become that
  statement's ``tables`` (``db.table``, lower-case), not rows. One whose statement never
  comes (``server_audit_events=TABLE``, filtered users, stored routines) is held back until
  its connection logs a session event, ``max_pending_lines`` later lines, or ``flush``, and
  then becomes an *orphan* row (``audit_type='TABLE'``, no statement, ``command_tag`` = its
  first operation): access evidence is never dropped.
* ``CONNECT``/``CHANGEUSER``/``PROXY_CONNECT`` are ``connect`` rows, ``DISCONNECT`` and
  ``FAILED_CONNECT`` their own kinds; ``command_tag`` keeps the operation, ``statement`` the
  object if any (proxied account; TLS version from MariaDB 12), ``error_code`` the retcode.
* The host is ``host`` or, from MariaDB 12, ``host:port`` (``localhost:unavailable`` on a
  socket). ``localhost`` is kept as logged (a socket, or TCP with name resolution on).
* Timestamps: the default ``YYYYMMDD HH:MM:SS`` or ISO-like ``server_audit_timestamp_format``
  values (``2024-01-31 10:00:00``, ``20231207T13:14:28.123456+0100``). Without an offset
  they are server local time, converted from ``timezone`` to UTC (the earlier instant when
  ambiguous). Anything else, including the ``TIME`` masks of MariaDB's test results and
  local times skipped by DST, is rejected as ``bad_timestamp``: an event without a time
  would poison every window downstream.
* Other rejects: ``wrong_field_count``, ``truncated`` (a statement without its closing
  quote or retcode), ``bad_audit_payload`` (unknown operation, non-numeric ids...),
  ``too_long``, ``not_utf8``. Blank lines are only counted.

Statements are classed from their first keyword (after blanks, comments and ``(``), see
:data:`CLASS_OF_TAG`: ``READ`` (SELECT, SHOW...), ``WRITE`` (INSERT, UPDATE, DELETE,
REPLACE, LOAD), ``DDL``, ``ROLE`` (GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER or ROLE,
SET PASSWORD), ``FUNCTION`` (CALL, DO), ``MISC_SET`` (other SET, such as the ``SET NAMES``
clients send after connecting), else ``MISC``. MariaDB logs no row counts: ``rows`` is
null and ``rows_status`` ``not_logged`` on every statement.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import ClassVar

import polars as pl

from streams.base import MAX_RECORD_CHARS, ParseResult
from streams.deadletter import REJECT_SCHEMA, rejects_frame
from streams.exceptions import StreamsError
from streams.mariadb.fields import (
    _COMMON,
    _DEFAULT_TS,
    _FIELDS,
    _KNOWN_OPS,
    _QUOTED_TAIL_RE,
    _RET_RE,
    _ROW_SCHEMA,
    _TABLE_SCHEMA,
    _UNESCAPE,
    SESSION_KINDS,
    TABLE_OPS,
    _classify,
    _keywords,
    _localize,
    _parse_time,
    _split_lines,
    _with_client,
    command_class,
)
from streams.schema import conform, empty_events


class MariaDBAuditParser:
    r"""Stateful parser of server_audit files into canonical events (see the module doc).

    Parameters
    ----------
    server
        Server name for every event; default: each line's ``serverhost`` field.
    timezone
        IANA zone the server wrote its local timestamps in (``TZ`` of mariadbd).
    max_pending_lines
        Table events still waiting for their statement this many lines later are emitted
        as orphans, which bounds the held-back state.

    Examples
    --------
    >>> p = MariaDBAuditParser(timezone="Asia/Shanghai")
    >>> log = (
    ...     "20240131 18:00:01,db1,officer1,10.0.0.7,12,345,READ,records,Citizens,\n"
    ...     "20240131 18:00:01,db1,officer1,10.0.0.7,12,345,QUERY,records,"
    ...     "'SELECT * FROM Citizens WHERE full_name = \\'O\\'\\'Brien\\'',0\n"
    ... )
    >>> row = p.feed(log, source="audit.log", first_line=1).events.row(0, named=True)
    >>> row["event_time"].isoformat(), row["tables"], row["command_class"], row["raw_ref"]
    ('2024-01-31T10:00:01+00:00', ['records.citizens'], 'READ', 'audit.log:2')
    >>> row["statement"]
    "SELECT * FROM Citizens WHERE full_name = 'O''Brien'"
    """

    format_name: ClassVar[str] = "mariadb-audit"
    #: How a record line starts (timestamp, serverhost, user, host, ids, operation). Every
    #: physical line is one record, so a chunker may cut before any line; this pattern is
    #: for sniffing the format and resynchronising, not for finding continuation lines.
    record_start: ClassVar[re.Pattern[str]] = re.compile(
        r"^(?:\d{8} \d{2}:\d{2}:\d{2}|\d{4}-?\d{2}-?\d{2}[T ]\d{2}:\d{2}:\d{2}[^,\n]*),"
        r"[^,\n]*,[^,\n]*,[^,\n]*,\d+,\d+,[A-Z_]+,",
        re.MULTILINE,
    )

    def __init__(
        self, server: str | None = None, timezone: str = "UTC", max_pending_lines: int = 100_000
    ) -> None:
        try:  # fail at configuration time, not on the first chunk
            _parse_time(pl.Series(["2000-01-01 00:00:00"]), timezone)
        except Exception as exc:
            raise StreamsError(f"unknown time zone {timezone!r}") from exc
        self.server = server
        self.timezone = timezone
        self.max_pending_lines = max_pending_lines
        #: Line outcomes so far: event, table_merged, table_orphaned, rejected, empty.
        self.counts: Counter[str] = Counter()
        self._seq = 0
        self._pending = pl.DataFrame(schema=_TABLE_SCHEMA)

    def feed(self, text: str, *, source: str, first_line: int) -> ParseResult:
        """Parse a chunk of whole lines; table events may be held back for a later chunk."""
        raw, not_utf8 = _split_lines(text)
        if raw.len() == 0:
            return ParseResult.empty()
        f = self._parse_lines(raw, first_line, not_utf8)
        self._seq += raw.len()
        n_bad = f.height - f["reason"].null_count()
        bad = f.filter(pl.col("reason").is_not_null()) if n_bad else f.clear()
        rejects = self._rejects(bad.filter(pl.col("reason") != ""), source)
        self.counts["empty"] += n_bad - rejects.height
        self.counts["rejected"] += rejects.height
        ok = f.filter(pl.col("reason").is_null()) if n_bad else f
        is_table, lazy = pl.col("op").is_in(TABLE_OPS), ok.lazy()
        # Both splits in one parallel run: eager filters of this wide frame cost 3x more.
        tables, rows = pl.collect_all([
            lazy.filter(is_table).select(*_COMMON, "name", src=pl.lit(source)),
            lazy.filter(~is_table).select(*_COMMON, "ret", "statement", "tag"),
        ])  # fmt: skip
        rows = rows.with_columns(_keywords(rows["statement"], rows["tag"]))
        return ParseResult(self._events(tables, rows, source, final=False), rejects, raw.len())

    def flush(self) -> ParseResult:
        """Emit every held-back table event as an orphan row."""
        empty = pl.DataFrame(schema=_TABLE_SCHEMA)
        rows = pl.DataFrame(schema=_ROW_SCHEMA)
        return ParseResult(self._events(empty, rows, "", final=True), rejects_frame("", []), 0)

    def _parse_lines(self, raw: pl.Series, first_line: int, not_utf8: list[int]) -> pl.DataFrame:
        rest, op, ret = pl.col("rest"), pl.col("op"), pl.col("ret")
        is_q = op == "QUERY"
        ret_len = ret.str.len_bytes().cast(pl.Int64)
        body_len = rest.str.len_chars().cast(pl.Int64) - ret_len - 3
        quoted = rest.str.starts_with("'") & rest.str.contains(_QUOTED_TAIL_RE) & (body_len >= 0)
        stmt = rest.str.slice(1, body_len.clip(lower_bound=0))
        default_ts = pl.col("ts").str.strptime(pl.Datetime("us"), _DEFAULT_TS, strict=False)
        db, obj = pl.col("db"), pl.col("obj")
        name = pl.when(db != "").then(pl.concat_str(db, pl.lit("."), obj)).otherwise(obj)
        bad_fields = ~op.is_in(_KNOWN_OPS) | pl.any_horizontal(pl.col("conn", "qid", "ret")
                                                               .is_null())  # fmt: skip
        reason = (
            pl.when("blank").then(pl.lit(""))
            .when(pl.col("i").is_in(not_utf8)).then(pl.lit("not_utf8"))
            .when(rest.is_null() | pl.col("long")).then(pl.lit("?"))
            .when(pl.col("event_time").is_null()).then(pl.lit("bad_timestamp"))
            .when(is_q & ~pl.col("quoted")).then(pl.lit("?"))
            .when(bad_fields).then(pl.lit("bad_audit_payload"))
            .alias("reason")
        )  # fmt: skip
        i = pl.col("i").cast(pl.Int64)
        f = (
            pl.LazyFrame({"raw": raw})
            .with_row_index("i")
            .with_columns(
                line=i + first_line, seq=i + self._seq,
                f=pl.col("raw").str.splitn(",", 9).struct.rename_fields(_FIELDS),
                blank=pl.col("raw").str.contains(r"^\s*$"),
                long=(pl.col("raw").str.len_bytes() > MAX_RECORD_CHARS)
                & (pl.col("raw").str.len_chars() > MAX_RECORD_CHARS),
            )
            .unnest("f")
            .with_columns(pl.col("conn", "qid").cast(pl.Int64, strict=False),
                          ret=rest.str.extract(_RET_RE, 1))
            .with_columns(
                quoted=is_q & quoted, event_time=_localize(default_ts, self.timezone),
                statement=pl.when(is_q & quoted)
                .then(stmt.str.replace_many(*_UNESCAPE, leftmost=True)),
                # Any non-QUERY object; a statement's opening quote fails it at once.
                obj=rest.str.extract(r"^([^'].*|),-?\d{0,9}$", 1),
            )
            .with_columns(reason, tag=pl.col("statement").str.extract(r"^[A-Za-z]+", 0)
                          .str.to_uppercase(),
                          name=pl.when(op.is_in(TABLE_OPS)).then(name.str.to_lowercase()))
            # Row-wise work: the streaming engine spreads it over all cores, in order.
            .collect(engine="streaming")
        )  # fmt: skip
        late = pl.col("event_time").is_null() & ~pl.col("blank")
        if f.select(late.any()).item():  # not the default format: the general pattern
            idx = f.select(late.arg_true()).to_series()
            fixed = _parse_time(f["ts"].gather(idx), self.timezone)
            f = f.with_columns(f["event_time"].scatter(idx, fixed)).with_columns(reason)
        return f

    def _rejects(self, bad: pl.DataFrame, source: str) -> pl.DataFrame:
        """Rejects for flagged lines; "?" lines get their exact reason from ``_classify``."""
        known = bad.filter(pl.col("reason") != "?")
        known = known.select(source=pl.lit(source), line="line", reason="reason", raw="raw")
        odd = bad.filter(pl.col("reason") == "?")
        time_ok = odd["event_time"].is_not_null()
        cases = zip(odd["line"], odd["raw"], time_ok, strict=True)
        rows = [(line, _classify(raw, ok), raw) for line, raw, ok in cases]
        return pl.concat([known.cast(REJECT_SCHEMA), rejects_frame(source, rows)]).sort("line")

    def _events(
        self, tables: pl.DataFrame, rows: pl.DataFrame, source: str, *, final: bool
    ) -> pl.DataFrame:
        matched, orphans = self._match_tables(tables, rows, final=final)
        self.counts["event"] += rows.height
        self.counts["table_merged"] += matched.height
        self.counts["table_orphaned"] += orphans.height
        lists = self._table_lists(matched, "target")
        rows = rows.join(lists, left_on="seq", right_on="target", how="left", maintain_order="left")
        out = self._row_events(rows, source)
        if orphans.height:
            anchors = orphans.with_columns(pl.col("seq").min().over("conn", "qid").alias("a"))
            first = orphans.group_by("conn", "qid").agg(pl.all().sort_by("seq").first())
            o = self._table_lists(anchors, "a").join(first, left_on="a", right_on="seq")
            o = self._orphan_events(o.rename({"a": "seq"}))
            out = pl.concat([out.with_columns(seq=rows["seq"]), o], how="diagonal_relaxed")
            out = conform(out.sort("seq"))
        return out

    def _match_tables(
        self, tables: pl.DataFrame, rows: pl.DataFrame, *, final: bool
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Give each table event its QUERY line's seq as ``target`` (the next QUERY line
        with the same connection and query id); return (matched, orphans), hold the rest."""
        # Held-back rows precede the chunk: both sides stay sorted by seq for the as-of join.
        tables = pl.concat([self._pending, tables])
        queries = rows.filter(pl.col("op") == "QUERY").select("conn", "qid", target="seq")
        asof = {"left_on": "seq", "strategy": "forward", "check_sortedness": False}
        tables = tables.join_asof(queries, right_on="target", by=["conn", "qid"], **asof)
        unmatched = pl.col("target").is_null()
        if tables.is_empty() or not tables.select(unmatched.any()).item():
            self._pending = self._pending.clear()
            return tables, tables.clear()
        # A later session event of the connection means the statement never comes.
        closers = rows.filter(pl.col("op") != "QUERY").select("conn", closed="seq")
        tables = tables.join_asof(closers, right_on="closed", by="conn", **asof)
        old = pl.col("seq") < self._seq - self.max_pending_lines
        orphan = unmatched & (pl.lit(final) | pl.col("closed").is_not_null() | old)
        self._pending = tables.filter(unmatched & ~orphan).select(_TABLE_SCHEMA.names())
        return tables.filter(~unmatched), tables.filter(orphan)

    @staticmethod
    def _table_lists(tables: pl.DataFrame, key: str) -> pl.DataFrame:
        """``key`` -> unique ``db.table`` names; a RENAME object ``old|db.new`` gives two."""
        names = tables.select(key, "seq", part=pl.lit(0), name="name")
        rename = tables.select(
            (pl.col("op") == "RENAME") & pl.col("obj").str.contains("|", literal=True)
        ).to_series()
        if rename.any():
            split = pl.col("obj").str.splitn("|", 2).struct
            old, new = split.field("field_0"), split.field("field_1")
            r = tables.filter(rename)
            old_name = pl.when(pl.col("db") != "").then(pl.concat_str("db", pl.lit("."), old))
            parts = [
                r.select(key, "seq", part=pl.lit(0), name=old_name.otherwise(old)),
                r.select(key, "seq", part=pl.lit(1), name=new),
            ]
            parts = [p.with_columns(pl.col("name").str.to_lowercase()) for p in parts]
            names = pl.concat([names.filter(~rename), *parts]).sort("seq", "part")
        # Rows keep their order inside each group, so the lists follow the log order.
        tables_list = pl.col("name").unique(maintain_order=True).alias("tables")
        return names.group_by(key).agg(tables_list)

    def _common(self) -> list[pl.Expr]:
        server = pl.lit(self.server) if self.server else pl.col("serverhost")
        return [
            pl.col("event_time"), pl.lit(self.format_name).alias("source_format"),
            server.alias("server"), pl.when(pl.col("db") != "").then("db").alias("database"),
            pl.col("user", "client_ip", "client_port"),
            pl.col("conn").cast(pl.String).alias("session_id"),
        ]  # fmt: skip

    def _row_events(self, rows: pl.DataFrame, source: str) -> pl.DataFrame:
        """QUERY and session lines, in input order."""
        if rows.is_empty():
            return empty_events()
        op, ret, is_q = pl.col("op"), pl.col("ret"), pl.col("op") == "QUERY"
        return conform(_with_client(rows).select(
            *self._common(),
            op.replace_strict(SESSION_KINDS, default="statement").alias("event_kind"),
            pl.when(is_q).then(pl.lit("QUERY")).alias("audit_type"),
            pl.when(is_q).then("qid").alias("statement_id"),
            pl.when(is_q).then(command_class(pl.col("tag"), pl.col("second")))
            .alias("command_class"),
            pl.when(is_q).then("tag").otherwise(op).alias("command_tag"),
            pl.col("tables").fill_null(pl.lit([], pl.List(pl.String))),
            # Session events keep their object: the proxied account, or the TLS version.
            pl.when(is_q).then("statement").when(pl.col("obj") != "").then("obj")
            .alias("statement"),
            pl.when(is_q).then(pl.lit("not_logged")).alias("rows_status"),
            # retcode 0 is success: null, as for PostgreSQL statements that succeeded
            pl.when((ret != "") & (ret != "0")).then(ret).alias("error_code"),
            pl.format("{}:{}", pl.lit(source), "line").alias("raw_ref"),
        ))  # fmt: skip

    def _orphan_events(self, o: pl.DataFrame) -> pl.DataFrame:
        ddl = pl.col("op").is_in(["CREATE", "ALTER", "RENAME", "DROP"])
        return _with_client(o).select(
            *self._common(),
            pl.lit("statement").alias("event_kind"), pl.lit("TABLE").alias("audit_type"),
            pl.col("qid").alias("statement_id"),
            pl.when(ddl).then(pl.lit("DDL")).otherwise("op").alias("command_class"),
            pl.col("op").alias("command_tag"), pl.col("tables"),
            pl.lit("not_logged").alias("rows_status"),
            pl.format("{}:{}", "src", "line").alias("raw_ref"), pl.col("seq"),
        )  # fmt: skip
