"""Tests of the MariaDB server_audit parser on public samples, a committed real log and a
fresh log from a real server (``mariadb_logs``, see ``tests/realdb/mariadb_fixture.py``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.mariadb.audit as mariadb_audit
import streams.mariadb.fields as mariadb_fields
from corpus import CORPUS as TEST_CORPUS
from paths import DATA
from streams.base import ParseResult
from streams.deadletter import REJECT_REASONS, REJECT_SCHEMA
from streams.mariadb.audit import MariaDBAuditParser
from streams.schema import EVENT_SCHEMA

CORPUS = TEST_CORPUS / "mariadb-server_audit"
# The real-server fixture ``mariadb_logs`` is registered by conftest.py.
SNAPSHOT = DATA / "real" / "mariadb" / "server_audit.log"
SNAPSHOT_TZ = "Asia/Shanghai"
GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def parse(
    text: str, *, chunk_lines: int | None = None, **options: object
) -> tuple[pl.DataFrame, pl.DataFrame, MariaDBAuditParser]:
    """Feed ``text`` whole or in chunks of ``chunk_lines``, flush; check the contracts."""
    parser = MariaDBAuditParser(**options)  # type: ignore[arg-type]
    lines = physical_lines(text)
    step = chunk_lines or max(len(lines), 1)
    results: list[ParseResult] = []
    for start in range(0, len(lines), step):
        chunk = "".join(lines[start : start + step])
        results.append(parser.feed(chunk, source="t.log", first_line=start + 1))
    results.append(parser.flush())
    for r in results:
        assert r.events.schema == EVENT_SCHEMA
        assert r.rejects.schema == REJECT_SCHEMA
        assert set(r.rejects["reason"]) <= set(REJECT_REASONS)
    events = pl.concat([r.events for r in results])
    rejects = pl.concat([r.rejects for r in results])
    assert sum(r.lines for r in results) == len(lines)
    return events, rejects, parser


def physical_lines(text: str) -> list[str]:
    """Lines as the parser sees them: only "\n" ends a line (not \v, \f, U+2028...)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def line_of(events: pl.DataFrame) -> pl.Expr:
    return pl.col("raw_ref").str.extract(r":(\d+)$").cast(pl.Int64)


def unmask(text: str) -> str:
    """Replace mtr's masks with values: one connection per user, one query id for all."""
    conns: dict[str, str] = {}
    out = []
    for line in text.splitlines():
        f = line.split(",", 8)
        f[0] = "20240101 12:00:00"
        f[4] = conns.setdefault(f[2], str(100 + len(conns))) if f[4] == "ID" else f[4]
        f[5] = "7" if f[5] == "ID" else f[5]
        f[8] = f[8][:-2] + "1" if f[8].endswith(",ID") else f[8]
        out.append(",".join(f))
    return "\n".join(out) + "\n"


def statement(events: pl.DataFrame, text: str) -> dict:
    rows = events.filter(pl.col("statement") == text)
    assert rows.height >= 1, text
    return rows.row(0, named=True)


# --- public samples -----------------------------------------------------------------


