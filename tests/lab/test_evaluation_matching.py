"""The evaluation's arithmetic on hand-made labels, alert files and statements.

Every expected number below is worked out by hand from the scoring rules
(detector/lab/evaluation/matching.py): caught, missed, delays and their median, false alerts
deduplicated per (user, day), the warm-up split, hard negatives counted false, active
user-days.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from detector.exceptions import DetectorError
from detector.lab.evaluation.detections import Detection, read_alerts_jsonl
from detector.lab.evaluation.errors import EvaluationError
from detector.lab.evaluation.inputs import labels_frame
from detector.lab.evaluation.matching import (
    false_detections,
    label_matches,
    score_detector,
    warmup_end,
)
from detector.lab.evaluation.results import DetectorScore
from detector.lab.evaluation.statements import active_days, statement_frame


def t(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    """A time in March 2024 (UTC); the 4th is a Monday."""
    return dt.datetime(2024, 3, day, hour, minute, second, tzinfo=dt.UTC)


def label(
    kind: str, user: str, start: dt.datetime, end: dt.datetime, negative: bool = False
) -> dict[str, object]:
    return {
        "scenario": f"{kind}-{user}-{start:%d%H%M}",
        "kind": kind,
        "user": user,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "negative": negative,
    }


LABELS = labels_frame(
    [
        label("smash_and_grab", "a", t(8, 10), t(8, 10, 2)),  # caught after 60 s
        label("smash_and_grab", "b", t(8, 12), t(8, 12, 1)),  # missed
        label("low_and_slow", "c", t(5, 9), t(9, 17)),  # caught on the 9th at midnight
        label("enumeration", "a", t(6, 9), t(6, 16)),  # caught in the warm-up, 1 h
        label("etl_bulk", "etl", t(8, 2), t(8, 2, 10), negative=True),  # alerted: false
        label("busy_day", "d", t(9), t(9, 23, 59), negative=True),  # not alerted
    ]
)


def det(user: str, start: dt.datetime, end: dt.datetime, at: dt.datetime) -> Detection:
    return Detection(user, start, end, at, "hand-made")


DETECTIONS = [
    det("a", t(8, 10, 0, 30), t(8, 10, 1), t(8, 10, 1)),  # catches a's grab: 60 s
    det("a", t(8, 10, 5), t(8, 10, 30), t(8, 10, 30)),  # after it, within a day: not false
    det("b", t(8, 11), t(8, 11, 10), t(8, 11, 10)),  # before b's grab: false (b, 8th)
    det("b", t(8, 11, 30), t(8, 11, 40), t(8, 11, 40)),  # same user-day: one pair
    det("c", t(8, 10), t(8, 10), t(9)),  # catches c's trickle after 3 d 15 h
    det("a", t(6, 9, 10), t(6, 9, 20), t(6, 10)),  # catches a's enumeration in the warm-up
    det("etl", t(8, 2), t(8, 2, 5), t(8, 2, 5)),  # on the nightly job: false (etl, 8th)
    det("e", t(5, 12), t(5, 12), t(5, 12)),  # false, in the warm-up
    det("b", t(9, 13), t(9, 13), t(9, 13)),  # false (b, 9th): b's grab ended > 1 day before
]

#: Statements: a, c, etl every day of the 4th..9th (c from the 5th), b on the 8th and 9th,
#: d on the 9th; a's 6th ends at 23:59 and its 7th starts at 00:01.
STATEMENTS = statement_frame(
    {
        "event_time": [t(d, 9) for d in range(4, 10)] * 2
        + [t(d, 9) for d in range(5, 10)]
        + [t(8, 9), t(9, 9), t(9, 9), t(6, 23, 59), t(7, 0, 1)],
        "user": ["a"] * 6 + ["etl"] * 6 + ["c"] * 5 + ["b", "b", "d", "a", "a"],
    }
)
WARMUP_END = warmup_end(t(4, 9), 3)


@pytest.fixture(scope="module")
def score() -> DetectorScore:
    return score_detector(
        "hand", "hand-made", DETECTIONS, LABELS, active_days(STATEMENTS), WARMUP_END
    )


def test_warmup_ends_at_midnight_whole_days_after_the_first_statement() -> None:
    assert warmup_end(t(4, 9), 3) == t(7)
    assert warmup_end(t(4, 23, 59), 0) == t(4)


def test_active_user_days_are_distinct_user_days_with_a_statement() -> None:
    days = active_days(STATEMENTS)
    assert days.height == 6 + 6 + 5 + 2 + 1  # a's late and early statements add no day
    after = days.filter(pl.col("day") >= WARMUP_END.date())
    assert after.height == 3 + 3 + 3 + 2 + 1


def test_caught_missed_and_delays_per_kind(score: DetectorScore) -> None:
    kinds = {k.kind: k for k in score.kinds}
    assert list(kinds) == ["smash_and_grab", "enumeration", "low_and_slow"]  # report order
    grab = kinds["smash_and_grab"]
    assert (grab.caught, grab.total, grab.median_delay_s, grab.max_delay_s) == (1, 2, 60, 60)
    assert (kinds["enumeration"].caught, kinds["enumeration"].median_delay_s) == (1, 3600)
    slow = 3 * 86400 + 15 * 3600
    assert (kinds["low_and_slow"].caught, kinds["low_and_slow"].max_delay_s) == (1, slow)
    overall = score.overall
    assert (overall.caught, overall.total) == (3, 4)
    assert (overall.median_delay_s, overall.max_delay_s) == (3600, slow)  # of 60, 3600, slow
    assert overall.hit_rate == 0.75


def test_burst_pool_has_an_even_count_median_and_after_warmup_only_late_labels(
    score: DetectorScore,
) -> None:
    assert (score.burst.caught, score.burst.total) == (2, 3)
    assert score.burst.median_delay_s == (60 + 3600) / 2
    assert (score.after_warmup.caught, score.after_warmup.total) == (1, 2)


def test_false_alerts_are_distinct_user_days_after_the_warmup(score: DetectorScore) -> None:
    assert score.alerts == 9
    assert score.false_pairs == 3  # (b, 8th) twice, (etl, 8th), (b, 9th)
    assert score.active_user_days == 12
    assert score.false_per_100 == pytest.approx(25.0)


def test_warmup_alerts_are_counted_apart(score: DetectorScore) -> None:
    assert (score.warmup_alerts, score.warmup_false_alerts) == (2, 1)


def test_hard_negatives_that_alert_are_false_and_counted(score: DetectorScore) -> None:
    assert (score.hard_negatives_alerted, score.hard_negatives) == (1, 2)
    false = false_detections(LABELS, DETECTIONS)
    assert "etl" in false["user"].to_list()


def test_catch_window_edges() -> None:
    labels = labels_frame([label("smash_and_grab", "a", t(8, 10), t(8, 10, 2))])

    def caught(start: dt.datetime, end: dt.datetime, at: dt.datetime) -> bool:
        matches = label_matches(labels, [det("a", start, end, at)])
        return matches["detected_at"].is_not_null().item()

    assert caught(t(8, 9, 55), t(8, 9, 55), t(8, 10))  # starts 5 min early: counts
    assert not caught(t(8, 9, 54), t(8, 9, 54, 59), t(8, 10))  # ends before that: no
    assert caught(t(8, 10), t(8, 10), t(8, 11, 2))  # fires end + 1 h: in time
    assert not caught(t(8, 10), t(8, 10), t(8, 11, 2, 1))  # a second later: too late
    assert not caught(t(8, 9, 58), t(8, 10), t(8, 9, 59))  # fired before the threat began
    assert (
        not label_matches(labels, [det("b", t(8, 10), t(8, 10), t(8, 10))])["detected_at"]
        .is_not_null()
        .item()
    )  # another user's alert catches nothing


def test_low_and_slow_may_fire_a_day_after_its_end() -> None:
    labels = labels_frame([label("low_and_slow", "c", t(5, 9), t(8, 17))])
    on_time = label_matches(labels, [det("c", t(8, 10), t(8, 10), t(9, 17))])
    late = label_matches(labels, [det("c", t(8, 10), t(8, 10), t(9, 17, 0, 1))])
    assert on_time["delay_s"].item() == 4 * 86400 + 8 * 3600
    assert late["delay_s"].item() is None


def test_first_catching_alert_gives_the_delay() -> None:
    labels = labels_frame([label("enumeration", "a", t(8, 9), t(8, 16))])
    dets = [det("a", t(8, 9), t(8, 10), t(8, 11)), det("a", t(8, 9), t(8, 9, 5), t(8, 9, 5))]
    assert label_matches(labels, dets)["delay_s"].item() == 300


def test_an_alert_a_day_after_a_threat_points_at_it_later_ones_are_false() -> None:
    labels = labels_frame([label("smash_and_grab", "a", t(8, 10), t(8, 10, 2))])
    near = det("a", t(9, 10, 2), t(9, 10, 2), t(9, 10, 2))
    far = det("a", t(9, 10, 2, 1), t(9, 10, 3), t(9, 10, 3))
    assert false_detections(labels, [near, far])["start"].to_list() == [far.start]


def test_no_labels_no_detections_no_active_days() -> None:
    empty = labels_frame([])
    score = score_detector("x", "x", [], empty, active_days(STATEMENTS.head(0)), WARMUP_END)
    assert (score.overall.caught, score.overall.total, score.overall.hit_rate) == (0, 0, None)
    assert score.false_per_100 is None and score.kinds == ()


def _alert_line(user: str, severity: str, start: dt.datetime, detected: dt.datetime) -> str:
    return json.dumps(
        {
            "id": "0123456789abcdef",
            "revision": 1,
            "user": user,
            "kind": "smash_and_grab",
            "severity": severity,
            "score": 9.5,
            "start": start.isoformat(timespec="microseconds"),
            "end": start.isoformat(timespec="microseconds"),
            "detected_at": detected.isoformat(timespec="microseconds"),
            "updated_at": detected.isoformat(timespec="microseconds"),
        }
    )


def test_hand_made_alert_file_keeps_medium_and_higher(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    lines = [
        _alert_line("a", "critical", t(8, 10, 0, 30), t(8, 10, 1)),
        _alert_line("b", "low", t(8, 12), t(8, 12, 1)),  # would catch b's grab: low does not
        "",
        _alert_line("etl", "medium", t(8, 2), t(8, 2, 5)),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dets = read_alerts_jsonl(path)
    assert [(d.user, d.reason) for d in dets] == [
        ("a", "smash_and_grab (critical)"),
        ("etl", "smash_and_grab (medium)"),
    ]
    score = score_detector("ours", "", dets, LABELS, active_days(STATEMENTS), WARMUP_END)
    assert (score.kinds[0].caught, score.kinds[0].total) == (1, 2)
    assert (score.false_pairs, score.hard_negatives_alerted) == (1, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "alerts.jsonl:1: not JSON"),
        ('{"user": "a", "severity": "high", "start": "2024-03-08T10:00:00+00:00"}', "lacks 'end'"),
        (
            '{"user": "a", "severity": "high", "start": "x", "end": "x", "detected_at": "x"}',
            "bad alert time",
        ),
    ],
)
def test_bad_alert_files_raise_under_the_project_root(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match=message) as info:
        read_alerts_jsonl(path)
    assert isinstance(info.value, DetectorError)


def test_missing_alert_file_raises(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="cannot read alerts file"):
        read_alerts_jsonl(tmp_path / "nope.jsonl")
