"""Per-user tumbling windows in event time: what each user did per 5 minutes, hour and day.

:class:`WindowAggregator` keeps, per scale, the partial aggregates of every open window
(one row per user and window start) and merges each micro-batch of marked events
(:func:`features.access.event_features` + :meth:`features.novelty.SeenSets.mark`) into
them with one polars ``group_by`` per scale. A window closes when the watermark (latest
event time minus ``lateness`` seconds) reaches its end; :meth:`WindowAggregator.advance`
returns the closed windows as rows of the window frame (:data:`WINDOW_FEATURES` plus
context). An event older than a closed window (later than ``lateness``) is counted in
``late_events_`` and added to the user's first open window: counts are never dropped.

Distinct counts (people, templates, tables) keep their distinct keys until the window
closes; evidence keeps the 5 statements with the most sensitive rows.

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
    "max_statement_rows",
)

_SUMS: Final = (*EVENT_SIGNALS, "new_tables", "new_templates", "new_ips")
_SETS: Final = {
    "subject_set": pl.UInt64,
    "template_set": pl.UInt64,
    "table_names": pl.String,
    "client_ips": pl.String,
    "classes": pl.String,
    "new_classes": pl.String,
}
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


def _evidence_expr() -> pl.Expr:
    return pl.struct(
        time=pl.col("event_time"),
        statement=pl.col("fingerprint"),
        rows=pl.col("rows_read").cast(pl.Int64),
        sensitive_rows=pl.col("sensitive_rows").cast(pl.Int64),
        tables=pl.col("tables_read"),
    ).alias("evidence")


def _top_evidence(col: pl.Expr) -> pl.Expr:
    """The most telling statements: most sensitive rows, then most rows, then earliest."""
    return col.sort_by(
        col.struct.field("sensitive_rows"),
        col.struct.field("rows"),
        col.struct.field("time"),
        descending=[True, True, False],
    ).head(EVIDENCE_LIMIT)


def _partials(events: pl.DataFrame, every: dt.timedelta) -> pl.DataFrame:
    """One batch's events -> one row per (user, window_start), mergeable with earlier ones."""
    return (
        events.lazy()
        .group_by("user", "window_start")
        .agg(
            pl.len().cast(pl.Float64).alias("statements"),
            *(pl.col(c).sum() for c in _SUMS),
            pl.col("sensitive_rows").max().alias("max_statement_rows"),
            pl.col("event_time").min().alias("first_time"),
            pl.col("event_time").max().alias("last_time"),
            pl.col("subject_keys").list.explode(keep_nulls=False).unique().alias("subject_set"),
            pl.col("fingerprint_id").unique().alias("template_set"),
            pl.col("tables_read").list.explode(keep_nulls=False).unique().alias("table_names"),
            pl.col("client_ip").unique().alias("client_ips"),
            pl.col("classes").list.explode(keep_nulls=False).unique().alias("classes"),
            pl.col("new_classes").list.explode(keep_nulls=False).unique().alias("new_classes"),
            _top_evidence(_evidence_expr()).alias("evidence"),
        )
        .collect()
    )


def _merge(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Merge partials of the same windows (sums add, sets unite, evidence re-ranked)."""
    frame = pl.concat(frames, how="vertical_relaxed")
    return (
        frame.lazy()
        .group_by("user", "window_start")
        .agg(
            pl.col("statements").sum(),
            *(pl.col(c).sum() for c in _SUMS),
            pl.col("max_statement_rows").max(),
            pl.col("first_time").min(),
            pl.col("last_time").max(),
            *(pl.col(c).list.explode(keep_nulls=False).unique().alias(c) for c in _SETS),
            _top_evidence(pl.col("evidence").list.explode(keep_nulls=False)).alias("evidence"),
        )
        .collect()
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

    def _state(self) -> dict[str, pl.DataFrame]:
        if not hasattr(self, "open_"):
            unknown = set(self.scales) - set(SCALES)
            if unknown:
                raise ValueError(f"unknown window scale(s) {sorted(unknown)}")
            self.open_: dict[str, pl.DataFrame] = {}
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
        for scale in self.scales:
            every = SCALES[scale]
            start = pl.col("event_time").dt.truncate(every)
            closed = self.closed_upto_[scale]
            if closed is not None:
                late = events["event_time"] < closed
                self.late_events_ += int(late.sum()) if scale == self.scales[0] else 0
                start = pl.when(pl.col("event_time") < closed).then(pl.lit(closed)).otherwise(start)
            part = _partials(events.with_columns(window_start=start), every)
            state[scale] = _merge([state[scale], part]) if scale in state else part

    def _pop(self, upto: dt.datetime | None) -> pl.DataFrame:
        state = self._state()
        out = []
        for scale in self.scales:
            if scale not in state:
                continue
            every = SCALES[scale]
            frame = state[scale].with_columns(window_end=pl.col("window_start") + every)
            if upto is None:
                done, keep = frame, frame.clear()
            else:
                is_done = pl.col("window_end") <= upto
                done, keep = frame.filter(is_done), frame.filter(~is_done)
                boundary = _floor(upto, every)
                prev = self.closed_upto_[scale]
                self.closed_upto_[scale] = boundary if prev is None else max(prev, boundary)
            state[scale] = keep.drop("window_end")
            if done.height:
                out.append(done.with_columns(scale=pl.lit(scale)))
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
        return sum(f.height for f in self._state().values())


def _floor(t: dt.datetime, every: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((t - epoch) // every) * every


def _finish(frame: pl.DataFrame | None) -> pl.DataFrame:
    """Partials of closed windows -> window-frame rows (counts of the distinct sets)."""
    if frame is None:
        return pl.DataFrame(schema=WINDOW_SCHEMA)
    return (
        frame.with_columns(
            subjects=pl.col("subject_set").list.len().cast(pl.Float64),
            templates=pl.col("template_set").list.len().cast(pl.Float64),
            tables=pl.col("table_names").list.len().cast(pl.Float64),
            table_names=pl.col("table_names").list.sort(),
            client_ips=pl.col("client_ips").list.sort(),
            classes=pl.col("classes").list.sort(),
            new_classes=pl.col("new_classes").list.sort(),
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
    frame = picked.with_columns(
        scale=pl.lit("statement"),
        window_start=pl.col("event_time"),
        window_end=pl.col("event_time"),
        first_time=pl.col("event_time"),
        last_time=pl.col("event_time"),
        statements=pl.lit(1.0),
        max_statement_rows=pl.col("sensitive_rows"),
        subject_set=pl.col("subject_keys").list.unique(),
        template_set=pl.concat_list(pl.col("fingerprint_id")),
        table_names=pl.col("tables_read").list.unique(),
        client_ips=pl.concat_list(pl.col("client_ip")),
        classes=pl.col("classes").list.unique(),
        new_classes=pl.col("new_classes").list.unique(),
        evidence=pl.concat_list(_evidence_expr()),
    )
    return _finish(frame.select(*(c for c in frame.columns if c in _FINISH_INPUT)))


_FINISH_INPUT: Final = frozenset(
    {
        "user",
        "scale",
        "window_start",
        "window_end",
        "first_time",
        "last_time",
        "statements",
        *_SUMS,
        "max_statement_rows",
        *_SETS,
        "evidence",
    }
)
