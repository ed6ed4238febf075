"""Each baseline on small hand-made statement frames: fires above its threshold, not at it.

The frames are :func:`detector.lab.evaluation.statements.statement_frame` rows (time, user,
database, rows, ...), the columns the baselines read from real logs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from detector.lab.evaluation.baselines import (
    BASELINES,
    daily_sigma,
    dam_hourly,
    dam_statement,
    isolation_forest,
    sentinel,
)
from detector.lab.evaluation.detections import Detection
from detector.lab.evaluation.statements import STATEMENT_COLUMNS, statement_frame


def t(day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=dt.UTC)


def frame(
    times: Sequence[dt.datetime], users: Sequence[str], rows: Sequence[float], **more: list
) -> pl.DataFrame:
    return statement_frame({"event_time": times, "user": users, "rows": rows, **more}).sort(
        "event_time", maintain_order=True
    )


WARM = t(7)


def test_the_five_baselines_in_report_order() -> None:
    assert [b.name for b in BASELINES] == [
        "dam_statement",
        "dam_hourly",
        "daily_sigma",
        "isolation_forest",
        "sentinel",
    ]
    assert all(b.description for b in BASELINES)
    assert statement_frame({"event_time": [t(4)], "user": ["a"]}).columns == list(STATEMENT_COLUMNS)


def test_dam_statement_fires_above_10000_rows_at_the_statement() -> None:
    stmts = frame([t(8, 9), t(8, 10), t(8, 11)], ["a", "b", "c"], [10_000, 10_001, 9])
    (hit,) = dam_statement.detect(stmts, warmup_end=WARM).detections
    assert (hit.user, hit.start, hit.end, hit.detected_at) == ("b", t(8, 10), t(8, 10), t(8, 10))
    assert "10,001" in hit.reason


def test_dam_hourly_fires_once_when_the_hour_total_passes_10000() -> None:
    minutes = [t(8, 10, m) for m in (0, 10, 20, 30)]
    stmts = frame(minutes, ["a"] * 4, [4_000, 4_000, 2_001, 5_000])
    (hit,) = dam_hourly.detect(stmts, warmup_end=WARM).detections
    assert (hit.start, hit.detected_at) == (t(8, 10, 0), t(8, 10, 20))  # at the crossing
    exactly = frame(minutes[:3], ["a"] * 3, [4_000, 4_000, 2_000])
    assert not dam_hourly.detect(exactly, warmup_end=WARM).detections


def test_dam_hourly_counts_clock_hours_and_users_apart() -> None:
    across = frame([t(8, 10, 50), t(8, 11, 10)], ["a", "a"], [6_000, 6_000])
    assert not dam_hourly.detect(across, warmup_end=WARM).detections
    two_users = frame([t(8, 10, 5), t(8, 10, 6)], ["a", "b"], [6_000, 6_000])
    assert not dam_hourly.detect(two_users, warmup_end=WARM).detections


def _days(totals: Sequence[float], user: str = "a", first_day: int = 4) -> pl.DataFrame:
    return frame([t(first_day + k, 10) for k in range(len(totals))], [user] * len(totals), totals)


def test_daily_sigma_threshold_is_mean_plus_3_sd_of_past_days() -> None:
    # past days 10, 20, 30: mean 20, sample sd 10 -> threshold 50
    assert not daily_sigma.detect(_days([10, 20, 30, 50]), warmup_end=WARM).detections
    (hit,) = daily_sigma.detect(_days([10, 20, 30, 51]), warmup_end=WARM).detections
    assert hit.detected_at == t(7, 10)
    assert "3 past days: 50" in hit.reason


def test_daily_sigma_needs_3_past_active_days_and_skips_idle_days() -> None:
    assert not daily_sigma.detect(_days([10, 20, 10_000]), warmup_end=WARM).detections
    gaps = frame([t(4, 10), t(6, 10), t(9, 10), t(12, 10)], ["a"] * 4, [10, 20, 30, 51])
    thresholds = daily_sigma.daily_thresholds(gaps)
    assert thresholds["past_days"].to_list() == [0, 1, 2, 3]  # idle days are not zeros
    assert len(daily_sigma.detect(gaps, warmup_end=WARM).detections) == 1


def test_daily_sigma_fires_at_the_statement_crossing_the_threshold() -> None:
    past = _days([10, 20, 30])
    today = frame([t(7, 9), t(7, 11), t(7, 12)], ["a"] * 3, [30, 30, 30])
    (hit,) = daily_sigma.detect(pl.concat([past, today]), warmup_end=WARM).detections
    assert (hit.start, hit.end, hit.detected_at) == (t(7, 9), t(7, 11), t(7, 11))


def test_daily_sigma_learns_per_user() -> None:
    quiet = _days([10, 20, 30, 51], user="a")
    busy = _days([1_000, 1_000, 1_000, 1_000], user="b")
    hits = daily_sigma.detect(pl.concat([quiet, busy]).sort("event_time"), warmup_end=WARM)
    assert [d.user for d in hits.detections] == ["a"]


def _office(extreme_rows: float = 200_000, extra_normal_days: int = 0) -> pl.DataFrame:
    """Three users, working hours 9-16 for 3 warm-up days and some days after, a few
    small statements an hour; one extreme hour for user c on the 8th at 03:00."""
    rng = np.random.default_rng(1)
    times, users, rows = [], [], []
    for day in range(4, 9 + extra_normal_days):
        for user in ("a", "b", "c"):
            for hour in range(9, 17):
                for _ in range(int(rng.integers(2, 5))):
                    times.append(t(day, hour, int(rng.integers(0, 60))))
                    users.append(user)
                    rows.append(float(rng.integers(1, 30)))
    times.append(t(8, 3, 15))
    users.append("c")
    rows.append(extreme_rows)
    return frame(times, users, rows)


def test_isolation_forest_flags_the_odd_hour_after_the_warmup_only() -> None:
    run = isolation_forest.detect(_office(), warmup_end=WARM)
    assert run.detections and all(d.detected_at > WARM for d in run.detections)
    (odd,) = [d for d in run.detections if d.start == t(8, 3, 15)]
    assert (odd.user, odd.detected_at) == ("c", t(8, 4))  # fires when the hour is over
    assert run.note.startswith("trained on 72 user-hours")  # 3 users x 8 hours x 3 days


def test_isolation_forest_is_deterministic() -> None:
    office = _office()
    assert isolation_forest.detect(office, warmup_end=WARM) == isolation_forest.detect(
        office, warmup_end=WARM
    )


def _verdicts(detections: Sequence[Detection], day: int) -> list[tuple[str, dt.datetime, str]]:
    return [(d.user, d.start, d.reason) for d in detections if d.start.day == day]


def test_isolation_forest_trains_on_the_warmup_days_only() -> None:
    """More days after the warm-up leave the model, hence every verdict and score on the
    8th, unchanged: nothing after the warm-up is learnt."""
    short = isolation_forest.detect(_office(), warmup_end=WARM).detections
    long = isolation_forest.detect(_office(extra_normal_days=3), warmup_end=WARM).detections
    assert _verdicts(short, 8) and _verdicts(short, 8) == _verdicts(long, 8)
    # a warm-up up to the 9th learns the 8th (its odd hour included) and judges later
    later = isolation_forest.detect(_office(extra_normal_days=3), warmup_end=t(9)).detections
    assert all(d.detected_at > t(9) for d in later)


def test_isolation_forest_without_enough_warmup_hours_raises_nothing() -> None:
    run = isolation_forest.detect(_office(), warmup_end=t(4, 12))
    assert run.detections == () and "not trained" in run.note


def test_isolation_forest_vectors_count_distinct_tables_and_people() -> None:
    stmts = frame(
        [t(9, 10), t(9, 10, 30)],
        ["a", "a"],
        [1, 2],
        tables_read=[["public.citizens"], ["public.citizens", "public.hotel_stays"]],
        subject_keys=[[11, 12], [12]],
    )
    (vec,) = isolation_forest.hour_vectors(stmts).iter_rows(named=True)
    assert vec["tables"] == 2 and vec["subjects"] == pytest.approx(np.log1p(2))
    assert vec["weekend"] == 1.0 and vec["hour_of_day"] == 10.0  # the 9th is a Saturday
    assert vec["rows"] == pytest.approx(np.log1p(3))


def _history(rows: Sequence[float], day: int = 4, database: str = "records") -> pl.DataFrame:
    n = len(rows)
    return frame(
        [t(day, 9) + dt.timedelta(seconds=k) for k in range(n)],
        ["x"] * n,
        list(rows),
        database=[database] * n,
    )


def _sentinel(history: pl.DataFrame, x: float, day: int = 5, db: str = "records") -> bool:
    probe = frame([t(day, 12)], ["intruder"], [x], database=[db])
    run = sentinel.detect(pl.concat([history, probe]), warmup_end=WARM)
    return any(d.user == "intruder" for d in run.detections)


def _thresholds(history: Sequence[float]) -> tuple[float, float]:
    """The x above which z > 3 and above which Q > 3 (Kusto/nearest-rank percentiles)."""
    values = np.asarray(history, dtype=float)
    mean, sd = values.mean(), values.std(ddof=1)
    ordered = np.sort(values)
    p50 = ordered[round(0.5 * (len(values) - 1))]
    p99 = ordered[round(0.99 * (len(values) - 1))]
    return mean + 3 * (sd + 1), p99 + 3 * (p99 - p50 + 1)


def test_sentinel_needs_rows_above_500() -> None:
    flat = _history([100] * 20)  # z and Q pass from 104 rows
    assert not _sentinel(flat, 500)
    assert _sentinel(flat, 501)


def test_sentinel_needs_q_above_3() -> None:
    rows = [100] * 19 + [1_100]
    z_at, q_at = _thresholds(rows)
    assert z_at < 1_000 and q_at == pytest.approx(4_103)
    assert not _sentinel(_history(rows), 4_000)  # z ~ 17, Q < 3
    assert _sentinel(_history(rows), 4_104)


def test_sentinel_needs_z_above_3() -> None:
    rows = [100] * 198 + [10_000] * 2  # p99 (nearest rank) is 100: Q passes from 104
    z_at, q_at = _thresholds(rows)
    assert q_at == pytest.approx(103) and z_at == pytest.approx(3_164.5, abs=0.5)
    assert not _sentinel(_history(rows), 3_100)
    assert _sentinel(_history(rows), 3_200)


def test_sentinel_is_per_database_and_needs_20_statements() -> None:
    assert not _sentinel(_history([100] * 19), 5_000)
    assert not _sentinel(_history([100] * 20), 5_000, db="other")
    # every user's statements make the database's normal, not the intruder's own
    assert _sentinel(_history([100] * 20), 5_000)


def test_sentinel_statistics_cover_the_15_days_before_the_statement_day() -> None:
    history = _history([100] * 20, day=4)
    assert _sentinel(history, 5_000, day=19)  # the 4th is 15 days before the 19th
    assert not _sentinel(history, 5_000, day=20)
    assert not _sentinel(history, 5_000, day=4)  # the day's own statements are not history
