"""The scorer's promises on hand-made windows: peers judge a new user from day one, alerted
windows do not teach, the multi-day excess needs an established normal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from detector.scoring import MAX_HOLD_DAYS, Scorer
from features.windows import WINDOW_FEATURES, WINDOW_SCHEMA

DAY0 = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)


def windows(*rows: dict[str, Any]) -> pl.DataFrame:
    """Day windows (scale 1d) with defaults for every column of the window frame."""
    base: dict[str, Any] = {
        "scale": "1d",
        "hour": 0,
        "weekday": 0,
        **dict.fromkeys(WINDOW_FEATURES, 1.0),
        "export_rows": 0.0,
        "estimated_rows": 0.0,
        "new_tables": 0.0,
        "new_templates": 0.0,
        "new_ips": 0.0,
        "new_classes": [],
        "client_ips": [],
        "table_names": [],
        "classes": [],
        "evidence": [],
    }
    out = []
    for r in rows:
        day = DAY0 + dt.timedelta(days=r.pop("day", 0))
        times = dict.fromkeys(("window_start", "first_time", "last_time"), day)
        out.append(base | times | {"window_end": day + dt.timedelta(days=1)} | r)
    return pl.DataFrame(out, schema=WINDOW_SCHEMA)


def roles(frame: pl.DataFrame, role: str) -> pl.Series:
    return pl.Series("role", [role] * frame.height)


def learn_days(scorer: Scorer, users: list[str], rows: float, days: range, role: str) -> None:
    for day in days:
        frame = windows(*({"user": u, "sensitive_rows": rows, "day": day} for u in users))
        scored = scorer.score(frame, roles(frame, role))
        scorer.learn(scored, np.zeros(frame.height, dtype=bool))


def test_a_new_user_is_judged_against_peers_from_day_one() -> None:
    scorer = Scorer()
    learn_days(scorer, [f"officer{k}" for k in range(8)], 40.0, range(5), "desk")
    new = windows(
        {"user": "newcomer", "sensitive_rows": 45.0, "day": 5},
        {"user": "newcomer2", "sensitive_rows": 30_000.0, "day": 5},
    )
    scored = scorer.score(new, roles(new, "desk"))
    z = dict(zip(scored["user"], scored["z_sensitive_rows"], strict=True))
    assert abs(z["newcomer"]) < 1.0
    assert z["newcomer2"] > 8.0
    assert scored["history"].to_list() == [0, 0]
    assert 30 < scored["peer_typical_sensitive_rows"][0] < 55


def test_windows_that_alerted_do_not_teach_the_baseline() -> None:
    scorer = Scorer()
    learn_days(scorer, ["d07"], 40.0, range(5), "desk")
    before = scorer.baselines_["1d"].stats_many(np.array([0])).center.copy()
    grab = windows({"user": "d07", "sensitive_rows": 30_000.0, "day": 5})
    scorer.learn(scorer.score(grab, roles(grab, "desk")), np.array([True]))
    after = scorer.baselines_["1d"].stats_many(np.array([0])).center
    assert np.array_equal(before, after)


def test_multi_day_excess_builds_for_a_known_role_not_for_a_stranger() -> None:
    scorer = Scorer()
    learn_days(scorer, [f"inv{k}" for k in range(4)], 150.0, range(3), "investigator")
    trickle = []
    for day in range(3, 7):
        frame = windows(
            {"user": "inv0", "sensitive_rows": 450.0, "day": day},
            {"user": "stranger", "sensitive_rows": 5000.0, "day": day},
        )
        scored = scorer.score(frame, pl.Series("role", ["investigator", ""]))
        scorer.learn(scored, np.zeros(2, dtype=bool))
        trickle.append(scored["cusum_sensitive_rows"].to_list())
    inv0 = [c[0] for c in trickle]
    assert inv0 == sorted(inv0) and inv0[-1] >= 4.0  # keeps growing: 3x peers every day
    assert trickle[0][1] == 0.0  # a new account with no role: no drift measured yet


def test_days_held_back_during_a_streak_are_learned_when_it_breaks() -> None:
    scorer = Scorer()
    learn_days(scorer, [f"inv{k}" for k in range(4)], 150.0, range(3), "investigator")
    history = []
    for day, rows in ((3, 600.0), (4, 600.0), (5, 150.0)):  # two high days, then normal
        frame = windows({"user": "inv0", "sensitive_rows": rows, "day": day})
        scored = scorer.score(frame, roles(frame, "investigator"))
        scorer.learn(scored, np.zeros(1, dtype=bool))
        history.append(int(scorer.baselines_["1d"].stats_many(np.array([0])).count[0]))
    assert history == [3, 3, 6]  # held back while the streak lived, then all learned
    assert scorer.held_.days_ is not None and scorer.held_.days_.is_empty()


def test_a_lasting_new_level_is_learned_after_a_week() -> None:
    """Excess every day for longer than a trickle takes to alert: a new normal."""
    scorer = Scorer()
    learn_days(scorer, [f"inv{k}" for k in range(4)], 150.0, range(3), "investigator")
    for day in range(3, 3 + MAX_HOLD_DAYS + 1):
        frame = windows({"user": "inv0", "sensitive_rows": 600.0, "day": day})
        scorer.learn(scorer.score(frame, roles(frame, "investigator")), np.zeros(1, dtype=bool))
    count = int(scorer.baselines_["1d"].stats_many(np.array([0])).count[0])
    assert count == 3 + MAX_HOLD_DAYS + 1


def _hour_windows(*runs: tuple[str, int, int]) -> pl.DataFrame:
    """Hour windows of (user, day, hour) reading a 30,000-row table."""
    frame = windows(*({"user": u, "day": d, "sensitive_rows": 30_000.0} for u, d, _ in runs))
    shift = pl.Series([dt.timedelta(hours=h) for _, _, h in runs])
    return frame.with_columns(
        *(pl.col(c) + shift for c in ("window_start", "first_time", "last_time")),
        window_end=pl.col("window_start") + shift + dt.timedelta(hours=1),
        scale=pl.lit("1h"),
        hour=pl.Series([h for _, _, h in runs], dtype=pl.Int8),
    )


def test_a_scheduled_job_off_its_hour_scores_on_its_third_day() -> None:
    """A backup account that ran at 01:00 three nights: its usual hour adds nothing, a run
    at 10:00 adds twice its surprise beyond 3 bits; a person's odd hour counts from 6."""
    scorer = Scorer(service_roles=frozenset({"backup"}))
    for day in range(3):
        frame = _hour_windows(("backup_agent", day, 1), ("officer01", day, 1))
        role = pl.Series("role", ["backup", "desk"])
        scorer.learn(scorer.score(frame, role), np.zeros(2, dtype=bool))
    frame = _hour_windows(("backup_agent", 3, 1), ("backup_agent", 3, 10), ("officer01", 3, 10))
    scored = scorer.score(frame, pl.Series("role", ["backup", "backup", "desk"]))
    usual, off, person = scored.select("hour_surprise", "raw_score").rows()
    assert usual[0] < 1.5 and usual[1] < 1.0
    assert off[0] > 6.5 and off[1] >= 2 * (off[0] - 3.0)
    assert person[0] > 6.5 and person[1] <= off[1] / 2


def test_without_the_multivariate_model_matched_windows_keep_their_score() -> None:
    scorer = Scorer(multivariate=False)
    matches = pl.DataFrame({"scale": ["1h"], "raw_score": [4.0]})
    assert scorer.refine(matches).equals(matches)
