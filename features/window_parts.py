"""The pieces of open windows: one batch's events prepared once (:class:`Batch`), and the
open windows of one scale as flat frames (:class:`OpenWindows`) that merge, split and close
into window-frame rows. :mod:`features.windows` keeps them per scale and closes them by the
watermark.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import polars as pl

from features.access import EVENT_SIGNALS

SUMS: Final = (*EVENT_SIGNALS, "new_tables", "new_templates", "new_ips")
#: Distinct sets kept per open window: name -> (source column, is it a list column).
SETS: Final = {
    "subjects": ("subject_keys", True),
    "templates": ("fingerprint_id", False),
    "table_names": ("tables_read", True),
    "client_ips": ("client_ip", False),
    "classes": ("classes", True),
    "new_classes": ("new_classes", True),
}
#: Sets whose members are listed in the window frame (the others are only counted).
LISTED: Final = ("table_names", "client_ips", "classes", "new_classes")
COUNTED: Final = {"subjects": "subjects", "templates": "templates", "table_names": "tables"}
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
KEY: Final = ("user", "window_start")
EVIDENCE_ORDER: Final = (["sensitive_rows", "rows", "time"], [True, True, False])


def _evidence_rows(events: pl.DataFrame) -> pl.DataFrame:
    """Candidate evidence of every event, most telling first (see :func:`top_evidence`)."""
    by, descending = EVIDENCE_ORDER
    return events.select(
        "user",
        "event_time",
        time=pl.col("event_time"),
        statement=pl.col("fingerprint"),
        rows=pl.col("rows_read").cast(pl.Int64),
        sensitive_rows=pl.col("sensitive_rows").cast(pl.Int64),
        tables=pl.col("tables_read"),
    ).sort(by, descending=descending, maintain_order=True)


def top_evidence(rows: pl.DataFrame, *, ordered: bool = False) -> pl.DataFrame:
    """The most telling statements of each window: most sensitive rows, most rows, earliest
    (``ordered``: the rows are already in that order)."""
    if not ordered:
        by, descending = EVIDENCE_ORDER
        rows = rows.sort(by, descending=descending, maintain_order=True)
    return rows.group_by(*KEY, maintain_order=True).head(EVIDENCE_LIMIT)


def _set_rows(events: pl.DataFrame, name: str) -> pl.DataFrame:
    """(user, event_time, value) of one distinct set, lists exploded, nulls dropped."""
    column, is_list = SETS[name]
    frame = events.select("user", "event_time", value=pl.col(column))
    if is_list:
        frame = frame.explode("value")
    return frame.drop_nulls("value")


@dataclass
class Batch:
    """One batch's events prepared once for every scale (lists exploded, evidence ranked)."""

    events: pl.DataFrame
    sets: dict[str, pl.DataFrame]
    evidence: pl.DataFrame

    @classmethod
    def of(cls, events: pl.DataFrame) -> Batch:
        sets = {name: _set_rows(events, name) for name in SETS}
        return cls(events, sets, _evidence_rows(events))


def _sums(frame: pl.DataFrame, *, first: bool) -> pl.DataFrame:
    """Per-window sums (``first``: of events; else: merging earlier sums)."""
    return (
        frame.lazy()
        .group_by(*KEY)
        .agg(
            (pl.len().cast(pl.Float64) if first else pl.col("statements").sum()).alias(
                "statements"
            ),
            *(pl.col(c).sum() for c in SUMS),
            pl.col("sensitive_rows" if first else "max_statement_rows")
            .max()
            .alias("max_statement_rows"),
            pl.col("event_time" if first else "first_time").min().alias("first_time"),
            pl.col("event_time" if first else "last_time").max().alias("last_time"),
        )
        .collect()
    )


@dataclass
class OpenWindows:
    """The open windows of one scale, as flat frames keyed by (user, window_start).

    Flat on purpose: no list columns are aggregated while windows are open (cheaper, and
    polars 2.1 intermittently crashed merging list columns inside ``group_by``).
    """

    sums: pl.DataFrame
    sets: dict[str, pl.DataFrame]
    evidence: pl.DataFrame

    @classmethod
    def of(cls, batch: Batch, start: pl.Expr) -> OpenWindows:
        """The batch's windows, ``start`` giving each event's window start."""
        start = start.alias("window_start")
        return cls(
            _sums(batch.events.with_columns(start), first=True),
            {
                name: rows.select("user", start, "value").unique(maintain_order=True)
                for name, rows in batch.sets.items()
            },
            top_evidence(batch.evidence.with_columns(start).drop("event_time"), ordered=True),
        )

    def merge(self, other: OpenWindows) -> OpenWindows:
        return OpenWindows(
            _sums(pl.concat([self.sums, other.sums]), first=False),
            # Sets stay unique per batch only: a value seen in two batches is kept twice
            # until the window closes (duplicates cost less than re-deduplicating every
            # open window's set on every batch).
            {
                name: pl.concat([frame, other.sets[name]], rechunk=False)
                for name, frame in self.sets.items()
            },
            top_evidence(pl.concat([self.evidence, other.evidence])),
        )

    def split(self, last_start: dt.datetime | None) -> tuple[OpenWindows, OpenWindows]:
        """(windows starting at or before ``last_start``, the rest); all when ``None``."""
        return self._divide(
            pl.lit(True) if last_start is None else pl.col("window_start") <= last_start
        )

    def take(self, users: pl.Series) -> tuple[OpenWindows, OpenWindows]:
        """(the windows of ``users``, the others'): users moving to another process."""
        return self._divide(pl.col("user").is_in(users.implode()))

    def _divide(self, mask: pl.Expr) -> tuple[OpenWindows, OpenWindows]:
        """(the rows ``mask`` keeps, the others) of every frame."""

        def part(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
            return frame.filter(mask), frame.filter(~mask)

        sums, evidence = part(self.sums), part(self.evidence)
        sets = {name: part(frame) for name, frame in self.sets.items()}
        return (
            OpenWindows(sums[0], {n: f[0] for n, f in sets.items()}, evidence[0]),
            OpenWindows(sums[1], {n: f[1] for n, f in sets.items()}, evidence[1]),
        )

    def close(self, scale: str, every: dt.timedelta) -> pl.DataFrame:
        """The window-frame rows of these windows."""
        frame = self.sums
        sets = {name: rows.unique() for name, rows in self.sets.items()}
        for name, out in COUNTED.items():
            counts = sets[name].group_by(*KEY).agg(pl.len().cast(pl.Float64).alias(out))
            frame = frame.join(counts, on=KEY, how="left")
        for name in LISTED:
            lists = sets[name].sort("value").group_by(*KEY).agg(pl.col("value").alias(name))
            frame = frame.join(lists, on=KEY, how="left")
        evidence = self.evidence.group_by(*KEY, maintain_order=True).agg(
            pl.struct(*(f.name for f in EVIDENCE_DTYPE.fields)).alias("evidence")
        )
        frame = frame.join(evidence, on=KEY, how="left")
        return frame.with_columns(
            *(pl.col(out).fill_null(0.0) for out in COUNTED.values()),
            *(pl.col(n).fill_null(pl.lit([], dtype=pl.List(pl.String))) for n in LISTED),
            scale=pl.lit(scale),
            window_end=pl.col("window_start") + every,
        )
