"""Kafka records of one partition -> canonical events, through the same parsers as files.

A record's value is one audit record (a log line, or several for a multi-line record) in
any format :mod:`streams.file_source` reads, or one canonical event as a JSON object
(``event_kind``, ``event_time``, ... as in :mod:`streams.schema`). Each partition gets its
own stateful parser (sessions continue across polls), fed the partition's records joined
by newlines, so a Kafka stream parses exactly like the file it was shipped from.

What cannot be used is rejected with a reason, never dropped: a value that is not UTF-8
(``not_utf8``), longer than ``max_record_bytes`` (``too_long``), or that the parser
rejects (its reason). Every reject keeps the record's partition, offset and original bytes
(:class:`RecordReject`) for the dead-letter topic.

Events carry ``raw_ref = "kafka:TOPIC/PARTITION:LINE"`` where ``LINE`` counts the
partition's physical lines from 1 (:meth:`PartitionStream.offset_of_line` maps it back to
the record's offset).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import polars as pl

from streams.base import Parser, ParseResult
from streams.detect import detect_text
from streams.exceptions import UnknownFormatError
from streams.file_source import SourceOptions, make_parser
from streams.schema import EVENT_KINDS, EVENT_SCHEMA, conform, empty_events

#: A value's format when it is a canonical event (not a raw audit record).
CANONICAL: Final = "canonical-json"
#: Default largest value accepted (Kafka's own default ``message.max.bytes`` is ~1 MB).
MAX_RECORD_BYTES: Final = 1024 * 1024
#: :attr:`PartitionStream.high_` of a partition read whose parser has released nothing yet.
NOTHING_YET: Final = dt.datetime.min.replace(tzinfo=dt.UTC)
#: Records of a partition kept for mapping lines back to offsets (held-back parser lines
#: are at most one poll old).
_KEEP_RECORDS: Final = 200_000


class KafkaRecord(Protocol):
    """What this module reads of a kafka-python ``ConsumerRecord``."""

    offset: int
    value: bytes | None


@dataclass(frozen=True)
class RecordReject:
    """One record the detector could not use, for the dead-letter topic."""

    partition: int
    offset: int
    reason: str
    value: bytes


def _is_canonical(text: str) -> bool:
    try:
        obj = json.loads(text)
    except ValueError:
        return False
    return isinstance(obj, dict) and "event_kind" in obj and "event_time" in obj


@dataclass
class PartitionStream:
    """The parsing state of one topic partition (picklable: it is checkpointed).

    Parameters
    ----------
    topic, partition
        Where the records come from (``raw_ref`` names them).
    options
        Format, ``log_line_prefix``, server name, time zones (as for files); ``auto``
        detects the format from the partition's first records.
    max_record_bytes
        Longer values are rejected ``too_long``.
    """

    topic: str
    partition: int
    options: SourceOptions = field(default_factory=SourceOptions)
    max_record_bytes: int = MAX_RECORD_BYTES
    format_: str | None = None
    parser_: Parser | None = None
    next_line_: int = 1
    lines_: list[int] = field(default_factory=list)
    offsets_: list[int] = field(default_factory=list)
    #: the latest event time released (:data:`NOTHING_YET` once records were read with
    #: none released; ``None`` before any): how far the partition is complete
    high_: dt.datetime | None = None

    @property
    def source(self) -> str:
        return f"kafka:{self.topic}/{self.partition}"

    def offset_of_line(self, line: int) -> int | None:
        """Offset of the record holding this partition line (``None``: forgotten)."""
        k = bisect.bisect_right(self.lines_, line) - 1
        return self.offsets_[k] if k >= 0 else None

    def feed(self, records: Sequence[KafkaRecord]) -> tuple[pl.DataFrame, list[RecordReject]]:
        """Events parsed from ``records`` (in offset order) and the records rejected."""
        rejects: list[RecordReject] = []
        texts: list[tuple[int, str]] = []
        for rec in records:
            value = rec.value or b""
            if len(value) > self.max_record_bytes:
                rejects.append(RecordReject(self.partition, rec.offset, "too_long", value))
                continue
            try:
                texts.append((rec.offset, value.decode("utf-8").rstrip("\r\n")))
            except UnicodeDecodeError:
                rejects.append(RecordReject(self.partition, rec.offset, "not_utf8", value))
        if not texts:
            return empty_events(), rejects
        if self.format_ is None:
            self._detect([t for _, t in texts])
        if self.format_ == CANONICAL:
            events = self._canonical(texts, rejects)
        else:
            events = self._parse(texts, rejects)
        if events.height:
            latest = events["event_time"].max()
            if isinstance(latest, dt.datetime) and (self.high_ is None or latest > self.high_):
                self.high_ = latest
        elif self.high_ is None:
            # read, but nothing let go yet (the parser holds the records back): complete
            # up to nothing, not "nothing pending" (None), or the other partitions' events
            # would be released past these records, which would then come late
            self.high_ = NOTHING_YET
        return events, rejects

    def flush(self) -> tuple[pl.DataFrame, list[RecordReject]]:
        """Events the parser still holds back (end of input, or an idle partition)."""
        if self.parser_ is None:
            return empty_events(), []
        rejects: list[RecordReject] = []
        result = self.parser_.flush()
        self._rejects(result, {}, rejects)
        return result.events, rejects

    # -- internals ------------------------------------------------------------------------

    def _detect(self, texts: list[str]) -> None:
        fmt, prefix = self.options.format, self.options.log_line_prefix
        if fmt == "auto":
            if _is_canonical(texts[0]):
                self.format_ = CANONICAL
                return
            lines = [ln for t in texts[:50] for ln in t.split("\n")][:50]
            try:
                detected = detect_text(lines)
            except UnknownFormatError:
                detected = None
            if detected is None:
                return
            fmt, prefix = detected.format, prefix or detected.log_line_prefix
        self.format_ = fmt
        self.parser_ = make_parser(fmt, prefix, self.options)

    def _parse(self, texts: list[tuple[int, str]], rejects: list[RecordReject]) -> pl.DataFrame:
        by_line: dict[int, tuple[int, str]] = {}
        first = self.next_line_
        line = first
        for offset, text in texts:
            self.lines_.append(line)
            self.offsets_.append(offset)
            by_line[line] = (offset, text)
            line += text.count("\n") + 1
        self.next_line_ = line
        if len(self.lines_) > _KEEP_RECORDS:
            del self.lines_[: -_KEEP_RECORDS // 2], self.offsets_[: -_KEEP_RECORDS // 2]
        if self.parser_ is None:  # the format could not be detected from these records
            for offset, text in texts:
                rejects.append(
                    RecordReject(self.partition, offset, "unknown_format", text.encode())
                )
            return empty_events()
        body = "\n".join(t for _, t in texts) + "\n"
        result = self.parser_.feed(body, source=self.source, first_line=first)
        self._rejects(result, by_line, rejects)
        return result.events

    def _rejects(
        self,
        result: ParseResult,
        by_line: dict[int, tuple[int, str]],
        rejects: list[RecordReject],
    ) -> None:
        for line, reason, raw in result.rejects.select("line", "reason", "raw").iter_rows():
            offset = self.offset_of_line(int(line))
            original = by_line.get(int(line))
            value = original[1].encode() if original is not None else (raw or "").encode()
            rejects.append(RecordReject(self.partition, -1 if offset is None else offset,
                                        reason, value))  # fmt: skip

    def _canonical(self, texts: list[tuple[int, str]], rejects: list[RecordReject]) -> pl.DataFrame:
        rows: list[dict[str, Any]] = []
        kept: list[tuple[int, str]] = []
        for offset, text in texts:
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict) or "event_time" not in obj:
                rejects.append(RecordReject(self.partition, offset, "bad_json", text.encode()))
                continue
            row = {k: v for k, v in obj.items() if k in EVENT_SCHEMA and k != "raw_ref"}
            rows.append(row | {"raw_ref": f"{self.source}:{offset}"})
            kept.append((offset, text))
        if not rows:
            return empty_events()
        frame = _canonical_frame(rows)
        # a time that does not parse, or a kind the features do not know (they would skip
        # the event without a word): dead-lettered with the reason
        reason = (
            pl.when(pl.col("event_time").is_null())
            .then(pl.lit("bad_timestamp"))
            .when(pl.col("event_kind").is_in(EVENT_KINDS).not_().fill_null(True))
            .then(pl.lit("bad_event_kind"))
        )
        reasons = frame.select(reason.alias("reason"))["reason"].to_list()
        for (offset, text), why in zip(kept, reasons, strict=True):
            if why is not None:
                rejects.append(RecordReject(self.partition, offset, why, text.encode()))
        return frame.filter(pl.Series(reasons).is_null())


def _canonical_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Canonical events from JSON objects: ISO-8601 times with an offset (or ``Z``); values
    that do not fit their column's type become null, a time that does not parse too.

    Each value is checked against its column before polars sees it, so no record's types
    (an object where a time belongs, a list of numbers for ``tables``) can make polars
    infer a column type that another record then breaks: one frame, no exception.

    >>> f = _canonical_frame([{"event_time": "2026-01-01T02:00:00+02:00", "rows": "9"},
    ...                       {"event_time": {}, "tables": [1], "pid": True}])
    >>> f["event_time"].to_list()[0], f["event_time"][1], f["rows"][0], f["tables"][1]
    (datetime.datetime(2026, 1, 1, 0, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), None, None, None)
    """
    columns = {
        name: [_fits(row.get(name), dtype) for row in rows] for name, dtype in _JSON_SCHEMA.items()
    }
    frame = pl.DataFrame(columns, schema=_JSON_SCHEMA)
    # the zone given: without it polars infers a naive type for the whole column and an
    # offset then makes every value null
    when = pl.col("event_time").str.to_datetime(strict=False, time_unit="us", time_zone="UTC")
    return conform(frame.with_columns(when))


#: What a canonical JSON event may carry, before its times are parsed.
_JSON_SCHEMA: Final = pl.Schema(
    {k: (pl.String if k == "event_time" else v) for k, v in EVENT_SCHEMA.items()}
)
_INT_RANGE: Final = {pl.Int32: 2**31, pl.Int64: 2**63}


def _fits(value: Any, dtype: pl.DataType) -> Any:
    """``value`` if a JSON value of that kind belongs in a column of ``dtype``, else None."""
    if value is None:
        return None
    if dtype == pl.String:
        return value if isinstance(value, str) else None
    if dtype in _INT_RANGE:
        bound = _INT_RANGE[dtype]
        ok = isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound
        return value if ok else None
    if isinstance(dtype, pl.List):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value if ok else None
    return None
