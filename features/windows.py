"""Per-user tumbling windows in event time: what each user did per 5 minutes, hour and day.

:class:`WindowAggregator` keeps, per scale, the partial aggregates of every open window
(one row per user and window start) and merges each micro-batch of marked events
(:func:`features.access.event_features` + :meth:`features.novelty.SeenSets.mark`) into
them with one polars ``group_by`` per scale. A window closes when the watermark (latest
event time minus ``lateness`` seconds) reaches its end; :meth:`WindowAggregator.advance`
returns the closed windows as rows of the window frame (:data:`WINDOW_FEATURES` plus
context). An event older than a closed window (later than ``lateness``) is counted in
``late_events_`` and added to the user's first open window: counts are never dropped.

Distinct counts (people, templates, tables) keep their keys (unique per batch) until the
window closes; evidence keeps the 5 statements with the most sensitive rows.

>>> import datetime as dt
>>> t0 = dt.datetime(2024, 3, 4, 9, tzinfo=dt.UTC)
>>> ev = pl.DataFrame({
...     "event_time": [t0, t0 + dt.timedelta(minutes=1), t0 + dt.timedelta(minutes=7)],
...     "user": ["d07"] * 3, "client_ip": ["10.0.0.7"] * 3, "session_id": ["s"] * 3,
...     "fingerprint": ["SELECT phone FROM citizens WHERE national_id = ?"] * 3,
...     "fingerprint_id": [1, 1, 1], "tables_read": [["public.citizens"]] * 3,
...     "classes": [["phone"]] * 3, "subject_keys": [[11], [12], [11]],
...     **{s: [1.0, 1.0, 1.0] for s in EVENT_SIGNALS},
...     "new_tables": [1.0, 0, 0], "new_templates": [1.0, 0, 0], "new_ips": [1.0, 0, 0],
...     "new_classes": [["phone"], [], []],
... }, schema_overrides={"fingerprint_id": pl.UInt64, "subject_keys": pl.List(pl.UInt64)})
>>> agg = WindowAggregator(scales=("5m",), lateness=0)
>>> agg.add(ev)
>>> agg.advance().select("window_start", "statements", "subjects", "new_ips").rows()
[(datetime.datetime(2024, 3, 4, 9, 0, tzinfo=zoneinfo.ZoneInfo(key='UTC')), 2.0, 2.0, 1.0)]
>>> agg.flush()["statements"].to_list()
[1.0]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from features.access import EVENT_SIGNALS

#: Window scales and their length.
SCALES: Final = {
    "5m": dt.timedelta(minutes=5),
    "1h": dt.timedelta(hours=1),
    "1d": dt.timedelta(days=1),
}

#: The numeric features models learn, in this order (see ARCHITECTURE.md).
WINDOW_FEATURES: Final = (
    "statements",
    "rows_read",
    "sensitive_rows",
    "identifier_rows",
    "contact_rows",
    "subjects",
    "templates",
    "tables",
    "exports",
    "pages",
    "lookups",
    "sweep_rows",
    "unsized_reads",
    "max_statement_rows",
)

_SUMS: Final = (*EVENT_SIGNALS, "new_tables", "new_templates", "new_ips")
#: Distinct sets kept per open window: name -> (source column, is it a list column).
_SETS: Final = {
    "subjects": ("subject_keys", True),
    "templates": ("fingerprint_id", False),
    "table_names": ("tables_read", True),
    "client_ips": ("client_ip", False),
    "classes": ("classes", True),
    "new_classes": ("new_classes", True),
}
#: Sets whose members are listed in the window frame (the others are only counted).
_LISTED: Final = ("table_names", "client_ips", "classes", "new_classes")
_COUNTED: Final = {"subjects": "subjects", "templates": "templates", "table_names": "tables"}
EVIDENCE_DTYPE: Final = pl.Struct(
    {
        "time": pl.Datetime("us", "UTC"),
        "statement": pl.String,
        "rows": pl.Int64,
        "sensitive_rows": pl.Int64,
        "tables": pl.List(pl.String),
    }
)
EVIDENCE_LIMIT: Final = 5
_KEY: Final = ("user", "window_start")
_EVIDENCE_ORDER: Final = (["sensitive_rows", "rows", "time"], [True, True, False])


def _evidence_rows(events: pl.DataFrame) -> pl.DataFrame:
    """Candidate evidence of every event, most telling first (see :func:`_top_evidence`)."""
    by, descending = _EVIDENCE_ORDER
    return events.select(
        "user",
        "event_time",
        time=pl.col("event_time"),
        statement=pl.col("fingerprint"),
        rows=pl.col("rows_read").cast(pl.Int64),
        sensitive_rows=pl.col("sensitive_rows").cast(pl.Int64),
        tables=pl.col("tables_read"),
    ).sort(by, descending=descending, maintain_order=True)


def _top_evidence(rows: pl.DataFrame, *, ordered: bool = False) -> pl.DataFrame:
    """The most telling statements of each window: most sensitive rows, most rows, earliest
    (``ordered``: the rows are already in that order)."""
    if not ordered:
        by, descending = _EVIDENCE_ORDER
        rows = rows.sort(by, descending=descending, maintain_order=True)
    return rows.group_by(*_KEY, maintain_order=True).head(EVIDENCE_LIMIT)


def _set_rows(events: pl.DataFrame, name: str) -> pl.DataFrame:
    """(user, event_time, value) of one distinct set, lists exploded, nulls dropped."""
    column, is_list = _SETS[name]
    frame = events.select("user", "event_time", value=pl.col(column))
    if is_list:
        frame = frame.explode("value")
    return frame.drop_nulls("value")


@dataclass
class _Batch:
    """One batch's events prepared once for every scale (lists exploded, evidence ranked)."""

    events: pl.DataFrame
    sets: dict[str, pl.DataFrame]
    evidence: pl.DataFrame

    @classmethod
    def of(cls, events: pl.DataFrame) -> _Batch:
        sets = {name: _set_rows(events, name) for name in _SETS}
        return cls(events, sets, _evidence_rows(events))


