"""PostgreSQL ``csvlog`` with pgaudit records.

The fast path hands a whole chunk to :func:`polars.read_csv`. A chunk that polars cannot
read, or that yields rows that are not log records (garbage, a truncated line, a
different column count), is re-read on the slow path: the chunk is cut into candidate
records at lines that start with a timestamp, each candidate is parsed with :mod:`csv`,
and the ones that fail are rejected with their text, so one bad line costs only itself.
PostgreSQL 12 (23 columns), 13 (24) and 14+ (26) layouts are accepted.
"""

from __future__ import annotations

import csv
import io
import re
from typing import ClassVar, Final

import polars as pl

from streams.base import MAX_RECORD_CHARS, ParseResult
from streams.chunking import count_lines
from streams.deadletter import empty_rejects, rejects_frame
from streams.pg.base import PgParser
from streams.pg.prepare import PreparedRecords, RawLookup, prepare_records

CSV_COLUMNS: Final = (
    "log_time", "user_name", "database_name", "process_id", "connection_from",
    "session_id", "session_line_num", "command_tag", "session_start_time",
    "virtual_transaction_id", "transaction_id", "error_severity", "sql_state_code",
    "message", "detail", "hint", "internal_query", "internal_query_pos", "context",
    "query", "query_pos", "location", "application_name", "backend_type", "leader_pid",
    "query_id",
)  # fmt: skip
_WIDTHS: Final = (23, 24, 26)
#: Columns that can hold a newline (the others are numbers, ids, times and names).
_FREE_TEXT: Final = frozenset(
    {"message", "detail", "hint", "internal_query", "context", "query", "application_name"}
)
_RECORD_START = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
#: The columns the fast path materialises (same positions in the 23/24/26 layouts);
#: skipping the rest makes polars' reader ~40% faster.
_NEEDED: Final = (0, 1, 2, 3, 4, 5, 11, 12, 13, 18, 19, 22)


def _records(
    frame: pl.DataFrame, source: str, first_line: int, *, one_line_each: bool = False
) -> pl.DataFrame:
    """Map csvlog columns onto the shared record frame and number physical lines.

    ``one_line_each`` says the caller knows no record spans several lines.
    """
    if one_line_each:
        span = pl.lit(1, pl.UInt32)
    else:
        newlines = pl.sum_horizontal(
            [
                pl.col(c).str.count_matches("\n", literal=True).fill_null(0)
                for c in frame.columns
                if c in _FREE_TEXT
            ]
        )
        # A series, not an expression: "line" and "_span" both use it, and an eager
        # select would count every column's newlines once for each.
        span = frame.select((newlines + 1).alias("_span")).to_series()
    frame = frame.with_columns(_client_address(frame))
    return frame.select(
        pl.lit(source).alias("source"),
        (
            pl.int_range(first_line, first_line + pl.len(), dtype=pl.Int64)
            if one_line_each
            else pl.lit(first_line, pl.Int64) + span.cum_sum() - span
        ).alias("line"),
        pl.col("log_time").alias("timestamp"),
        pl.col("process_id").cast(pl.Int64, strict=False).alias("pid"),
        pl.col("session_id"),
        pl.col("user_name").alias("user"),
        pl.col("database_name").alias("database"),
        pl.col("application_name").alias("application")
        if "application_name" in frame.columns
        else pl.lit(None, pl.String).alias("application"),
        pl.col("client_ip"),
        pl.col("client_port"),
        pl.col("error_severity").alias("severity"),
        pl.col("sql_state_code").alias("sqlstate"),
        pl.col("message"),
        pl.col("context"),
        pl.col("query"),
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
        span.alias("_span"),
    )


def _split_hosts(values: pl.DataFrame) -> pl.DataFrame:
    """``connection_from`` values ("host:port"; IPv6 hosts hold colons too) -> ip, port."""
    address = pl.col("connection_from")
    # One capture group and a slice: a two-group pattern is ~2x slower.
    port = address.str.extract(r":([0-9]+)$")
    host = address.str.head(-(port.str.len_bytes().cast(pl.Int64) + 1))
    return values.with_columns(
        pl.coalesce(host, address).alias("client_ip"),
        port.cast(pl.Int32, strict=False).alias("client_port"),
    )