def test_ibm_sample_unmasked_file() -> None:
    events, rejects, parser = parse((CORPUS / "ibm-uc-mariadb-sample_audit_log.log").read_text())
    assert rejects.is_empty() and parser.counts["empty"] == 1
    assert events.height == 28  # 27 lines + 1 orphan (READ mysql.proc of the CALL)
    kinds = events["event_kind"].value_counts().sort("event_kind").rows()
    assert kinds == [("connect", 2), ("disconnect", 2), ("statement", 24)]
    first = events.row(0, named=True)
    assert first["event_time"] == datetime(2022, 1, 21, 11, 12, 26, tzinfo=UTC)
    assert first["server"] == "ip-172-31-44-208.ap-south-1.compute.internal"
    assert (first["user"], first["client_ip"], first["session_id"]) == ("root", "localhost", "21")
    # The two READ events of query 515 belong to the first QUERY line with that id.
    sub = events.filter(pl.col("statement_id") == 515)
    assert sub["tables"].to_list() == [["testdb.orders", "testdb.customers"], []]
    assert sub["command_tag"].to_list() == ["SELECT", "CALL"]
    assert sub.row(0, named=True)["statement"].endswith(
        "NAME_CONST('name',_latin1'Marcus' COLLATE 'latin1_swedish_ci'))"
    )
    orphan = events.filter(pl.col("audit_type") == "TABLE").row(0, named=True)
    assert (orphan["statement_id"], orphan["tables"], orphan["statement"]) == (
        514,
        ["mysql.proc"],
        None,
    )
    assert statement(events, "select * From connector_Details")["error_code"] == "1146"
    assert statement(events, "show tables")["command_class"] == "READ"
    create = events.filter(pl.col("statement_id") == 46).row(0, named=True)
    assert create["tables"] == ["mariadb.connector_details"]
    assert create["command_class"] == "DDL"
    statements = events.filter(pl.col("event_kind") == "statement")
    assert statements["rows"].null_count() == statements.height
    assert set(statements["rows_status"]) == {"not_logged"}


def test_rds_sample_multiline_and_escaped_quotes() -> None:
    text = (CORPUS / "ibm-uc-mariadb-aws-rds-sample_audit_log.log").read_text()
    events, rejects, _ = parse(text, timezone="UTC")
    assert rejects.is_empty()
    assert events.height == 13  # 13 QUERY lines, one of them logged twice
    assert set(events["client_ip"]) == {"136.185.152.250"}
    insert = events.filter(pl.col("statement_id") == 7557).row(0, named=True)
    assert (
        "(001, 'Monika', 'Arora', 100000, '14-02-20 09.00.00', 'HR'),\n\t\t(002"
        in insert["statement"]
    )
    assert insert["command_class"] == "WRITE"
    assert statement(
        events, "SELECT \n    fruits\nFROM \n    Works\nGROUP BY \n    fruits\nLIMIT 0, 1000"
    )["command_tag"] == ("SELECT")
    last = events.row(-1, named=True)["statement"]
    assert "as 'Number of Workers' FROM Worker" in last


def test_mtr_masked_lines_are_rejected_not_raised() -> None:
    for name in (
        "mariadb-server_audit-result.txt",
        "mariadb-server_audit_port-result-excerpt.txt",
        "mariadb-server_audit_timestamp-result.txt",
        "mariadb-MDEV-37434-server_audit_query_id-result.txt",
    ):
        text = (CORPUS / name).read_text()
        events, rejects, _ = parse(text)
        assert events.is_empty(), name
        assert rejects.height == len(text.splitlines()), name
        assert set(rejects["reason"]) == {"bad_timestamp"}, name


def test_mtr_result_unmasked() -> None:
    text = unmask((CORPUS / "mariadb-server_audit-result.txt").read_text())
    events, rejects, parser = parse(text)
    assert rejects.is_empty()
    assert parser.counts == {"event": 84, "table_merged": 54, "table_orphaned": 0,
                             "rejected": 0, "empty": 0}  # fmt: skip
    failed = events.filter(pl.col("event_kind") == "failed_connect").row(0, named=True)
    assert (failed["user"], failed["command_tag"], failed["error_code"]) == (
        "no_such_user",
        "FAILED_CONNECT",
        "1",
    )
    rename = statement(events, "alter table t1 rename renamed_t1")
    assert rename["tables"] == [
        "test.t1",
        "mysql.table_stats",
        "mysql.column_stats",
        "mysql.index_stats",
        "test.renamed_t1",
    ]
    assert statement(events, "drop database sa_db")["tables"] == ["mysql.proc", "mysql.event"]
    assert statement(events, "set global server_audit_incl_users='odin, root, dva, tri'")
    assert statement(events, "CREATE USER u1 IDENTIFIED BY *****")["command_class"] == "ROLE"
    assert statement(events, "SET PASSWORD FOR u1 = PASSWORD(*****)")["command_class"] == "ROLE"
    assert statement(events, "set global server_audit_logging=on")["command_class"] == "MISC_SET"
    for text_ in ("(select 2)", "/*! select 2*/", "/*comment*/ select 2"):
        assert statement(events, text_)["command_tag"] == "SELECT"
    # Cut by server_audit_query_log_limit: the quote is closed, the SQL is not.
    assert statement(events, "select 'A', ")["command_class"] == "READ"


