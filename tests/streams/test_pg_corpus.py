"""PostgreSQL parsers on public server logs written by others (tests/data/corpus)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from corpus import CORPUS
from detector.commands.parse import parse_files
from detector.config import Config
from streams.detect import detect_file

LOGS = CORPUS / "postgresql-log"


def _parse(name: str) -> tuple[pl.DataFrame, dict[str, int]]:
    events, summary = parse_files([LOGS / name], Config(), out=None, dead_letter=None)
    return events, summary.rejects


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_pg14_csvlog_with_edt_timestamps() -> None:
    events, rejects = _parse("elastic-integrations-test-postgresql-14-csv.log")
    assert rejects == {}
    assert events.select("event_kind", "user", "client_ip").rows() == [
        ("connect", "postgres", "[local]"),
        ("disconnect", "postgres", "[local]"),
    ]
    # 03:27:13.529 EDT is 07:27:13.529 UTC.
    assert events["event_time"][0] == _utc(2025, 4, 21, 7, 27, 13, 529000)


def test_pg11_csvlog_23_columns_with_failed_logins() -> None:
    events, rejects = _parse("elastic-beats-postgresql-11-connection-disconnection.csv.log")
    assert rejects == {}
    failed = events.filter(pl.col("event_kind") == "failed_connect")
    assert failed.height == 4
    assert set(failed["user"]) == {"azlev"}
    assert set(failed["error_code"]) == {"28P01"}
    assert set(events["client_ip"]) == {"172.24.0.1"}


def test_stderr_with_many_zone_abbreviations() -> None:
    path = LOGS / "elastic-integrations-test-postgresql-timezones.log"
    assert detect_file(path).format == "pgaudit-stderr"
    events, rejects = _parse(path.name)
    assert rejects == {}
    # The one error with a STATEMENT line becomes a statement event; 22:45:30 MST is
    # 05:45:30 UTC the next day.
    assert events.select("user", "statement", "event_time").rows() == [
        (
            "postgres",
            "SELECT id, user FROM users WHERE NOT user @> %s",
            _utc(2025, 4, 8, 5, 45, 30, 218000),
        )
    ]


def test_rds_prefix_is_detected_and_nothing_is_rejected() -> None:
    path = LOGS / "elastic-integrations-test-postgresql-aws.log"
    detected = detect_file(path)
    assert detected.format == "pgaudit-stderr"
    assert detected.log_line_prefix == "%t:%r:%u@%d:[%p]:"
    events, rejects = _parse(path.name)
    # A checkpoint, an error without its statement and a log_statement line: valid
    # records, none an audit event.
    assert rejects == {} and events.is_empty()
