"""The three PostgreSQL parsers on real pgaudit logs (PostgreSQL 15 + pgaudit 1.7).

Every fact of the ingestion issue is checked in all three log formats and all three
prefixes, on the committed snapshot and on logs a fresh server writes during the run.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from detector.commands.parse import parse_files
from detector.config import Config
from paths import DATA
from streams.detect import detect_file

SNAPSHOT = DATA / "real" / "pg"
PHASES = {"default": 0, "debian": 1, "pgbadger": 2}
FORMATS = {"log": "pgaudit-stderr", "csv": "pgaudit-csv", "json": "pgaudit-json"}


def _parse(path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    events, summary = parse_files([path], Config(), out=None, dead_letter=None)
    return events, summary.rejects


def _statement(events: pl.DataFrame, text_start: str) -> pl.DataFrame:
    return events.filter(
        (pl.col("event_kind") == "statement") & pl.col("statement").str.starts_with(text_start)
    )


def _check_phase(path: Path, phase: int) -> None:
    events, rejects = _parse(path)
    fmt = FORMATS[path.suffix.lstrip(".")]
    assert detect_file(path).format == fmt
    assert rejects == {}, f"{path.name}: rejected {rejects}"
    assert set(events["source_format"]) == {fmt}

    kinds = events["event_kind"].value_counts().sort("event_kind")
    assert dict(kinds.iter_rows()) == {
        "connect": 9,
        "disconnect": 9,
        "failed_connect": 1,
        "statement": 34 + 2,  # 34 audited statements + 2 that failed before execution
    }
    # Session attributes come from the connection lines where the prefix lacks them.
    assert events["user"].null_count() == 0
    assert set(events["client_ip"]) == {"127.0.0.1"}
    # (a failed login has no "connection authorized" line to name its database)
    in_session = events.filter(pl.col("event_kind") != "failed_connect")
    assert set(in_session["database"]) == {"records"}
    assert events["event_time"].dtype == pl.Datetime("us", "UTC")

    # log_rows=on: counted; off: absent, so not_logged, never zero.
    first = _statement(events, "SELECT id, national_id, full_name FROM citizens WHERE birth_date")
    assert first.select("rows", "rows_status").rows() == [(36, "counted"), (None, "not_logged")]
    assert first["tables"].to_list() == [["public.citizens"], ["public.citizens"]]

    # log_relation=on: one event per statement, relations merged, rows counted once.
    join = _statement(events, "SELECT c.national_id, c.full_name, t.hotel")
    assert join.height == 2  # plain log_relation, and with log_statement_once
    assert [sorted(t) for t in join["tables"]] == [["public.citizens", "public.travel_records"]] * 2
    assert join["rows"].to_list() == [92 + phase] * 2
    self_join = _statement(events, "SELECT c1.")
    assert self_join.select("tables", "rows").rows() == [(["public.citizens"], 25)]

    # COPY (SELECT ...) TO: one COPY event carrying the SELECT's rows.
    copy_query = _statement(events, "COPY (SELECT national_id, full_name FROM citizens)")
    assert copy_query.select("command_tag", "rows", "rows_status").rows() == [
        ("COPY", 200 + phase, "counted")
    ]
    # COPY table TO (pg_dump's form) and cursor FETCH: rows unknown, not zero.
    copy_table = _statement(events, "COPY citizens TO STDOUT")
    assert copy_table.select("command_tag", "rows", "rows_status").rows() == [
        ("COPY", None, "unknown")
    ]
    fetch = _statement(events, "FETCH 50 FROM c")
    assert fetch.select("rows", "rows_status").rows() == [(None, "unknown")] * 2

    # log_parameter=on: the looked-up values are in parameters, not in the text.
    bound = _statement(events, "SELECT * FROM citizens WHERE national_id = $1")
    assert bound["parameters"].to_list() == [["440106195607075614"]]
    arr = _statement(events, "SELECT id, full_name FROM citizens WHERE national_id = ANY($1)")
    assert arr["parameters"].to_list() == [
        ["{11010119860211224X,510107198509129306,110101199001275363}"]
    ]
    two = _statement(events, "SELECT id, national_id FROM citizens WHERE full_name = $1")
    assert two["parameters"].to_list() == [["张敏", "1991-11-12"]]
    assert (
        _statement(events, "SELECT full_name, phone FROM citizens WHERE")["parameters"].null_count()
        == 4
    )

    # A multi-statement query string: one event per statement, each with the whole string.
    multi = _statement(events, "SELECT count(*) FROM citizens; SELECT count(*) FROM travel_records")
    assert multi.select("statement_id", "rows").rows() == [(8, 1), (9, 1)]

    # Multi-line statement with quoted identifiers and commas survives every quoting layer.
    multiline = _statement(events, 'SELECT full_name AS "Full Name"')
    assert multiline.height == 1
    text = multiline["statement"][0]
    assert "\n" in text and '"Phone, Address"' in text and "concat_ws(', ', phone, address)" in text

    # CREATE TABLE AS: the DDL command, with the SELECT's rows and both tables.
    ctas = _statement(events, "CREATE TABLE export_")
    assert ctas["command_tag"].to_list() == ["CREATE TABLE AS"]
    assert ctas["rows"].to_list() == [201 + phase]
    assert sorted(ctas["tables"][0]) == ["public.citizens", f"public.export_{phase}"]

    # Failures: the statement that never ran, and the failed login.
    errors = events.filter(
        pl.col("error_code").is_not_null() & (pl.col("event_kind") == "statement")
    )
    expected_codes = ["ERROR", "ERROR"] if fmt == "pgaudit-stderr" else ["42P01", "42501"]
    assert errors["error_code"].to_list() == expected_codes
    assert errors["statement"][0].startswith("SELECT * FROM citizen_archive")
    failed = events.filter(pl.col("event_kind") == "failed_connect")
    assert failed["user"].to_list() == ["officer2"]
    assert failed["error_code"][0] in ({"FATAL"} if fmt == "pgaudit-stderr" else {"28P01"})

    # Every event points back at its line.
    assert events["raw_ref"].str.starts_with(str(path)).all()


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("suffix", list(FORMATS))
def test_snapshot(phase: str, suffix: str) -> None:
    _check_phase(SNAPSHOT / f"{phase}-prefix.{suffix}", PHASES[phase])


def test_fresh_server_logs(pg_logs) -> None:  # type: ignore[no-untyped-def]
    for phase in pg_logs.phases:
        for path in (phase.files.stderr, phase.files.csv, phase.files.json):
            _check_phase(path, PHASES[phase.name])


def test_three_formats_agree() -> None:
    """The same server wrote the three files at once: they must give the same events."""
    columns = ["user", "event_kind", "statement_id", "command_tag", "rows", "rows_status",
               "tables", "parameters", "client_ip", "client_port", "session_id",
               "statement"]  # fmt: skip
    frames = []
    for suffix in FORMATS:
        events, _ = _parse(SNAPSHOT / f"debian-prefix.{suffix}")
        frames.append(
            events.with_columns(pl.col("event_time").dt.truncate("1s"))
            .select("event_time", *columns)
            .sort(pl.all())
        )
    stderr, csv, json = frames
    assert csv.equals(json)
    # stderr has no session id or client port in this prefix: compare the rest.
    keep = [c for c in csv.columns if c not in ("session_id", "client_port")]
    assert stderr.select(keep).sort(pl.all()).equals(csv.select(keep).sort(pl.all()))
