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
>>> from features.access import EVENT_SIGNALS
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

from features.so_far import so_far
from features.window_parts import EVIDENCE_DTYPE, Batch, OpenWindows

__all__ = [
    "EVIDENCE_DTYPE", "SCALES", "WINDOW_FEATURES", "WINDOW_SCHEMA", "WindowAggregator",
    "statement_rows",
]  # fmt: skip

#: Window scales and their length.
SCALES: Final = {
    "5m": dt.timedelta(minutes=5),
    "1h": dt.timedelta(hours=1),
    "1d": dt.timedelta(days=1),
}
#: The longer window whose *so far* each scale's closed windows make up.
PART_OF: Final = {"5m": "1h", "1h": "1d"}

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


class WindowAggregator:
    """Open per-user windows at several scales, closed by an event-time watermark.

    Parameters
    ----------
    scales
        Names from :data:`SCALES`.
    lateness
        Seconds an event may arrive after later ones and still land in its own window.
    so_far
        Each closed 5-minute window also gives its user's *hour so far*, each closed hour
        their *day so far* (:mod:`features.so_far`): rows of the longer scale ending at
        the part's end, so hour and day patterns fire within minutes, not at the window's
        end. Made of closed parts only: batch-independent.
    """

    def __init__(
        self, scales: Sequence[str] = tuple(SCALES), lateness: float = 60.0, so_far: bool = True
    ) -> None:
        self.scales = tuple(scales)
        self.lateness = lateness
        self.so_far = so_far

    def _state(self) -> dict[str, OpenWindows]:
        if not hasattr(self, "open_"):
            unknown = set(self.scales) - set(SCALES)
            if unknown:
                raise ValueError(f"unknown window scale(s) {sorted(unknown)}")
            self.open_: dict[str, OpenWindows] = {}
            self.closed_upto_: dict[str, dt.datetime | None] = dict.fromkeys(self.scales)
            self.max_time_: dt.datetime | None = None
            self.late_events_ = 0
            # per longer scale, the closed parts of each user's open window, added up
            self.so_far_: dict[str, OpenWindows] = {}
        return self.open_

    @property
    def watermark(self) -> dt.datetime | None:
        """Event time up to which every window is complete."""
        self._state()
        if self.max_time_ is None:
            return None
        return self.max_time_ - dt.timedelta(seconds=self.lateness)

    def catch_up(self, time: dt.datetime | None) -> None:
        """Move the clock to ``time`` if it is later: events up to there were seen
        elsewhere (windows of users in other partitions, judged by one watermark)."""
        self._state()
        if time is not None and (self.max_time_ is None or time > self.max_time_):
            self.max_time_ = time

    def take_users(self, users: set[str], *, drop: bool) -> WindowAggregator:
        """The open windows of ``users`` as an aggregator of their own, on this one's
        clock (taken out of this one when ``drop``): users moving to another process."""
        self._state()
        names = pl.Series(sorted(users), dtype=pl.String)
        out = WindowAggregator(self.scales, self.lateness, self.so_far)
        out._state()
        out.closed_upto_ = dict(self.closed_upto_)
        out.max_time_ = self.max_time_
        for mine, theirs in ((self.open_, out.open_), (self.so_far_, out.so_far_)):
            for scale, windows in list(mine.items()):
                taken, rest = windows.take(names)
                theirs[scale] = taken
                if drop:
                    mine[scale] = rest
        return out

    def put(self, other: WindowAggregator) -> None:
        """Take over ``other``'s open windows (other users', on the same clock)."""
        self._state()
        other._state()
        for mine, theirs in ((self.open_, other.open_), (self.so_far_, other.so_far_)):
            for scale, windows in theirs.items():
                mine[scale] = mine[scale].merge(windows) if scale in mine else windows
        for scale, upto in other.closed_upto_.items():
            prev = self.closed_upto_.get(scale)
            self.closed_upto_[scale] = upto if prev is None else max(prev, upto or prev)
        self.catch_up(other.max_time_)
        self.late_events_ += other.late_events_

    def add(self, events: pl.DataFrame) -> None:
        """Merge one batch of marked events (in log order) into the open windows."""
        state = self._state()
        if events.is_empty():
            return
        batch_max = events["event_time"].max()
        assert isinstance(batch_max, dt.datetime)
        if self.max_time_ is None or batch_max > self.max_time_:
            self.max_time_ = batch_max
        batch = Batch.of(events)
        for scale in self.scales:
            every = SCALES[scale]
            start = pl.col("event_time").dt.truncate(every)
            closed = self.closed_upto_[scale]
            if closed is not None:
                late = events["event_time"] < closed
                self.late_events_ += int(late.sum()) if scale == self.scales[0] else 0
                start = pl.when(pl.col("event_time") < closed).then(pl.lit(closed)).otherwise(start)
            part = OpenWindows.of(batch, start)
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
                whole = PART_OF.get(scale)
                if self.so_far and whole in self.scales:
                    assert whole is not None
                    rows, self.so_far_[whole] = so_far(
                        self.so_far_.get(whole), done, whole, SCALES[whole], every
                    )
                    out.append(rows)
            if scale in self.so_far_:
                # the windows that closed are reported whole: forget their parts
                if upto is None:
                    del self.so_far_[scale]
                else:
                    self.so_far_[scale] = self.so_far_[scale].split(_floor(upto, every) - every)[1]
        if not out:
            return _finish(None)
        return _finish(pl.concat(out, how="diagonal_relaxed"))

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
    part = OpenWindows.of(Batch.of(keyed), pl.col("event_time"))
    frame = part.close("statement", dt.timedelta(0))
    return _finish(frame.with_columns(user=pl.col("user").str.replace(r"\x1f\d+$", "")))
