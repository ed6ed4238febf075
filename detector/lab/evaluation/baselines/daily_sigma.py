"""Baseline 3: a user's daily rows more than 3 standard deviations above their own past.

Per user and UTC day, the rows read that day are compared with the same user's previous
*active* days (days with at least one statement; at least 3 of them): alert when the day
exceeds mean + 3 sd (sample standard deviation) of those days. Every past day counts,
alerting or not (the naive baseline learns its own alerts). It fires, as a streaming
implementation would, at the statement that takes the day's running total over the
threshold; the alert covers the day's statements up to it.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from detector.lab.evaluation.baselines.run import BaselineRun, first_crossing, thousands

NAME: Final = "daily_sigma"
DESCRIPTION: Final = "per-user daily rows > mean + 3 sd of the user's own past days"
SIGMAS: Final = 3.0
MIN_DAYS: Final = 3


def daily_thresholds(
    statements: pl.DataFrame, *, sigmas: float = SIGMAS, min_days: int = MIN_DAYS
) -> pl.DataFrame:
    """Per (user, day): the day's ``total`` rows, ``past_days`` and the ``threshold``
    (null until ``min_days`` past active days).

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> days = [dt.datetime(2024, 3, 4 + k, 10, tzinfo=dt.UTC) for k in range(4)]
    >>> frame = statement_frame({"event_time": days, "user": ["a"] * 4,
    ...                          "rows": [10, 20, 30, 100]})
    >>> daily_thresholds(frame)["threshold"].to_list()
    [None, None, None, 50.0]
    """
    days = (
        statements.group_by("user", pl.col("event_time").dt.date().alias("day"))
        .agg(pl.col("rows").sum().alias("total"))
        .sort("user", "day")
    )
    # Expanding statistics of the *previous* days: over all of a user's rows, shifted.
    window = max(days.height, 1)
    past = pl.col("total").shift(1)
    mean = past.rolling_mean(window_size=window, min_samples=1).over("user")
    sd = past.rolling_std(window_size=window, min_samples=2).over("user")
    return days.with_columns(
        pl.int_range(pl.len()).over("user").alias("past_days"),
    ).with_columns(
        pl.when(pl.col("past_days") >= min_days).then(mean + sigmas * sd).alias("threshold"),
    )


def detect(
    statements: pl.DataFrame,
    *,
    warmup_end: dt.datetime,
    sigmas: float = SIGMAS,
    min_days: int = MIN_DAYS,
) -> BaselineRun:
    """Alert once per (user, day) whose running total exceeds the day's threshold
    (:func:`daily_thresholds`). ``statements`` in event-time order; ``warmup_end`` unused
    (the baseline warms up per user, on its first ``min_days`` active days).

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> days = [dt.datetime(2024, 3, 4 + k, 10, tzinfo=dt.UTC) for k in range(4)]
    >>> frame = statement_frame({"event_time": days, "user": ["a"] * 4,
    ...                          "rows": [10, 20, 30, 100]})
    >>> [d.reason for d in detect(frame, warmup_end=days[0]).detections]
    ['read 100 rows on 2024-03-07 (mean + 3 sd of 3 past days: 50)']
    """
    del warmup_end
    limits = daily_thresholds(statements, sigmas=sigmas, min_days=min_days).filter(
        pl.col("threshold").is_not_null() & (pl.col("total") > pl.col("threshold"))
    )
    day = pl.col("event_time").dt.date().alias("day")
    hits = first_crossing(
        statements.select("user", "event_time", "rows", day).join(
            limits.select("user", "day", "threshold", "past_days"), on=["user", "day"]
        ),
        "day",
        "threshold",
        pl.format(
            "read {} rows on {} (mean + {} sd of {} past days: {})",
            thousands(pl.col("running").round().cast(pl.Int64)),
            pl.col("day").dt.strftime("%Y-%m-%d"),
            pl.lit(f"{sigmas:g}"),
            pl.col("past_days"),
            thousands(pl.col("threshold").round().cast(pl.Int64)),
        ),
    )
    return BaselineRun.from_frame(hits)
