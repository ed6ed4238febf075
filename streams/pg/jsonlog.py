"""PostgreSQL 15+ ``jsonlog`` with pgaudit records.

One JSON object per line (PostgreSQL escapes newlines inside values). The fast path
reads the chunk with :func:`polars.read_ndjson`; a chunk with a line that is not valid
JSON, or an object that is not a log record, is re-read line by line so only the bad
lines are rejected.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Final

import polars as pl

from streams.base import MAX_RECORD_CHARS, ParseResult
from streams.deadletter import empty_rejects, rejects_frame
from streams.pg.base import PgParser

#: The jsonlog keys we read; PostgreSQL omits keys whose value is null.
JSON_SCHEMA: Final = pl.Schema(
    {
        "timestamp": pl.String,
        "user": pl.String,
        "dbname": pl.String,
        "pid": pl.Int64,
        "remote_host": pl.String,
        "remote_port": pl.Int64,
        "session_id": pl.String,
        "line_num": pl.Int64,
        "error_severity": pl.String,
        "state_code": pl.String,
        "message": pl.String,
        "context": pl.String,
        "statement": pl.String,
        "application_name": pl.String,
    }
)


def _records(frame: pl.DataFrame, source: str, lines: list[int]) -> pl.DataFrame:
    return frame.select(
        pl.lit(source).alias("source"),
        pl.Series("line", lines, pl.Int64),
        pl.col("timestamp"),
        pl.col("pid"),
        pl.col("session_id"),
        pl.col("user"),
        pl.col("dbname").alias("database"),
        pl.col("application_name").alias("application"),
        pl.col("remote_host").alias("client_ip"),
        pl.col("remote_port").cast(pl.Int32, strict=False).alias("client_port"),
        pl.col("error_severity").alias("severity"),
        pl.col("state_code").alias("sqlstate"),
        pl.col("message"),
        pl.col("context"),
        pl.col("statement").alias("query"),
    )


class PgauditJsonlogParser(PgParser):
    """Parser for ``log_destination = 'jsonlog'`` files.

    Examples
    --------
    >>> p = PgauditJsonlogParser()
    >>> line = ('{"timestamp":"2026-11-28 07:50:00.123 UTC","user":"bob","dbname":"records",'
    ...   '"pid":9,"remote_host":"127.0.0.1","remote_port":5001,"session_id":"65a1.9",'
    ...   '"error_severity":"LOG","message":"AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1"}')
    >>> _ = p.feed(line + "\\nnot json\\n", source="pg.json", first_line=1)
    >>> _.rejects.select("line", "reason").row(0), p.flush().events["user"].to_list()
    ((2, 'bad_json'), ['bob'])
    """

    format_name: ClassVar[str] = "pgaudit-json"
    record_start: ClassVar[re.Pattern[str]] = re.compile(r"\{")

    def feed(self, text: str, *, source: str, first_line: int) -> ParseResult:
        raw_lines = text.split("\n")
        if raw_lines and raw_lines[-1] == "":
            raw_lines.pop()
        numbers = [first_line + i for i, line in enumerate(raw_lines) if line.strip()]
        kept = [line for line in raw_lines if line.strip()]
        if not kept:
            return ParseResult(ParseResult.empty().events, empty_rejects(), len(raw_lines))
        frame = self._fast(kept)
        rejects = empty_rejects()
        if frame is None:
            frame, numbers, rejects = self._slow(kept, numbers, source)
        result = self.builder_.feed(_records(frame, source, numbers))
        return ParseResult(result.events, pl.concat([rejects, result.rejects]), len(raw_lines))

    @staticmethod
    def _valid(frame: pl.DataFrame) -> pl.Series:
        return (
            frame["timestamp"].is_not_null()
            & frame["message"].is_not_null()
            & frame["error_severity"].is_not_null()
        )

    def _fast(self, lines: list[str]) -> pl.DataFrame | None:
        if any(len(line) > MAX_RECORD_CHARS for line in lines):
            return None
        try:
            frame = pl.read_ndjson("\n".join(lines).encode(), schema=JSON_SCHEMA)
        except pl.exceptions.PolarsError:
            return None
        if frame.height != len(lines) or not self._valid(frame).all():
            return None
        return frame

    def _slow(
        self, lines: list[str], numbers: list[int], source: str
    ) -> tuple[pl.DataFrame, list[int], pl.DataFrame]:
        good: list[dict[str, object]] = []
        good_numbers: list[int] = []
        bad: list[tuple[int, str, str]] = []
        for number, line in zip(numbers, lines, strict=True):
            if len(line) > MAX_RECORD_CHARS:
                bad.append((number, "too_long", line[:MAX_RECORD_CHARS]))
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                cut = line.lstrip().startswith("{") and not line.rstrip().endswith("}")
                bad.append((number, "truncated" if cut else "bad_json", line))
                continue
            if not isinstance(obj, dict):
                bad.append((number, "bad_json", line))
                continue
            row = {k: obj.get(k) for k in JSON_SCHEMA}
            required = (row["timestamp"], row["message"], row["error_severity"])
            if not all(isinstance(v, str) for v in required):
                bad.append((number, "bad_json", line))
                continue
            good.append(row)
            good_numbers.append(number)
        frame = pl.DataFrame(good, schema=JSON_SCHEMA, strict=False)
        return frame, good_numbers, rejects_frame(source, bad)