def test_mtr_port_excerpt_host_port_proxy_and_orphans() -> None:
    text = unmask((CORPUS / "mariadb-server_audit_port-result-excerpt.txt").read_text())
    events, rejects, parser = parse(text)
    assert rejects.is_empty()
    assert set(events["client_ip"]) == {"localhost"}  # from "localhost:unavailable"
    assert events["client_port"].null_count() == events.height
    assert statement(events, "select 1,\n2,\n# comment\n3")["command_tag"] == "SELECT"
    proxy = events.filter(pl.col("command_tag") == "PROXY_CONNECT").row(0, named=True)
    assert (proxy["event_kind"], proxy["user"], proxy["statement"]) == (
        "connect",
        "plug",
        "`plug_dest`@`%`",
    )
    # user1's CREATE/WRITE of sa_db.t1 have no QUERY line: one orphan row at flush.
    orphan = events.filter(pl.col("audit_type") == "TABLE").row(0, named=True)
    assert (orphan["user"], orphan["tables"], orphan["command_tag"]) == (
        "user1",
        ["sa_db.t1"],
        "CREATE",
    )
    assert orphan["command_class"] == "DDL" and parser.counts["table_orphaned"] == 2


def test_mdev_37434_substatements_keep_their_query_ids() -> None:
    text = (CORPUS / "mariadb-MDEV-37434-server_audit_query_id-result.txt").read_text()
    events, rejects, _ = parse(text.replace("TIMESTAMP,HOSTNAME", "20240101 00:00:00,db1"))
    assert rejects.is_empty() and events.height == 28
    assert events["statement_id"].to_list()[8:11] == [48, 47, 46]
    assert events.row(2, named=True)["statement"].startswith("CREATE TABLE source (\nid bigint")
    assert statement(events, "CALL test_procedure(NULL)")["command_class"] == "FUNCTION"


# --- timestamps, hosts, rejects, chunking -------------------------------------------

LINE = "{ts},db1,alice,{host},5,9,QUERY,records,'SELECT 1',0"