def _sums(frame: pl.DataFrame, *, first: bool) -> pl.DataFrame:
    """Per-window sums (``first``: of events; else: merging earlier sums)."""
    return (
        frame.lazy()
        .group_by(*_KEY)
        .agg(
            (pl.len().cast(pl.Float64) if first else pl.col("statements").sum()).alias(
                "statements"
            ),
            *(pl.col(c).sum() for c in _SUMS),
            pl.col("sensitive_rows" if first else "max_statement_rows")
            .max()
            .alias("max_statement_rows"),
            pl.col("event_time" if first else "first_time").min().alias("first_time"),
            pl.col("event_time" if first else "last_time").max().alias("last_time"),
        )
        .collect()
    )


@dataclass
class _Open:
    """The open windows of one scale, as flat frames keyed by (user, window_start).

    Flat on purpose: no list columns are aggregated while windows are open (cheaper, and
    polars 2.1 intermittently crashed merging list columns inside ``group_by``).
    """

    sums: pl.DataFrame
    sets: dict[str, pl.DataFrame]
    evidence: pl.DataFrame

    @classmethod
    def of(cls, batch: _Batch, start: pl.Expr) -> _Open:
        """The batch's windows, ``start`` giving each event's window start."""
        start = start.alias("window_start")
        return cls(
            _sums(batch.events.with_columns(start), first=True),
            {
                name: rows.select("user", start, "value").unique(maintain_order=True)
                for name, rows in batch.sets.items()
            },
            _top_evidence(batch.evidence.with_columns(start).drop("event_time"), ordered=True),
        )

    def merge(self, other: _Open) -> _Open:
        return _Open(
            _sums(pl.concat([self.sums, other.sums]), first=False),
            # Sets stay unique per batch only: a value seen in two batches is kept twice
            # until the window closes (duplicates cost less than re-deduplicating every
            # open window's set on every batch).
            {
                name: pl.concat([frame, other.sets[name]], rechunk=False)
                for name, frame in self.sets.items()
            },
            _top_evidence(pl.concat([self.evidence, other.evidence])),
        )

    def split(self, last_start: dt.datetime | None) -> tuple[_Open, _Open]:
        """(windows starting at or before ``last_start``, the rest); all when ``None``."""
        done = pl.lit(True) if last_start is None else pl.col("window_start") <= last_start

        def part(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
            return frame.filter(done), frame.filter(~done)

        sums, evidence = part(self.sums), part(self.evidence)
        sets = {name: part(frame) for name, frame in self.sets.items()}
        return (
            _Open(sums[0], {n: f[0] for n, f in sets.items()}, evidence[0]),
            _Open(sums[1], {n: f[1] for n, f in sets.items()}, evidence[1]),
        )

    def close(self, scale: str, every: dt.timedelta) -> pl.DataFrame:
        """The window-frame rows of these windows."""
        frame = self.sums
        sets = {name: rows.unique() for name, rows in self.sets.items()}
        for name, out in _COUNTED.items():
            counts = sets[name].group_by(*_KEY).agg(pl.len().cast(pl.Float64).alias(out))
            frame = frame.join(counts, on=_KEY, how="left")
        for name in _LISTED:
            lists = sets[name].sort("value").group_by(*_KEY).agg(pl.col("value").alias(name))
            frame = frame.join(lists, on=_KEY, how="left")
        evidence = self.evidence.group_by(*_KEY, maintain_order=True).agg(
            pl.struct(*(f.name for f in EVIDENCE_DTYPE.fields)).alias("evidence")
        )
        frame = frame.join(evidence, on=_KEY, how="left")
        return frame.with_columns(
            *(pl.col(out).fill_null(0.0) for out in _COUNTED.values()),
            *(pl.col(n).fill_null(pl.lit([], dtype=pl.List(pl.String))) for n in _LISTED),
            scale=pl.lit(scale),
            window_end=pl.col("window_start") + every,
        )


class WindowAggregator:
    """Open per-user windows at several scales, closed by an event-time watermark.

    Parameters
    ----------
    scales
        Names from :data:`SCALES`.
    lateness
        Seconds an event may arrive after later ones and still land in its own window.
    """

    def __init__(self, scales: Sequence[str] = tuple(SCALES), lateness: float = 60.0) -> None:
        self.scales = tuple(scales)
        self.lateness = lateness

    def _state(self) -> dict[str, _Open]:
        if not hasattr(self, "open_"):
            unknown = set(self.scales) - set(SCALES)
            if unknown:
                raise ValueError(f"unknown window scale(s) {sorted(unknown)}")
            self.open_: dict[str, _Open] = {}
            self.closed_upto_: dict[str, dt.datetime | None] = dict.fromkeys(self.scales)
            self.max_time_: dt.datetime | None = None
            self.late_events_ = 0
        return self.open_

    @property
    def watermark(self) -> dt.datetime | None:
        """Event time up to which every window is complete."""
        self._state()
        if self.max_time_ is None:
            return None
        return self.max_time_ - dt.timedelta(seconds=self.lateness)

    def add(self, events: pl.DataFrame) -> None:
        """Merge one batch of marked events (in log order) into the open windows."""
        state = self._state()
        if events.is_empty():
            return
        batch_max = events["event_time"].max()
        assert isinstance(batch_max, dt.datetime)
        if self.max_time_ is None or batch_max > self.max_time_:
            self.max_time_ = batch_max
        batch = _Batch.of(events)
        for scale in self.scales:
            every = SCALES[scale]
            start = pl.col("event_time").dt.truncate(every)
            closed = self.closed_upto_[scale]
            if closed is not None:
                late = events["event_time"] < closed
                self.late_events_ += int(late.sum()) if scale == self.scales[0] else 0
                start = pl.when(pl.col("event_time") < closed).then(pl.lit(closed)).otherwise(start)
            part = _Open.of(batch, start)
            state[scale] = state[scale].merge(part) if scale in state else part

    def _pop(self, upto: dt.datetime | None) -> pl.DataFrame:
        state = self._state()
        out = []
        for scale in self.scales:
            if scale not in state:
                continue
            every = SCALES[scale]
            if upto is None:
                done, keep = state[scale].split(None)
            else:
                boundary = _floor(upto, every)
                done, keep = state[scale].split(boundary - every)
                prev = self.closed_upto_[scale]
                self.closed_upto_[scale] = boundary if prev is None else max(prev, boundary)
            state[scale] = keep
            if done.sums.height:
                out.append(done.close(scale, every))
        if not out:
            return _finish(None)
        return _finish(pl.concat(out, how="vertical_relaxed"))

    def advance(self) -> pl.DataFrame:
        """Close and return the windows that ended at or before the watermark."""
        mark = self.watermark
        return _finish(None) if mark is None else self._pop(mark)

    def flush(self) -> pl.DataFrame:
        """Close and return every open window (end of a replay without saved state)."""
        return self._pop(None)

    def open_windows(self) -> int:
        """Open (user, scale, window) rows held."""
        return sum(f.sums.height for f in self._state().values())


def _floor(t: dt.datetime, every: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((t - epoch) // every) * every


def _finish(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Closed windows -> the window frame's columns, types and order."""
    if frame is None:
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    return (
        frame.with_columns(
            hour=pl.col("window_start").dt.hour().cast(pl.Int8),
            weekday=(pl.col("window_start").dt.weekday() - 1).cast(pl.Int8),
        )
        .select(WINDOW_SCHEMA.names())
        .cast(dict(WINDOW_SCHEMA))
        .sort("window_end", "scale", "user")
    )


#: Columns of closed windows, before scoring.
WINDOW_SCHEMA: Final = pl.Schema(
    {
        "user": pl.String,
        "scale": pl.String,
        "window_start": pl.Datetime("us", "UTC"),
        "window_end": pl.Datetime("us", "UTC"),
        "first_time": pl.Datetime("us", "UTC"),
        "last_time": pl.Datetime("us", "UTC"),
        "hour": pl.Int8,
        "weekday": pl.Int8,
        **dict.fromkeys(WINDOW_FEATURES, pl.Float64),
        "export_rows": pl.Float64,
        "estimated_rows": pl.Float64,
        "new_tables": pl.Float64,
        "new_templates": pl.Float64,
        "new_ips": pl.Float64,
        "new_classes": pl.List(pl.String),
        "client_ips": pl.List(pl.String),
        "table_names": pl.List(pl.String),
        "classes": pl.List(pl.String),
        "evidence": pl.List(EVIDENCE_DTYPE),
    }
)


def statement_rows(events: pl.DataFrame, min_sensitive_rows: float) -> pl.DataFrame:
    """Statement-scale rows (same columns as windows) for statements worth judging alone:
    at least ``min_sensitive_rows`` sensitive rows, or an export."""
    picked = events.filter(
        (pl.col("sensitive_rows") >= min_sensitive_rows) | (pl.col("exports") > 0)
    )
    if picked.is_empty():
        return _finish(None)
    # Each statement is its own window: key it by its row number so the window code
    # (sets, evidence) does the rest.
    keyed = picked.with_row_index("_row").with_columns(
        user=pl.concat_str("user", pl.lit("\x1f"), "_row"),
    )
    frame = _Open.of(_Batch.of(keyed), pl.col("event_time")).close("statement", dt.timedelta(0))
    return _finish(frame.with_columns(user=pl.col("user").str.replace(r"\x1f\d+$", "")))
