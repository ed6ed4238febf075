"""Sanity checks of the real PostgreSQL 15 + pgaudit log GENERATOR (tests/realdb).

Raw-text checks only: they make sure the workload produced the facts the parser tests rely
on.  The parser itself is tested elsewhere.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from paths import DATA
from realdb import pg_workload as w
from realdb.pg_workload import PgLogs, PhaseLogs

pytestmark = pytest.mark.postgres

CSV_COLUMNS = 26  # PostgreSQL 14+ csvlog
MSG, SQLSTATE = 13, 12  # csvlog column indexes
TS_MS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC"
TS_S = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
LEVEL = r"(?:LOG|ERROR|FATAL|DETAIL|STATEMENT|HINT|CONTEXT|WARNING):  "
#: what every (non-continuation) stderr line of a phase starts with
STDERR_LINE = {
    "default": re.compile(rf"{TS_MS} \[\d+\] {LEVEL}"),
    "debian": re.compile(rf"{TS_MS} \[\d+\] (?:\S+@\S+ )?{LEVEL}"),
    "pgbadger": re.compile(rf"{TS_S} \[\d+\]: user=[^,]*,db=[^,]*,app=[^,]*,client=\S* {LEVEL}"),
}


def csv_records(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def json_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def audit_messages(phase: PhaseLogs) -> list[str]:
    return [r[MSG] for r in csv_records(phase.csv) if r[MSG].startswith("AUDIT: ")]


@pytest.fixture(params=[name for name, _ in w.PHASES])
def phase(request: pytest.FixtureRequest, pg_logs: PgLogs) -> PhaseLogs:
    return pg_logs.phase(request.param)


def test_versions_and_phases(pg_logs: PgLogs) -> None:
    assert pg_logs.server_version.startswith("15.")
    assert pg_logs.pgaudit_version == "1.7"
    assert [(p.name, p.prefix) for p in pg_logs.phases] == list(w.PHASES)
    files = [f for p in pg_logs.phases for f in p.files.all()]
    assert len(set(files)) == 9
    assert all(f.stat().st_size > 1000 for f in files)
    assert [f.suffix for f in pg_logs.phases[0].files.all()] == [".log", ".csv", ".json"]
    assert pg_logs.phase("default").settings["log_destination"] == "stderr,csvlog,jsonlog"


def test_stderr_lines_have_the_phase_prefix(phase: PhaseLogs) -> None:
    lines = phase.stderr.read_text(encoding="utf-8").splitlines()
    pattern = STDERR_LINE[phase.name]
    bad = [ln for ln in lines if not ln.startswith("\t") and not pattern.match(ln)]
    assert not bad
    # continuation lines of multi-line messages are indented with a tab
    assert any(ln.startswith("\t  FROM citizens") for ln in lines)


def test_csv_and_json_are_well_formed_and_agree(phase: PhaseLogs) -> None:
    rows = csv_records(phase.csv)
    assert {len(r) for r in rows} == {CSV_COLUMNS}
    docs = json_records(phase.json)
    assert all({"timestamp", "pid", "error_severity", "message"} <= d.keys() for d in docs)
    # the three formats hold the same events
    csv_audit = [r[MSG] for r in rows if r[MSG].startswith("AUDIT: ")]
    json_audit = [d["message"] for d in docs if d["message"].startswith("AUDIT: ")]
    stderr_audit = phase.stderr.read_text(encoding="utf-8").count("LOG:  AUDIT: ")
    assert sorted(csv_audit) == sorted(json_audit)
    assert stderr_audit == len(csv_audit) > 50
    assert len(rows) == len(docs)
    # no reload messages: the prefix was changed in a file of its own
    assert not any("log_line_prefix" in r[MSG] for r in rows)


def test_rows_on_and_off(phase: PhaseLogs) -> None:
    msgs = [m for m in audit_messages(phase) if m.startswith("AUDIT: SESSION") and w.SQL_ROWS in m]
    assert len(msgs) == 2  # select_rows_on, then select_rows_off
    assert re.search(r",<not logged>,\d+$", msgs[0])
    assert msgs[1].endswith(",<not logged>")


def test_copy_rows(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    assert f"AUDIT: SESSION,2,1,READ,COPY,,,{w.SQL_COPY_TABLE},<not logged>,0" in msgs
    n = len(w.CITIZENS) + [name for name, _ in w.PHASES].index(phase.name)  # + 1 per write step
    assert f'AUDIT: SESSION,1,1,READ,SELECT,,,"{w.SQL_COPY_QUERY}",<not logged>,{n}' in msgs
    assert f'AUDIT: SESSION,1,2,READ,COPY,,,"{w.SQL_COPY_QUERY}",<not logged>,0' in msgs


def test_cursor_fetch_rows_zero(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    declare = "DECLARE c CURSOR FOR SELECT * FROM citizens"
    assert f"AUDIT: SESSION,3,1,READ,DECLARE CURSOR,,,{declare},<not logged>,0" in msgs
    assert msgs.count("AUDIT: SESSION,4,1,MISC,FETCH,,,FETCH 50 FROM c,<not logged>,0") == 1
    assert msgs.count("AUDIT: SESSION,5,1,MISC,FETCH,,,FETCH 50 FROM c,<not logged>,0") == 1


def test_log_relation_one_line_per_relation(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    head = "AUDIT: SESSION,2,1,READ,SELECT,TABLE,public.citizens,"
    selfjoin = [m for m in msgs if m.startswith(head) and "c2.id > c1.id" in m]
    assert len(selfjoin) == 2
    join = [m for m in msgs if m.startswith("AUDIT: SESSION") and "t.checkin >=" in m]
    assert {m.split(",")[6] for m in join} == {"public.citizens", "public.travel_records"}
    once = "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.travel_records,<previously logged>"
    assert any(m.startswith(once + ",<previously logged>,") for m in msgs)


def test_parameters_and_literals(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    text = "\n".join(msgs)
    for nid in w.PARAM_LOOKUP_IDS:
        assert f"WHERE national_id = $1,{nid},1" in text
    assert f'"""{{{",".join(w.ARRAY_LOOKUP_IDS)}}}""",3' in text
    for nid in w.LITERAL_LOOKUP_IDS[:2]:
        assert f"WHERE national_id = '{nid}'\",<not logged>,1" in text
    assert f"WHERE national_id = '{w.LITERAL_LOOKUP_IDS[2]}'\",<not logged>,0" in text


def test_multi_statement_query_string(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    assert f"AUDIT: SESSION,8,1,READ,SELECT,,,{w.SQL_MULTI},<not logged>,1" in msgs
    assert f"AUDIT: SESSION,9,1,READ,SELECT,,,{w.SQL_MULTI},<not logged>,1" in msgs


def test_multiline_and_quotes_in_csv_message(phase: PhaseLogs) -> None:
    quoted = w.SQL_MULTILINE.replace('"', '""')
    assert f'AUDIT: SESSION,10,1,READ,SELECT,,,"{quoted}",<not logged>,5' in audit_messages(phase)
    raw = phase.csv.read_text(encoding="utf-8")
    assert 'AS """"Full Name"""",\n' in raw  # pgaudit's CSV quoting, then csvlog's


def test_pages_aggregate_writes(phase: PhaseLogs) -> None:
    msgs = audit_messages(phase)
    for k in w.PAGE_OFFSETS:
        assert any(w.SQL_PAGE.format(k) + ",<not logged>,20" in m for m in msgs)
    # the failed statements before it did not use up statement ids
    assert any(m.startswith("AUDIT: SESSION,11,1,READ,SELECT,,,") and w.SQL_AGG in m for m in msgs)
    assert sum(m.startswith("AUDIT: SESSION") and ",WRITE," in m for m in msgs) == 3
    assert any(",DDL,CREATE TABLE AS,TABLE,public.export_" in m for m in msgs)


def test_object_audit(phase: PhaseLogs) -> None:
    assert any(
        m.startswith("AUDIT: OBJECT,") and ",TABLE,public.citizens," in m
        for m in audit_messages(phase)
    )


def test_errors_and_failed_login(phase: PhaseLogs) -> None:
    rows = csv_records(phase.csv)
    states = {(r[11], r[SQLSTATE]) for r in rows}
    assert {("ERROR", "42P01"), ("ERROR", "42501"), ("FATAL", "28P01")} <= states
    docs = json_records(phase.json)
    assert any(d.get("state_code") == "42P01" and "citizen_archive" in d["statement"] for d in docs)
    assert 'password authentication failed for user "officer2"' in phase.stderr.read_text()


def test_connections_from_loopback(phase: PhaseLogs) -> None:
    text = phase.stderr.read_text(encoding="utf-8")
    received = re.findall(r"connection received: host=127\.0\.0\.1 port=\d+", text)
    assert len(received) == len(w.SESSIONS) + 1  # + officer2's failed attempt
    assert "disconnection: session time: " in text


def test_every_logged_id_has_a_valid_check_digit(phase: PhaseLogs) -> None:
    ids = set(re.findall(r"(?<!\d)\d{17}[\dX](?![\dX])", "\n".join(audit_messages(phase))))
    assert len(ids) >= 8
    assert all(w.is_valid_national_id(i) for i in ids)


SNAPSHOT = DATA / "real" / "pg"


def test_committed_snapshot_matches_the_workload(phase: PhaseLogs) -> None:
    """AUDIT payloads are deterministic: regenerate the snapshot when the workload changes.

    (``.venv/bin/python -m tests.realdb.pg_workload --snapshot tests/data/real/pg``)
    """
    fresh = audit_messages(phase)
    committed = [
        r[MSG]
        for r in csv_records(SNAPSHOT / f"{phase.name}-prefix.csv")
        if r[MSG].startswith("AUDIT: ")
    ]
    assert committed == fresh
