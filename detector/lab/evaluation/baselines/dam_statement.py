"""Baseline 1, a DAM policy: alert on any single statement returning more than 10,000 rows.

The commonest out-of-the-box volume rule of database activity monitors. It fires when the
statement completes (its event time) and reports that statement alone.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from detector.lab.evaluation.baselines.run import BaselineRun, thousands

NAME: Final = "dam_statement"
DESCRIPTION: Final = "DAM policy: one statement returning > 10,000 rows"
THRESHOLD: Final = 10_000


def detect(
    statements: pl.DataFrame, *, warmup_end: dt.datetime, threshold: float = THRESHOLD
) -> BaselineRun:
    """Alert on every statement whose ``rows`` exceed ``threshold``.

    ``warmup_end`` is unused: a fixed threshold needs no learning.

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> t = dt.datetime(2024, 3, 8, 16, 20, tzinfo=dt.UTC)
    >>> frame = statement_frame({"event_time": [t, t], "user": ["a", "b"],
    ...                          "rows": [10_000, 10_001]})
    >>> [(d.user, d.reason) for d in detect(frame, warmup_end=t).detections]
    [('b', 'one statement returned 10,001 rows (> 10,000)')]
    """
    del warmup_end
    rows = pl.col("rows").round().cast(pl.Int64)
    hits = statements.filter(pl.col("rows") > threshold).select(
        "user",
        pl.col("event_time").alias("start"),
        pl.col("event_time").alias("end"),
        pl.col("event_time").alias("detected_at"),
        pl.format(
            "one statement returned {} rows (> {})", thousands(rows), pl.lit(f"{threshold:,.0f}")
        ).alias("reason"),
    )
    return BaselineRun.from_frame(hits)
