"""Baseline 2, a DAM policy: alert when a user reads more than 10,000 rows in an hour.

Hours are clock hours (UTC), as DAM aggregation periods are. The policy fires in real
time, at the statement that takes the user's hourly total over the threshold; the alert
covers the hour's statements up to that one. One alert per user and hour at most.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from detector.lab.evaluation.baselines.run import BaselineRun, first_crossing, thousands

NAME: Final = "dam_hourly"
DESCRIPTION: Final = "DAM policy: > 10,000 rows per user per hour"
THRESHOLD: Final = 10_000


def detect(
    statements: pl.DataFrame, *, warmup_end: dt.datetime, threshold: float = THRESHOLD
) -> BaselineRun:
    """Alert once per (user, clock hour) whose running row total exceeds ``threshold``.

    ``statements`` must be in event-time order (:func:`~detector.lab.evaluation.statements.
    load_statements` sorts them); ``warmup_end`` is unused.

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> t = dt.datetime(2024, 3, 7, 15, 5, tzinfo=dt.UTC)
    >>> minutes = [t + dt.timedelta(minutes=k) for k in range(4)]
    >>> frame = statement_frame({"event_time": minutes, "user": ["a"] * 4,
    ...                          "rows": [4000, 4000, 4000, 4000]})
    >>> [(d.start.minute, d.detected_at.minute, d.reason)
    ...  for d in detect(frame, warmup_end=t).detections]
    [(5, 7, 'read 12,000 rows in the hour from 15:00 (> 10,000)')]
    """
    del warmup_end
    hour = pl.col("event_time").dt.truncate("1h")
    hits = first_crossing(
        statements.select("user", "event_time", "rows", hour.alias("hour")),
        "hour",
        threshold,
        pl.format(
            "read {} rows in the hour from {} (> {})",
            thousands(pl.col("running").round().cast(pl.Int64)),
            pl.col("hour").dt.strftime("%H:%M"),
            pl.lit(f"{threshold:,.0f}"),
        ),
    )
    return BaselineRun.from_frame(hits)
