"""Alerts: grouping and updating matches, ids, ordering, JSON Lines, scrubbing, the table."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.alert_book import AlertBook
from detector.alerts import Alert, alert_id, scrub, write_jsonl
from detector.commands.alert_table import format_alert_table
from detector.exceptions import AlertError, ThreatRuleError
from detector.rules.matching import match_rules
from detector.rules.schema import load_rules, window_frame

RULES = {r.id: r for r in load_rules()}
KIND = {r.id: r.kind for r in RULES.values()}
T0 = datetime(2024, 3, 6, 10, 0, tzinfo=UTC)
EVIDENCE = pl.Struct(
    {
        "time": pl.Datetime("us", "UTC"),
        "statement": pl.String,
        "rows": pl.Int64,
        "sensitive_rows": pl.Int64,
        "tables": pl.List(pl.String),
    }
)
SCHEMA = {
    "user": pl.String,
    "role": pl.String,
    "scale": pl.String,
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "table_names": pl.List(pl.String),
    "client_ips": pl.List(pl.String),
    "evidence": pl.List(EVIDENCE),
    "raw_score": pl.Float64,
    "rule_id": pl.String,
    "kind": pl.String,
    "severity": pl.String,
    "reasons": pl.List(pl.String),
}


def ev(minute: int, statement: str, rows: int, tables: tuple[str, ...] = ("t",)) -> dict[str, Any]:
    time = T0 + timedelta(minutes=minute)
    return {"time": time, "statement": statement, "rows": rows, "sensitive_rows": rows} | {
        "tables": list(tables)
    }


def match(
    rule_id: str = "EXF-003",
    user: str = "d07",
    start: float = 0,
    minutes: float = 5,
    **overrides: Any,
) -> dict[str, Any]:
    """One match row: window starts ``start`` minutes after T0 and lasts ``minutes``."""
    window_start = T0 + timedelta(minutes=start)
    row = {
        "user": user,
        "role": "desk",
        "scale": RULES[rule_id].scale,
        "window_start": window_start,
        "window_end": window_start + timedelta(minutes=minutes),
        "table_names": ["public.citizens"],
        "client_ips": ["10.0.0.7"],
        "evidence": [],
        "raw_score": 5.0,
        "rule_id": rule_id,
        "kind": KIND[rule_id],
        "severity": RULES[rule_id].severity,
        "reasons": [f"reason of {rule_id} at {start}"],
    }
    return row | overrides


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SCHEMA)


def test_a_new_match_opens_an_alert() -> None:
    book = AlertBook()
    (alert,) = book.add_matches(frame(match()), RULES)
    assert alert.revision == 1
    assert (
        alert.id
        == hashlib.sha256(b"d07|paginated_dump|2024-03-06T10:00:00.000000+00:00").hexdigest()[:16]
    )
    assert (alert.start, alert.end) == (T0, T0 + timedelta(minutes=5))
    assert alert.detected_at == alert.updated_at == T0 + timedelta(minutes=5)
    assert alert.rule_ids == ("EXF-003",)
    assert alert.attack == ("T1030", "T1119")
    assert alert.triage == RULES["EXF-003"].triage
    assert (alert.role, alert.status) == ("desk", "open")


def test_related_matches_update_one_alert() -> None:
    book = AlertBook()
    first = match(
        evidence=[ev(1, "SELECT * FROM c LIMIT ? OFFSET ?", 100), ev(2, "SELECT a", 50)],
        client_ips=["10.0.0.7"],
        reasons=["low reason", "shared"],
    )
    (created,) = book.add_matches(frame(first), RULES)
    later = match(
        "EXF-004",
        start=60,
        minutes=60,
        severity="critical",
        raw_score=9.0,
        table_names=["public.addresses", "public.citizens"],
        client_ips=["10.0.0.9"],
        reasons=["high reason", "shared"],
        evidence=[ev(61, "SELECT b", 900), ev(1, "SELECT * FROM c LIMIT ? OFFSET ?", 100)]
        + [ev(70 + i, f"SELECT {i}", 10 + i) for i in range(5)],
    )
    (updated,) = book.add_matches(frame(later), RULES)
    assert updated.id == created.id
    assert updated.revision == 2
    assert (updated.start, updated.end) == (T0, T0 + timedelta(minutes=120))
    assert updated.detected_at == created.detected_at
    assert updated.updated_at == T0 + timedelta(minutes=120)
    assert (updated.severity, updated.score) == ("critical", 9.0)
    assert updated.reasons == ("high reason", "shared", "low reason")
    assert [(e.statement, e.rows) for e in updated.evidence] == [
        ("SELECT b", 900),
        ("SELECT * FROM c LIMIT ? OFFSET ?", 100),
        ("SELECT a", 50),
        ("SELECT 4", 14),
        ("SELECT 3", 13),
    ]
    assert updated.tables == ("public.addresses", "public.citizens")
    assert updated.client_ips == ("10.0.0.7", "10.0.0.9")
    assert updated.rule_ids == ("EXF-003", "EXF-004")
    assert updated.attack == ("T1030", "T1119")
    assert updated.triage == RULES["EXF-004"].triage  # that of the highest-scoring match
    assert len(book) == 1


def test_lower_scoring_update_keeps_severity_score_and_reason_order() -> None:
    book = AlertBook()
    book.add_matches(frame(match(raw_score=9.0, severity="critical", reasons=["a"])), RULES)
    (alert,) = book.add_matches(frame(match(start=10, raw_score=2.0, reasons=["b"])), RULES)
    # one explanation per rule: its best match's
    assert (alert.severity, alert.score, alert.reasons) == ("critical", 9.0, ("a",))
    (merged,) = book.add_matches(
        frame(match("EXF-004", start=20, raw_score=1.0, reasons=["c"])), RULES
    )
    assert merged.triage == RULES["EXF-003"].triage
    assert merged.rule_ids == ("EXF-003", "EXF-004")
    assert merged.reasons == ("a", "c")  # best rule first


def test_reasons_are_capped() -> None:
    rows = [
        match(rule, start=i, raw_score=float(i), reasons=[f"r{i}{c}" for c in "abcd"])
        for i, rule in enumerate(("EXF-003", "EXF-004"))
    ]
    (alert,) = AlertBook().add_matches(frame(*rows), RULES)
    assert alert.reasons == ("r1a", "r1b", "r1c", "r1d", "r0a", "r0b")


def test_matches_beyond_the_gap_open_a_new_alert() -> None:
    book = AlertBook()
    book.add_matches(frame(match()), RULES)  # ends 10:05
    (second,) = book.add_matches(frame(match(start=5 + 121)), RULES)
    assert second.revision == 1
    assert len(book) == 2
    # a third match near the second joins the newest alert, not the first
    (third,) = book.add_matches(frame(match(start=5 + 130)), RULES)
    assert (third.id, third.revision) == (second.id, 2)


def test_low_and_slow_groups_over_days() -> None:
    book = AlertBook()
    day = 24 * 60
    for d in range(5):  # every day for a working week: one alert
        book.add_matches(frame(match("EXF-007", start=d * day, minutes=day)), RULES)
    (alert,) = book.alerts()
    assert alert.revision == 5
    assert alert.end == T0 + timedelta(days=5)
    # a trickle paused over a long weekend is the same trickle
    book.add_matches(frame(match("EXF-007", start=9 * day, minutes=day)), RULES)
    assert len(book) == 1
    # more than a week later it is a new one
    book.add_matches(frame(match("EXF-007", start=18 * day, minutes=day)), RULES)
    assert len(book) == 2
    custom = AlertBook(group_gap=timedelta(minutes=1), kind_gaps={})
    custom.add_matches(frame(match("EXF-007", minutes=day)), RULES)
    custom.add_matches(frame(match("EXF-007", start=2 * day, minutes=day)), RULES)
    assert len(custom) == 2


def test_users_are_kept_apart_and_one_burst_of_a_user_is_one_alert() -> None:
    rows = [
        match(),
        match(user="x01"),
        match("EXF-005", minutes=60, raw_score=9.0),  # same burst, another kind
        match("EXF-005", start=600, minutes=60),  # hours later: a new alert
    ]
    created = AlertBook().add_matches(frame(*rows), RULES)
    assert sorted((a.user, a.kind, a.kinds) for a in created) == [
        ("d07", "enumeration", ("enumeration",)),
        ("d07", "enumeration", ("enumeration", "paginated_dump")),  # highest score names it
        ("x01", "paginated_dump", ("paginated_dump",)),
    ]


def test_revisions_count_detection_instants_whatever_the_batching() -> None:
    later = [match(start=5), match(start=10), match(start=10, rule_id="EXF-004", minutes=5)]
    together = AlertBook()
    together.add_matches(frame(match()), RULES)
    (one_call,) = together.add_matches(frame(*later), RULES)
    apart = AlertBook()
    apart.add_matches(frame(match()), RULES)
    for row in later:
        apart.add_matches(frame(row), RULES)
    (many_calls,) = apart.alerts()
    assert one_call.revision == many_calls.revision == 3  # first, +10 min, +15 min
    assert one_call == many_calls


def test_returned_and_listed_orders() -> None:
    rows = [
        match(user="b", start=30),
        match(user="a", start=30),
        match("EXF-005", user="a", start=-300, minutes=60),
        match(user="c", start=0),
    ]
    returned = AlertBook().add_matches(frame(*rows), RULES)
    assert [(a.user, a.kind) for a in returned] == [
        ("a", "enumeration"),  # detected 06:00
        ("c", "paginated_dump"),  # detected 10:05
        ("a", "paginated_dump"),  # detected 10:35
        ("b", "paginated_dump"),
    ]
    book = AlertBook()
    book.add_matches(frame(*rows), RULES)
    assert [(a.user, a.kind) for a in book.alerts()] == [
        ("a", "enumeration"),
        ("c", "paginated_dump"),
        ("a", "paginated_dump"),
        ("b", "paginated_dump"),
    ]


def test_alerts_do_not_depend_on_row_order_or_batching() -> None:
    rows = [match(user=u, start=s, raw_score=s / 10) for u in ("a", "b") for s in (0, 20, 400)]
    one = AlertBook()
    one.add_matches(frame(*rows), RULES)
    shuffled = AlertBook()
    shuffled.add_matches(frame(*reversed(rows)), RULES)
    assert [a.to_json() for a in one.alerts()] == [a.to_json() for a in shuffled.alerts()]
    batched = AlertBook()
    for r in sorted(rows, key=lambda r: r["window_end"]):
        batched.add_matches(frame(r), RULES)
    strip = [{k: v for k, v in a.to_json().items() if k != "revision"} for a in batched.alerts()]
    assert strip == [
        {k: v for k, v in a.to_json().items() if k != "revision"} for a in one.alerts()
    ]


def test_ids_are_deterministic() -> None:
    assert alert_id("d07", "enumeration", T0) == alert_id("d07", "enumeration", T0)
    assert alert_id("d07", "enumeration", T0) != alert_id("d08", "enumeration", T0)
    assert re.fullmatch(r"[0-9a-f]{16}", alert_id("d07", "enumeration", T0))
    a = AlertBook().add_matches(frame(match()), RULES)[0]
    b = AlertBook().add_matches(frame(match()), RULES)[0]
    assert a.id == b.id


def test_json_fields_in_order_with_offsets() -> None:
    row = match(raw_score=3.14159, evidence=[ev(1, "SELECT ?", 3)])
    data = AlertBook().add_matches(frame(row), RULES)[0].to_json()
    assert list(data) == [
        "id",
        "revision",
        "user",
        "kind",
        "severity",
        "score",
        "start",
        "end",
        "detected_at",
        "updated_at",
        "reasons",
        "evidence",
        "tables",
        "client_ips",
        "rule_ids",
        "kinds",
        "attack",
        "triage",
        "role",
        "status",
    ]
    assert data["score"] == 3.14
    assert data["start"] == "2024-03-06T10:00:00.000000+00:00"
    for key in ("end", "detected_at", "updated_at"):
        assert datetime.fromisoformat(data[key]).utcoffset() == timedelta(0)
    assert data["evidence"] == [
        {
            "time": "2024-03-06T10:01:00.000000+00:00",
            "statement": "SELECT ?",
            "rows": 3,
            "tables": ["t"],
        }
    ]
    json.dumps(data)


def test_to_json_scrubs_id_and_phone_numbers() -> None:
    leaky = match(
        reasons=["looked up 110105194912310021 and 11010519491231002X; read 1,200,000 rows"],
        evidence=[ev(1, "SELECT * FROM c WHERE phone = '13812345678' LIMIT 100", 1)],
    )
    alert = AlertBook().add_matches(frame(leaky), RULES)[0]
    data = alert.to_json()
    assert data["reasons"] == ["looked up ? and ?; read 1,200,000 rows"]
    assert data["evidence"][0]["statement"] == "SELECT * FROM c WHERE phone = '?' LIMIT 100"
    assert not re.search(r"\d{7,}", json.dumps(data))
    assert "110105194912310021" not in format_alert_table([alert])
    assert scrub("1234567x and 123456") == "? and 123456"


def test_book_survives_pickle_and_keeps_grouping() -> None:
    book = AlertBook()
    book.add_matches(frame(match(evidence=[ev(1, "SELECT ?", 3)])), RULES)
    restored = pickle.loads(pickle.dumps(book))
    assert restored.alerts() == book.alerts()
    (alert,) = restored.add_matches(frame(match(start=30)), RULES)
    assert (alert.id, alert.revision) == (book.alerts()[0].id, 2)
    assert len(book.alerts()) == 1 and book.alerts()[0].revision == 1


def test_write_jsonl_is_one_object_per_line(tmp_path: Path) -> None:
    book = AlertBook()
    book.add_matches(frame(match(user="a"), match(user="b")), RULES)
    out = tmp_path / "alerts.jsonl"
    out.write_text("stale\n", encoding="utf-8")
    write_jsonl(book.alerts(), out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["user"] for line in lines] == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["alerts.jsonl"]
    with pytest.raises(AlertError, match="cannot write alerts"):
        write_jsonl(book.alerts(), tmp_path / "missing" / "alerts.jsonl")


def test_bad_matches_are_rejected() -> None:
    book = AlertBook()
    assert book.add_matches(frame(), RULES) == []
    with pytest.raises(AlertError, match="reasons"):
        book.add_matches(frame(match()).drop("reasons"), RULES)
    with pytest.raises(ThreatRuleError, match="EXF-003"):
        book.add_matches(frame(match()), {})


def test_match_rules_output_feeds_the_book() -> None:
    rules = tuple(RULES.values())
    windows = window_frame(
        [
            {"user": "d07", "scale": "5m", "pages": 80.0, "z_pages": 6.0}
            | {"sensitive_rows": 8000.0, "raw_score": 7.0, "table_names": ["public.citizens"]},
            {"user": "d07", "scale": "1h", "pages": 80.0, "z_pages": 6.0}
            | {"sensitive_rows": 8000.0, "raw_score": 6.0, "window_end": T0 + timedelta(hours=1)},
        ]
    )
    (alert,) = AlertBook().add_matches(match_rules(rules, windows), RULES)
    assert (alert.kind, alert.rule_ids, alert.score) == (
        "paginated_dump",
        ("EXF-003", "EXF-004"),
        7.0,
    )
    assert alert.reasons[0].startswith("ran 80 pagination statements")


def _alert(user: str, severity: str, reason: str) -> Alert:
    a = AlertBook().add_matches(frame(match(user=user, severity=severity, reasons=[reason])), RULES)
    return a[0]


def test_alert_table_is_fixed_width() -> None:
    alerts = [
        _alert("d07", "critical", "read 200,000 sensitive rows " + "x" * 100),
        _alert("investigator-12", "medium", "short"),
    ]
    lines = format_alert_table(alerts, reason_width=40).splitlines()
    assert lines[0].split()[:3] == ["ID", "SEVERITY", "KIND"]
    assert len(lines) == 4
    starts = [line.index("2024-03-06") for line in lines[1:3]]
    assert starts[0] == starts[1] == lines[0].index("START")
    assert lines[1].endswith("read 200,000 sensitive rows " + "x" * 9 + "...")
    assert len(lines[1].split("  ")[-1].strip()) == 40
    assert "12.35" not in lines[1] and "5.00" in lines[1]
    assert lines[-1] == "2 alerts: 1 critical, 1 medium"
    assert format_alert_table([]) == "no alerts"
