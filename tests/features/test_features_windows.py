"""Per-user windows: the day so far is the day's closed hours added up, whatever the batches."""

from __future__ import annotations

import datetime as dt

import polars as pl

from features.access import EVENT_SIGNALS
from features.windows import WindowAggregator

T0 = dt.datetime(2024, 3, 4, 9, 10, tzinfo=dt.UTC)


def events(*at: tuple[float, int]) -> pl.DataFrame:
    """One lookup per (hours after 09:10, person key)."""
    n = len(at)
    return pl.DataFrame(
        {
            "event_time": [T0 + dt.timedelta(hours=h) for h, _ in at],
            "user": ["d07"] * n, "client_ip": ["10.0.0.7"] * n, "session_id": ["s"] * n,
            "fingerprint": ["SELECT phone FROM citizens WHERE national_id = ?"] * n,
            "fingerprint_id": [1] * n, "tables_read": [["public.citizens"]] * n,
            "classes": [["phone"]] * n, "subject_keys": [[k] for _, k in at],
            **{s: [1.0] * n for s in EVENT_SIGNALS},
            "new_tables": [0.0] * n, "new_templates": [0.0] * n, "new_ips": [0.0] * n,
            "new_classes": [[] for _ in at],
        },
        schema_overrides={
            "fingerprint_id": pl.UInt64, "subject_keys": pl.List(pl.UInt64),
            "new_classes": pl.List(pl.String),
        },
    )  # fmt: skip


LOOKUPS = ((0.0, 11), (0.5, 12), (1.0, 11), (1.2, 13), (3.0, 14))
COLUMNS = ("scale", "window_end", "statements", "subjects", "first_time", "last_time")


def _days(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return frame.filter(pl.col("scale") == "1d").select(COLUMNS).rows()


def test_each_closed_hour_gives_the_so_far() -> None:
    agg = WindowAggregator(scales=("1h", "1d"), lateness=0)
    agg.add(events(*LOOKUPS))
    got = _days(pl.concat([agg.advance(), agg.flush()]))
    at = [T0 + dt.timedelta(hours=h) for h, _ in LOOKUPS]
    hour = dt.timedelta(hours=1)
    start = T0.replace(minute=0)
    assert got == [
        ("1d", start + hour, 2.0, 2.0, at[0], at[1]),  # 09:00-10:00: people 11, 12
        ("1d", start + 2 * hour, 4.0, 3.0, at[0], at[3]),  # then 11 again and 13
        ("1d", start + 4 * hour, 5.0, 4.0, at[0], at[4]),  # 12:00-13:00: 14
        ("1d", start.replace(hour=0) + 24 * hour, 5.0, 4.0, at[0], at[4]),  # the whole day
    ]


def test_the_so_far_does_not_depend_on_the_batches() -> None:
    whole = WindowAggregator(lateness=0)
    whole.add(events(*LOOKUPS))
    one = pl.concat([whole.advance(), whole.flush()])
    split = WindowAggregator(lateness=0)
    parts = []
    for lookup in LOOKUPS:
        split.add(events(lookup))
        parts.append(split.advance())
    many = pl.concat([*parts, split.flush()])
    order = ["window_end", "scale", "window_start"]
    assert one.sort(order).drop("evidence").equals(many.sort(order).drop("evidence"))
    assert one.filter(pl.col("scale") == "1h").height == 8  # 5 five-minute parts + 3 hours


def test_no_so_far_when_asked_not_to() -> None:
    agg = WindowAggregator(scales=("1h", "1d"), lateness=0, so_far=False)
    agg.add(events(*LOOKUPS))
    assert len(_days(pl.concat([agg.advance(), agg.flush()]))) == 1


def test_each_closed_five_minutes_gives_the_hour_so_far() -> None:
    agg = WindowAggregator(scales=("5m", "1h"), lateness=0)
    agg.add(events((0.0, 11), (0.05, 12), (0.1, 11), (0.3, 13)))  # 09:10, 09:13, 09:16, 09:28
    rows = pl.concat([agg.advance(), agg.flush()]).filter(pl.col("scale") == "1h")
    ends = [e.strftime("%H:%M") for e in rows["window_end"]]
    assert ends == ["09:15", "09:20", "09:30", "10:00"]
    assert rows["statements"].to_list() == [2.0, 3.0, 4.0, 4.0]
    assert rows["subjects"].to_list() == [2.0, 2.0, 3.0, 3.0]
    assert rows["table_names"].to_list() == [["public.citizens"]] * 4
    assert [len(e) for e in rows["evidence"]] == [2, 3, 4, 4]


def test_users_do_not_mix() -> None:
    """Two users' lookups interleaved give each the rows they get alone."""
    alone = WindowAggregator(lateness=0)
    alone.add(events(*LOOKUPS))
    expected = pl.concat([alone.advance(), alone.flush()])
    other = events((0.02, 91), (0.6, 92), (0.61, 93), (2.0, 94)).with_columns(user=pl.lit("d99"))
    both = WindowAggregator(lateness=0)
    both.add(pl.concat([events(*LOOKUPS), other]).sort("event_time"))
    got = pl.concat([both.advance(), both.flush()])
    order = ["window_end", "scale", "window_start"]
    mine = got.filter(pl.col("user") == "d07").sort(order).drop("evidence")
    assert mine.equals(expected.sort(order).drop("evidence"))
    days = got.filter(pl.col("user") == "d99", pl.col("scale") == "1d")
    assert days["subjects"].to_list() == [3.0, 4.0, 4.0]  # 09:00-10:00, then 11:00-12:00


def test_a_users_windows_move_to_another_aggregator_and_close_the_same() -> None:
    """A user's open windows (and their hour/day so far) taken out of one aggregator and
    put into another on the same clock close exactly as if they had stayed."""
    first, rest = events(*LOOKUPS[:3]), events(*LOOKUPS[3:])
    other = first.with_columns(user=pl.lit("k02"))
    stayed = WindowAggregator(lateness=0)
    stayed.add(pl.concat([first, other]))
    early = stayed.advance()
    stayed.add(rest)
    expected = pl.concat([early, stayed.advance(), stayed.flush()])
    source = WindowAggregator(lateness=0)
    source.add(pl.concat([first, other]))
    assert source.advance().equals(early)
    moved = source.take_users({"d07"}, drop=True)
    target = WindowAggregator(lateness=0)
    target.add(other.with_columns(user=pl.lit("x99")))  # someone of its own
    target.advance()
    target.put(moved)
    target.add(rest)
    got = pl.concat([target.advance(), target.flush()]).filter(pl.col("user") == "d07")
    assert got.equals(expected.slice(early.height).filter(pl.col("user") == "d07"))
    left = pl.concat([source.advance(), source.flush()])
    assert set(left["user"]) == {"k02"}  # nothing of d07 stayed behind