@pytest.mark.parametrize(
    ("ts", "zone", "expected"),
    [
        ("20240131 18:00:01", "Asia/Shanghai", datetime(2024, 1, 31, 10, 0, 1, tzinfo=UTC)),
        ("2024-01-31 18:00:01", "Asia/Shanghai", datetime(2024, 1, 31, 10, 0, 1, tzinfo=UTC)),
        ("2024-01-31T18:00:01.250", "UTC", datetime(2024, 1, 31, 18, 0, 1, 250000, tzinfo=UTC)),
        ("20231207T13:14:28.000000+0100", "Asia/Shanghai",
         datetime(2023, 12, 7, 12, 14, 28, tzinfo=UTC)),
        ("2023-12-07 13:14:28-05:30", "UTC", datetime(2023, 12, 7, 18, 44, 28, tzinfo=UTC)),
        # Ambiguous (DST ends): the earlier instant.
        ("20231029 02:30:00", "Europe/Berlin", datetime(2023, 10, 29, 0, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_timestamp_formats(ts: str, zone: str, expected: datetime) -> None:
    events, rejects, _ = parse(LINE.format(ts=ts, host="10.1.2.3") + "\n", timezone=zone)
    assert rejects.is_empty()
    assert events["event_time"].to_list() == [expected]


@pytest.mark.parametrize(
    "ts", ["TIME", "CUSTOM-DATE 2024-01-31", "18:00:01", "20231332 10:00:00", "20230326 02:30:00"]
)
def test_bad_timestamps(ts: str) -> None:
    events, rejects, _ = parse(LINE.format(ts=ts, host="h") + "\n", timezone="Europe/Berlin")
    assert events.is_empty() and rejects["reason"].to_list() == ["bad_timestamp"]


@pytest.mark.parametrize(
    ("host", "ip", "port"),
    [("10.1.2.3", "10.1.2.3", None), ("10.1.2.3:55012", "10.1.2.3", 55012),
     ("localhost:unavailable", "localhost", None), ("[::1]:3306", "::1", 3306),
     ("::1", "::1", None), ("", None, None)],
)  # fmt: skip
def test_client_host_and_port(host: str, ip: str | None, port: int | None) -> None:
    events, _, _ = parse(LINE.format(ts="20240101 00:00:00", host=host) + "\n")
    assert events.select("client_ip", "client_port").row(0) == (ip, port)


def test_rejects_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mariadb_audit, "MAX_RECORD_CHARS", 200)
    monkeypatch.setattr(mariadb_fields, "MAX_RECORD_CHARS", 200)
    ok = "20240101 00:00:00,db1,bob,10.0.0.1,3,4,QUERY,db,'select 1',0"
    lines = [
        ok,
        "",
        "   ",
        "garbage",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,5,QUERY,db,'select * from t where a = \\'x",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,6,QUERY,db,'select \\',0",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,7,QUERY,db,select 1,0",
        "20240101 00:00:00,db1,bob,10.0.0.1,x,8,QUERY,db,'select 1',0",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,9,FROBNICATE,db,t1,0",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,10,QUERY,db,'select 1',",
        ok.replace("select 1", "x" * 300),
        "TIME,HOSTNAME,root,localhost,ID,ID,QUERY,test,'select 1',0",
        "20240101 00:00:00,db1,bob,10.0.0.1,3,11,QUERY,db,'caf\udcc3',0",
        ok.replace("select 1", "select '" + "数" * 100 + "'"),  # > 200 bytes, < 200 chars
    ]
    events, rejects, parser = parse("\n".join(lines) + "\n")
    assert events["raw_ref"].to_list() == ["t.log:1", "t.log:14"]
    assert rejects.select("line", "reason").rows() == [
        (4, "wrong_field_count"),
        (5, "truncated"),
        (6, "truncated"),
        (7, "bad_audit_payload"),
        (8, "bad_audit_payload"),
        (9, "bad_audit_payload"),
        (10, "truncated"),  # cut before the retcode
        (11, "too_long"),
        (12, "bad_timestamp"),
        (13, "not_utf8"),
    ]
    assert rejects.row(0, named=True)["raw"] == "garbage"
    assert parser.counts["empty"] == 2


def test_table_events_wait_for_their_statement_across_chunks() -> None:
    text = SNAPSHOT.read_text()
    whole, _, _ = parse(text, timezone=SNAPSHOT_TZ)
    for size in (1, 2, 7):
        chunked, rejects, parser = parse(text, chunk_lines=size, timezone=SNAPSHOT_TZ)
        assert rejects.is_empty() and parser.counts["table_orphaned"] == 0
        assert chunked.sort(line_of(chunked)).equals(whole.sort(line_of(whole)))


def test_orphan_table_events_are_released() -> None:
    ts = "20240101 00:00:00,db1,eve,10.0.0.9"
    tables_only = [f"{ts},8,20,READ,records,citizens,", f"{ts},8,21,READ,records,travel_records,"]
    # Closed by the connection's DISCONNECT in a later chunk.
    parser = MariaDBAuditParser()
    first = parser.feed("\n".join(tables_only) + "\n", source="a", first_line=1)
    assert first.events.is_empty()
    second = parser.feed(f"{ts},8,0,DISCONNECT,records,,0\n", source="a", first_line=3)
    assert second.events["audit_type"].to_list() == ["TABLE", "TABLE", None]
    assert second.events["tables"].to_list() == [["records.citizens"],
                                                 ["records.travel_records"], []]  # fmt: skip
    assert second.events["raw_ref"].to_list() == ["a:1", "a:2", "a:3"]
    assert parser.flush().events.is_empty()
    # Released by age, or by flush.
    aged, _, _ = parse("\n".join(tables_only * 3) + "\n", max_pending_lines=2, chunk_lines=2)
    assert aged.height == 6
    flushed, _, parser = parse("\n".join(tables_only) + "\n")
    assert flushed.height == 2 and parser.counts["table_orphaned"] == 2


def test_record_start_matches_record_lines_only() -> None:
    start = MariaDBAuditParser.record_start
    for line in SNAPSHOT.read_text().splitlines():
        assert start.match(line), line
    assert start.match("20231207T13:14:28.000000+0100,mdbe106,root,localhost,4,0,CONNECT,,,0")
    assert not start.match("20240101 00:00:00 garbage")
    assert not start.match("TIME,HOSTNAME,root,localhost,ID,ID,QUERY,test,'x',0")
    text = "x\n20240101 00:00:00,h,u,c,1,2,QUERY,db,'s',0\n"
    assert [m.start() for m in start.finditer(text)] == [2]


# --- the parser never raises --------------------------------------------------------

_FIELD = st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=12)
_VALID = st.builds(
    lambda conn, qid, op, stmt: (
        f"20240101 10:00:00,h,u,1.2.3.4,{conn},{qid},{op},db,"
        + (f"'{stmt}',0" if op == "QUERY" else "t1,")
    ),
    st.integers(0, 5), st.integers(0, 5), st.sampled_from(["QUERY", "READ", "WRITE"]),
    st.text(alphabet="ab ,'\\", max_size=10).map(lambda s: s.replace("\\", "\\\\")
                                                  .replace("'", "\\'")),
)  # fmt: skip
_LINE = st.one_of(
    _VALID,
    _VALID.map(lambda s: s[: len(s) // 2]),
    st.lists(_FIELD, min_size=1, max_size=12).map(",".join),
    st.text(max_size=40),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_LINE, max_size=25), chunk=st.integers(1, 6))
def test_arbitrary_input_never_raises(lines: list[str], chunk: int) -> None:
    text = "\n".join(lines) + ("\n" if lines else "")
    events, rejects, parser = parse(text, chunk_lines=chunk)
    n = len(physical_lines(text))
    c = parser.counts
    assert c["event"] + c["table_merged"] + c["table_orphaned"] + c["rejected"] + c["empty"] == n
    assert rejects.height == c["rejected"]
    assert rejects["line"].is_unique().all()
    from_lines = events.filter(pl.col("audit_type").fill_null("") != "TABLE")
    assert from_lines.height == c["event"]
    assert not set(events.select(line_of(events)).to_series()) & set(rejects["line"])


def test_huge_line_is_rejected_not_parsed() -> None:
    huge = "20240101 00:00:00,h,u,c,1,2,QUERY,db,'" + "x" * (8 * 1024 * 1024 + 10) + "',0"
    events, rejects, _ = parse(huge + "\nnot a record\n")
    assert events.is_empty() and rejects["reason"].to_list() == ["too_long", "wrong_field_count"]


# --- real server output -------------------------------------------------------------


def valid_national_id(nid: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", nid):
        return False
    total = sum(int(d) * w for d, w in zip(nid[:17], GB11643_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == nid[17]


def check_records_workload(events: pl.DataFrame, rejects: pl.DataFrame) -> None:
    """What any run of tests/realdb/mariadb_workload.py must produce."""
    assert rejects.is_empty()
    users = set(events.filter(pl.col("client_ip") == "127.0.0.1")["user"])
    assert users == {"etl_batch", "officer1", "analyst1"}
    assert set(events.filter(pl.col("user") == "root")["client_ip"]) == {"localhost"}
    failed = events.filter(pl.col("event_kind") == "failed_connect").row(0, named=True)
    assert (failed["user"], failed["error_code"]) == ("officer1", "1045")
    st_ = events.filter(pl.col("event_kind") == "statement")
    assert set(st_["audit_type"]) == {"QUERY"}
    lookups = st_.filter(pl.col("statement").str.starts_with("SELECT * FROM citizens WHERE nat"))
    ids = lookups["statement"].str.extract(r"national_id = '(\w+)'").to_list()
    assert len(ids) == 5 and all(valid_national_id(i) for i in ids)
    assert set(lookups["tables"].list.join(",")) == {"records.citizens"}
    join = st_.filter(pl.col("statement").str.contains(" JOIN travel_records ")).row(0, named=True)
    assert join["tables"] == ["records.citizens", "records.travel_records"]
    outfile = st_.filter(pl.col("statement").str.contains("INTO OUTFILE")).row(0, named=True)
    assert (outfile["user"], outfile["command_tag"], outfile["tables"]) == (
        "analyst1",
        "SELECT",
        ["records.citizens"],
    )
    assert statement(st_, "SELECT id, phone FROM citizens WHERE full_name = 'O\\'Brien Sean'")
    assert statement(
        st_, "SELECT id FROM citizens WHERE address = 'It''s Lane 5' OR full_name = \"It''s\""
    )
    grouped = "SELECT LEFT(national_id, 6) AS region,\n\tCOUNT(*) AS n\nFROM citizens\n"
    assert st_.filter(pl.col("statement").str.starts_with(grouped)).height == 1
    missing = statement(st_, "SELECT * FROM passports WHERE id = 1")
    assert (missing["error_code"], missing["tables"]) == ("1146", [])
    bulk = st_.filter(pl.col("statement").str.starts_with("INSERT INTO citizens (id,"))
    bulk_sql = bulk["statement"].item()
    # Cut at server_audit_query_log_limit (1024) characters of the *escaped* text.
    assert len(bulk_sql) + bulk_sql.count("'") + bulk_sql.count("\\") == 1024
    assert st_.filter(pl.col("command_tag") == "UPDATE")["tables"].to_list() == [
        ["records.citizens"]
    ]
    escaped = st_.filter(pl.col("statement").str.contains("O\\\\'Brien Sean', '138")).row(0)
    assert "'It\\'s Lane 5\tC:\\\\archive'" in escaped[EVENT_SCHEMA.names().index("statement")]
    pages = st_.filter(pl.col("statement").str.contains("LIMIT 20 OFFSET"))
    assert pages["user"].to_list() == ["analyst1"] * 3
    assert set(st_.filter(pl.col("statement") == "SET NAMES utf8mb4")["command_class"]) == {
        "MISC_SET"
    }


def test_committed_snapshot() -> None:
    events, rejects, _ = parse(SNAPSHOT.read_text(), timezone=SNAPSHOT_TZ)
    check_records_workload(events, rejects)
    assert events["event_time"].min() < events["event_time"].max() or events.height > 0


def test_fresh_log_from_real_server(mariadb_logs: Path) -> None:
    facts = json.loads(mariadb_logs.with_suffix(".json").read_text())
    events, rejects, _ = parse(mariadb_logs.read_text(), timezone=facts["timezone"])
    check_records_workload(events, rejects)
    started, stopped = (datetime.fromisoformat(facts[k]) for k in ("started", "stopped"))
    # Local time (Asia/Shanghai) converted to UTC; the log has whole seconds.
    assert started.replace(microsecond=0) <= events["event_time"].min()
    assert events["event_time"].max() <= stopped
    for nid in facts["lookups"]:
        assert events.filter(pl.col("statement").str.contains(nid, literal=True)).height >= 1
    assert events.filter(pl.col("statement").str.contains(facts["outfile"], literal=True)).height
