"""Baseline 5: Microsoft Sentinel's "Response rows stateful anomaly on database" rule.

The Azure SQL hunting query, per database (not per user), per statement: with the mean,
sample standard deviation, 50th and 99th percentiles of the rows returned by the
database's statements over 15 days (every statement, 0 for those returning none), a
statement returning ``x`` rows is an anomaly when

    z = (x - mean) / (sd + 1) > 3  and  Q = (x - p99) / (p99 - p50 + 1) > 3  and  x > 500,

and the window holds at least 20 statements. The published query is a hunt over its whole
15-day period, the statement itself included; to judge statements as they come, the
statistics here are those of the 15 UTC days *before* the statement's day (a baseline
refreshed daily), and the alert fires at the statement. Percentiles are nearest-rank, like
Kusto's ``percentile()`` on small sets.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl

from detector.lab.evaluation.baselines.run import BaselineRun, thousands

NAME: Final = "sentinel"
DESCRIPTION: Final = "Sentinel rule: per database, per statement z > 3, Q > 3, rows > 500 (15 d)"
WINDOW_DAYS: Final = 15
Z: Final = 3.0
Q: Final = 3.0
MIN_ROWS: Final = 500
MIN_STATEMENTS: Final = 20


def database_statistics(
    statements: pl.DataFrame, *, window_days: int = WINDOW_DAYS
) -> pl.DataFrame:
    """Per (database, day with statements): ``n``, ``mean``, ``sd``, ``p50``, ``p99`` of the
    rows of the database's statements in the ``window_days`` days before that day.

    Each statement is repeated once per day whose window holds it (``window_days`` copies),
    so one group-by computes every day's statistics.

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> days = [dt.datetime(2024, 3, 4 + k, 10, tzinfo=dt.UTC) for k in range(3)]
    >>> frame = statement_frame({"event_time": days, "user": ["a"] * 3, "rows": [1, 3, 9]})
    >>> database_statistics(frame).select("day", "n", "mean", "p99").rows()[1:]
    [(datetime.date(2024, 3, 5), 1, 1.0, 1.0), (datetime.date(2024, 3, 6), 2, 2.0, 3.0)]
    """
    day = pl.col("event_time").dt.date().alias("day")
    stated = statements.select("database", day, "rows")
    days = stated.select("database", "day").unique()
    offsets = pl.DataFrame({"offset": pl.int_range(1, window_days + 1, eager=True)})
    window = (
        stated.join(offsets, how="cross")
        .with_columns(pl.col("day") + pl.duration(days=pl.col("offset")))
        .join(days, on=["database", "day"], how="semi")
    )
    stats = window.group_by("database", "day").agg(
        pl.len().alias("n"),
        pl.col("rows").mean().alias("mean"),
        pl.col("rows").std().alias("sd"),
        pl.col("rows").quantile(0.5, interpolation="nearest").alias("p50"),
        pl.col("rows").quantile(0.99, interpolation="nearest").alias("p99"),
    )
    return days.join(stats, on=["database", "day"], how="left").sort("database", "day")


def detect(
    statements: pl.DataFrame,
    *,
    warmup_end: dt.datetime,
    window_days: int = WINDOW_DAYS,
    z: float = Z,
    q: float = Q,
    min_rows: float = MIN_ROWS,
    min_statements: int = MIN_STATEMENTS,
) -> BaselineRun:
    """Alert on every statement the rule flags (see the module docstring); ``warmup_end``
    is unused (the rule needs ``min_statements`` in its window, nothing else)."""
    del warmup_end
    stats = database_statistics(statements, window_days=window_days)
    x = pl.col("rows")
    hits = (
        statements.select(
            "user", "event_time", "database", x, pl.col("event_time").dt.date().alias("day")
        )
        .join(stats, on=["database", "day"], how="left")
        .with_columns(
            ((x - pl.col("mean")) / (pl.col("sd") + 1)).alias("z"),
            ((x - pl.col("p99")) / (pl.col("p99") - pl.col("p50") + 1)).alias("q"),
        )
        .filter(
            (pl.col("n") >= min_statements) & (pl.col("z") > z) & (pl.col("q") > q) & (x > min_rows)
        )
        .select(
            "user",
            pl.col("event_time").alias("start"),
            pl.col("event_time").alias("end"),
            pl.col("event_time").alias("detected_at"),
            pl.format(
                "{} rows from database {}: z {}, Q {} (15-day mean {}, p99 {})",
                thousands(x.round().cast(pl.Int64)),
                pl.col("database"),
                pl.col("z").round(1),
                pl.col("q").round(1),
                pl.col("mean").round(1),
                pl.col("p99").round(1),
            ).alias("reason"),
        )
    )
    return BaselineRun.from_frame(hits)
