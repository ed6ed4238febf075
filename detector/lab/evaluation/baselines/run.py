"""What a baseline hands back: its alerts as detections, and what limited it."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from detector.lab.evaluation.detections import Detection, detections_from_frame


@dataclass(frozen=True)
class BaselineRun:
    """The alerts one baseline raised on one statement frame.

    Attributes
    ----------
    detections
        Its alerts, by detection time.
    note
        Why it could not do better than this (e.g. a model with nothing to train on).
    """

    detections: tuple[Detection, ...]
    note: str = ""

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, note: str = "") -> BaselineRun:
        """From a frame with the detection columns (user, start, end, detected_at,
        reason)."""
        return cls(tuple(detections_from_frame(frame)), note)


def thousands(number: pl.Expr) -> pl.Expr:
    """An integer column written with thousands separators, for reasons.

    >>> pl.DataFrame({"n": [7, 1234, 30020]}).select(thousands(pl.col("n")))["n"].to_list()
    ['7', '1,234', '30,020']
    """
    grouped = number.cast(pl.String).str.reverse().str.replace_all(r"(\d{3})", "$1,")
    return grouped.str.reverse().str.strip_chars_start(",")


def first_crossing(
    frame: pl.DataFrame, period: str, limit: str | float, reason: pl.Expr
) -> pl.DataFrame:
    """Detections: per user and ``period``, the statement at which the running row total
    first goes over ``limit`` (a number, or the name of a column). ``start`` is the
    period's first statement, ``end``/``detected_at`` the crossing one; ``reason`` may use
    ``running`` (the total then) and the frame's columns. ``frame`` is in event-time order.

    >>> import datetime as dt
    >>> t = [dt.datetime(2024, 3, 7, 9, m, tzinfo=dt.UTC) for m in range(3)]
    >>> f = pl.DataFrame({"user": ["a"] * 3, "event_time": t, "rows": [5, 5, 5], "p": [1] * 3})
    >>> hit = first_crossing(f, "p", 8, pl.format("{} rows", pl.col("running")))
    >>> hit.select("reason", pl.col("detected_at").dt.minute()).row(0)
    ('10 rows', 1)
    """
    over = pl.col(limit) if isinstance(limit, str) else pl.lit(limit)
    return (
        frame.with_columns(
            pl.col("rows").cum_sum().over("user", period).alias("running"),
            pl.col("event_time").min().over("user", period).alias("start"),
        )
        .filter(pl.col("running") > over)
        .group_by("user", period, maintain_order=True)
        .agg(pl.all().first())
        .select(
            "user",
            "start",
            pl.col("event_time").alias("end"),
            pl.col("event_time").alias("detected_at"),
            reason.alias("reason"),
        )
    )
