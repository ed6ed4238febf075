"""Baseline 4: scikit-learn's IsolationForest on user-hour feature vectors.

One vector per (user, clock hour UTC) with at least one statement: statements, rows read,
sensitive rows, rows of identifying columns, equality lookups on identifiers, exports and
distinct national ID numbers (each as ``log1p``), distinct tables, hour of day and a
weekend flag. One forest for everyone (no user identity in the vector: the textbook
set-up), fixed ``random_state``, default ``contamination="auto"``; trained on the hours
before the end of the warm-up, it alerts on every later hour it predicts ``-1``
(anomalous), when the hour is over.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import polars as pl
from sklearn.ensemble import IsolationForest

from detector.lab.evaluation.baselines.run import BaselineRun

NAME: Final = "isolation_forest"
DESCRIPTION: Final = "IsolationForest on user-hour vectors, trained on the warm-up days"
FEATURES: Final = (
    "statements",
    "rows",
    "sensitive_rows",
    "identifier_rows",
    "lookups",
    "exports",
    "subjects",
    "tables",
    "hour_of_day",
    "weekend",
)
#: Fewer warm-up hours than this train nothing worth trusting: no alerts, and a note.
MIN_TRAINING_HOURS: Final = 24
RANDOM_STATE: Final = 0


def hour_vectors(statements: pl.DataFrame) -> pl.DataFrame:
    """One row per (user, hour) with statements: ``user``, ``hour``, ``first``, ``last``
    (statement times) and the :data:`FEATURES`, ordered by hour and user.

    >>> from detector.lab.evaluation.statements import statement_frame
    >>> t = dt.datetime(2024, 3, 9, 10, tzinfo=dt.UTC)  # a Saturday
    >>> frame = statement_frame({"event_time": [t, t], "user": ["a", "a"], "rows": [1, 2],
    ...     "tables_read": [["t1"], ["t1", "t2"]], "subject_keys": [[7, 8], [8]]})
    >>> v = hour_vectors(frame)
    >>> subjects = (pl.col("subjects").exp() - 1).round(6)  # undo log1p
    >>> v.select("tables", subjects, "hour_of_day", "weekend").row(0)
    (2.0, 2.0, 10.0, 1.0)
    """
    log = pl.Expr.log1p
    return (
        statements.group_by("user", pl.col("event_time").dt.truncate("1h").alias("hour"))
        .agg(
            pl.col("event_time").min().alias("first"),
            pl.col("event_time").max().alias("last"),
            log(pl.len().cast(pl.Float64)).alias("statements"),
            *(log(pl.col(c).sum()).alias(c) for c in FEATURES[1:6]),
            log(_distinct("subject_keys")).alias("subjects"),
            _distinct("tables_read").alias("tables"),
        )
        .with_columns(
            pl.col("hour").dt.hour().cast(pl.Float64).alias("hour_of_day"),
            (pl.col("hour").dt.weekday() >= 6).cast(pl.Float64).alias("weekend"),
        )
        .sort("hour", "user")
    )


def _distinct(column: str) -> pl.Expr:
    """Distinct elements of a list column over the group."""
    values = pl.col(column).list.explode(keep_nulls=False, empty_as_null=False)
    return values.n_unique().cast(pl.Float64)


def detect(
    statements: pl.DataFrame,
    *,
    warmup_end: dt.datetime,
    random_state: int = RANDOM_STATE,
    min_training_hours: int = MIN_TRAINING_HOURS,
) -> BaselineRun:
    """Train on the user-hours before ``warmup_end``, alert on later anomalous ones."""
    vectors = hour_vectors(statements)
    train = vectors.filter(pl.col("hour") < warmup_end)
    test = vectors.filter(pl.col("hour") >= warmup_end)
    if train.height < min_training_hours:
        note = f"not trained: {train.height} user-hours in the warm-up (< {min_training_hours})"
        return BaselineRun((), note)
    if test.is_empty():
        return BaselineRun((), "no user-hours after the warm-up")
    forest = IsolationForest(random_state=random_state).fit(train.select(FEATURES).to_numpy())
    features = test.select(FEATURES).to_numpy()
    anomalous = forest.predict(features) == -1
    scores = forest.score_samples(features)
    hits = test.with_columns(pl.Series("score", scores)).filter(pl.Series(anomalous))
    return BaselineRun.from_frame(
        hits.select(
            "user",
            pl.col("first").alias("start"),
            pl.col("last").alias("end"),
            (pl.col("hour") + dt.timedelta(hours=1)).alias("detected_at"),
            pl.format(
                "user-hour from {} isolated (score {})",
                pl.col("hour").dt.strftime("%Y-%m-%d %H:%M"),
                pl.col("score").round(3),
            ).alias("reason"),
        ),
        note=f"trained on {train.height} user-hours",
    )