def _client_address(frame: pl.DataFrame) -> list[pl.Series]:
    """``client_ip`` and ``client_port`` of every record, each distinct value split once.

    A session repeats its address on every record. When sessions come in long runs of
    records (most do), each run's first record is split and copied down the run;
    otherwise each distinct value is split and joined back.
    """
    address = pl.col("connection_from")
    starts = frame.select(
        (address.ne_missing(address.shift(1)) | (pl.int_range(pl.len()) == 0)).alias("s")
    ).to_series()
    runs = int(starts.sum())
    if runs * 4 <= frame.height:
        heads = _split_hosts(frame.select(address.filter(starts)))
        run = starts.cast(pl.UInt32).cum_sum() - 1
        return [heads.get_column(c).gather(run) for c in ("client_ip", "client_port")]
    hosts = _split_hosts(frame.select(address.unique().drop_nulls()))
    # Join only the key: a join copies every column of its left side.
    mapped = frame.select("connection_from").join(
        hosts, on="connection_from", how="left", maintain_order="left"
    )
    return [mapped.get_column(c) for c in ("client_ip", "client_port")]


def _raw_from_bytes(data: bytes, records: pl.DataFrame, first_line: int) -> RawLookup:
    """Cut rejected records' original text out of the chunk by their line numbers."""

    def raw_of(rows: pl.Series) -> pl.Series:
        lines = data.split(b"\n")
        picked = records.select("line", "_span")[rows]
        out = []
        for line, span in picked.iter_rows():
            start = line - first_line
            out.append(b"\n".join(lines[start : start + span]).decode("utf-8", "replace"))
        return pl.Series(out, dtype=pl.String)

    return raw_of


def _raw_lookup(frame: pl.DataFrame) -> RawLookup:
    """Rebuild rejected records' CSV text from their fields (the fast path keeps none)."""

    def raw_of(rows: pl.Series) -> pl.Series:
        quoted = [
            pl.when(pl.col(c).is_null())
            .then(pl.lit(""))
            .otherwise('"' + pl.col(c).str.replace_all('"', '""', literal=True) + '"')
            for c in frame.columns
        ]
        picked = frame[rows]
        return picked.select(pl.concat_str(quoted, separator=",")).to_series()

    return raw_of


class PgauditCsvlogParser(PgParser):
    """Parser for ``log_destination = 'csvlog'`` files.

    Parameters
    ----------
    server
        Server name for the ``server`` column.
    abbreviations
        Time-zone abbreviation table (:func:`streams.pg.timestamps.abbreviation_table`).

    Examples
    --------
    >>> p = PgauditCsvlogParser()
    >>> line = ('2026-11-28 07:50:00.123 UTC,"alice","records",4242,"127.0.0.1:5000",'
    ...         '"65a1.1092",3,"SELECT",2026-11-28 07:49:59 UTC,3/7,0,LOG,00000,'
    ...         '"AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.citizens,'
    ...         '""SELECT full_name, phone FROM citizens"",<none>,12",,,,,,,,,"psql",'
    ...         '"client backend",,0\\n')
    >>> r = p.feed(line, source="pg.csv", first_line=1)
    >>> e = p.flush().events
    >>> e.select("user", "client_ip", "tables", "rows").row(0)
    ('alice', '127.0.0.1', ['public.citizens'], 12)
    """

    format_name: ClassVar[str] = "pgaudit-csv"
    record_start: ClassVar[re.Pattern[str]] = _RECORD_START

    def prepare_bytes(
        self, data: bytes, *, source: str, first_line: int, lines: int | None = None
    ) -> PreparedRecords | None:
        """Stateless fast path on undecoded bytes (thread-safe); ``None`` means the chunk
        needs :meth:`feed`. Hand the result to :meth:`consume` in input order.

        ``lines`` is the chunk's physical line count if the caller already has it.
        """
        frame = self._fast(data, _NEEDED)
        if frame is None:
            return None
        physical = count_lines(data) if lines is None else lines
        # As many records as lines: every record is one line (none is empty), so there
        # are no newlines to count.
        records = _records(frame, source, first_line, one_line_each=frame.height == physical)
        if records["_span"].sum() != physical:
            # A column we skipped holds a newline: read them all to number lines right.
            frame = self._fast(data, None)
            if frame is None:
                return None
            records = _records(frame, source, first_line)
        return prepare_records(
            records, self.abbreviations, _raw_from_bytes(data, records, first_line)
        )

    def consume(self, prepared: PreparedRecords) -> ParseResult:
        return self.builder_.consume(prepared)

    def feed(self, text: str, *, source: str, first_line: int) -> ParseResult:
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if not text or text.isspace():
            return ParseResult(ParseResult.empty().events, empty_rejects(), lines)
        prepared = self.prepare_bytes(text.encode(), source=source, first_line=first_line)
        if prepared is not None:
            result = self.consume(prepared)
            return ParseResult(result.events, result.rejects, lines)
        rejects = empty_rejects()
        frame, rejects, starts = self._slow(text, source, first_line)
        if not frame.height:
            return ParseResult(ParseResult.empty().events, rejects, lines)
        records = _records(frame, source, first_line).with_columns(
            pl.Series("line", starts, pl.Int64)
        )
        result = self.builder_.feed(records, _raw_lookup(frame))
        return ParseResult(result.events, pl.concat([rejects, result.rejects]), lines)

    @staticmethod
    def _fast(data: bytes, columns: tuple[int, ...] | None) -> pl.DataFrame | None:
        width = _first_record_width(data)
        if width not in _WIDTHS:
            return None
        picked = [i for i in columns if i < width] if columns is not None else list(range(width))
        try:
            frame = pl.read_csv(
                data,
                has_header=False,
                infer_schema=False,
                columns=picked,
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError:  # unreadable here: take the careful path
            return None
        if frame.height == 0 or frame.width != len(picked):
            return None
        # The reader returns each column in many pieces, and every eager operation on a
        # frame in pieces first joins all of its columns again: join them once here.
        frame = frame.rechunk()
        frame.columns = [CSV_COLUMNS[i] for i in picked]
        # A row short of fields is not a record: take the careful path. A row whose
        # first field is not a timestamp is rejected ``bad_timestamp`` by the time
        # parse, with its text, so no pattern needs to run over every record here.
        if frame["error_severity"].null_count() or frame["log_time"].null_count():
            return None
        return frame

    @staticmethod
    def _slow(
        text: str, source: str, first_line: int
    ) -> tuple[pl.DataFrame, pl.DataFrame, list[int]]:
        """Cut at timestamp lines, parse each candidate alone, reject the failures."""
        candidates: list[tuple[int, list[str]]] = []
        for i, line in enumerate(text.splitlines(keepends=True)):
            if _RECORD_START.match(line) or not candidates:
                candidates.append((first_line + i, [line]))
            else:
                candidates[-1][1].append(line)
        rows: list[list[str | None]] = []
        starts: list[int] = []
        bad: list[tuple[int, str, str]] = []
        width: int | None = None
        for start, parts in candidates:
            raw = "".join(parts)
            if not raw.strip():
                continue
            reason = None
            if len(raw) > MAX_RECORD_CHARS:
                reason = "too_long"
            elif not _RECORD_START.match(raw):
                reason = "bad_csv"
            else:
                fields = _csv_fields(raw)
                if fields is None:
                    reason = "truncated" if raw.count('"') % 2 else "bad_csv"
                elif len(fields) not in _WIDTHS or (width is not None and len(fields) != width):
                    reason = "wrong_field_count"
                else:
                    width = len(fields)
                    rows.append([f if f != "" else None for f in fields])
                    starts.append(start)
            if reason:
                bad.append((start, reason, raw.rstrip("\n")[:MAX_RECORD_CHARS]))
        schema = dict.fromkeys(CSV_COLUMNS[: width or 26], pl.String)
        frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame()
        return frame, rejects_frame(source, bad), starts


def _first_record_width(data: bytes) -> int | None:
    """Field count of the chunk's first record (the layout: 23, 24 or 26 columns)."""
    head = data[: 1 << 16].decode("utf-8", "replace")
    try:
        first = next(csv.reader(io.StringIO(head)), None)
    except csv.Error:
        return None
    return len(first) if first else None


def _csv_fields(raw: str) -> list[str] | None:
    try:
        reader = csv.reader(io.StringIO(raw), strict=True)
        records = list(reader)
    except csv.Error:
        return None
    return records[0] if len(records) == 1 else None
