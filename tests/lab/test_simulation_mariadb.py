"""The simulator on a real MariaDB + server_audit: the same plan as on PostgreSQL, translated.

Unit tests (no server): every statement any plan can hold translates to MariaDB, and
PostgreSQL-only syntax is refused; the server_audit time warp maps lines to steps by their
position in the file.  Server tests (``mariadb`` marker): one small run (8 users, 3 days,
2,000 citizens, scenarios at 5 % size; about 5 s) whose labels must match what the server
logged, and one run against an already running server given by a DSN.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import random
import re
from pathlib import Path

import polars as pl
import pytest

from detector.commands.parse import parse_files
from detector.config import Config, load_config
from detector.lab.simulation.errors import DialectError
from detector.lab.simulation.mysql_dialect import logged_sql, to_mysql, translate
from detector.lab.simulation.org import build_org
from detector.lab.simulation.outputs import SimulationResult
from detector.lab.simulation.plan import Plan, build_plan
from detector.lab.simulation.queries import TEMPLATES, Dataset
from detector.lab.simulation.scenarios import default_scenarios
from detector.lab.simulation.sessions import Statement, from_ms
from detector.lab.simulation.simulate import simulate
from detector.lab.simulation.timewarp import Timeline, warp_audit
from detector.lab.simulation.verify import label_coverage, mismatches
from detector.replay import replay_files

AUDIT_TS = re.compile(rb"^\d{8} \d\d:\d\d:\d\d", re.MULTILINE)


# ----------------------------------------------------------------- dialect (no server)


def _scenario_sets() -> list:
    sets = [default_scenarios]
    try:  # the evaluation campaign, where present
        from detector.lab.simulation.campaign import campaign_scenarios
    except ImportError:
        return sets
    return [*sets, campaign_scenarios]


@pytest.mark.parametrize("scenarios", _scenario_sets())
def test_every_planned_statement_translates(scenarios) -> None:
    """A week (the DBA's index on day 1, VACUUM on Friday), every scenario kind."""
    org = build_org(users=12, days=7, seed=3, citizens=600)
    plan = build_plan(org, scenarios(org, 0.05))
    kinds = {lab["kind"] for lab in plan.labels()}
    assert {"smash_and_grab", "etl_bulk", "backup_dump", "enumeration"} <= kinds
    texts = set()
    for session in plan.sessions:
        for st in session.statements:
            _, params = translate(st)  # raises DialectError on anything untranslated
            texts.add(logged_sql(st))
            assert "%s" not in logged_sql(st) or params is None
    assert any(t.startswith("INSERT INTO hotel_stays") for t in texts)
    assert "ANALYZE TABLE hotel_stays" in texts


def test_every_template_translates() -> None:
    data = Dataset.build(citizens=50, seed=1, start=dt.date(2024, 3, 4), days=2)
    for name, template in TEMPLATES.items():
        sql, params = template(random.Random(name), data)
        out, _ = to_mysql(sql, params)
        assert "pg_" not in out and "date_part" not in out, name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id::text FROM citizens",
        "SELECT * FROM citizens WHERE full_name ILIKE 'wang%'",
        "SELECT full_name || phone FROM citizens",
        "SELECT date_part('epoch', birth_date) FROM citizens",
        "SELECT * FROM pg_roles",
        "COPY citizens TO '/tmp/x.csv'",
        "SELECT DISTINCT ON (phone) phone FROM citizens",
        "UPDATE citizens SET phone = '1' RETURNING id",
        "SET search_path TO records",
    ],
)
def test_postgres_only_syntax_is_refused(sql: str) -> None:
    with pytest.raises(DialectError, match=r"PostgreSQL-only|no MariaDB translation"):
        to_mysql(sql)


def test_copy_from_stdin_becomes_one_insert_of_every_row() -> None:
    rows = (
        (1, "如家酒店(王府井店)", dt.date(2024, 3, 3), 2),
        (2, "O'Hotel", dt.date(2024, 3, 3), 1),
    )
    st = Statement(0, "COPY hotel_stays (citizen_id, hotel, checkin, nights) FROM STDIN", None,
                   "in", rows)  # fmt: skip
    sql, params = translate(st)
    assert params is None
    assert sql == (
        "INSERT INTO hotel_stays (citizen_id, hotel, checkin, nights) VALUES"
        " (1, '如家酒店(王府井店)', '2024-03-03', 2), (2, 'O\\'Hotel', '2024-03-03', 1)"
    )
    with pytest.raises(DialectError):
        translate(Statement(0, st.sql, None, "in", ()))


# ----------------------------------------------------------------- warp (no server)

T0 = 1_764_000_000_000  # a real clock, whole second
S0 = 1_709_542_800_000  # 2024-03-04 09:00 simulated


def _line(ts: bytes, conn: int, op: str, rest: str = ",0") -> bytes:
    return ts + f",vm,officer01,127.0.0.10,{conn},1,{op},records,{rest}\n".encode()


def test_audit_warp_tells_steps_of_one_second_apart_by_position() -> None:
    """Three steps in the same real second, minutes apart in simulated time."""
    tl = Timeline()
    tl.add(T0 + 10, T0 + 12, S0)
    tl.add(T0 + 13, T0 + 20, S0 + 90_000)
    tl.add(T0 + 21, T0 + 21, S0 + 600_000)
    real = b"20251124 16:00:00"  # T0 in UTC
    lines = [
        _line(real, 7, "CONNECT", ",0"),
        _line(real, 7, "READ", "citizens,"),
        _line(real, 7, "QUERY", "'SELECT 1, \\'a,b\\'',0"),
        _line(real, 7, "DISCONNECT", ",0"),
    ]
    data = b"".join(lines)
    ends = [len(lines[0]), len(lines[0] + lines[1] + lines[2]), len(data)]
    out = warp_audit(data, tl, ends)
    assert [ln[:17] for ln in out.splitlines()] == [
        b"20240304 09:00:00", b"20240304 09:01:30", b"20240304 09:01:30", b"20240304 09:10:00",
    ]  # fmt: skip
    assert AUDIT_TS.sub(b"", out) == AUDIT_TS.sub(b"", data) and len(out) == len(data)
    # a server in UTC+8 wrote the same instants 8 hours ahead
    local = data.replace(real, b"20251125 00:00:00")
    assert warp_audit(local, tl, ends, utc_offset_ms=8 * 3_600_000) == out
    with pytest.raises(ValueError, match="default YYYYMMDD"):
        warp_audit(data.replace(real, b"2025-11-24T16:00:00"), tl, ends)


def test_audit_warp_keeps_a_long_statement_duration() -> None:
    tl = Timeline()
    tl.add(T0 + 500, T0 + 2_700, S0)  # a statement running 2.2 s, over three real seconds
    data = _line(b"20251124 16:00:00", 7, "READ", "citizens,") + _line(
        b"20251124 16:00:02", 7, "QUERY", "'SELECT * FROM citizens',0"
    )
    out = warp_audit(data, tl, [len(data)])
    assert [ln[:17] for ln in out.splitlines()] == [b"20240304 09:00:00", b"20240304 09:00:01"]


# ----------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, SimulationResult]:
    from detector.lab.simulation.mariadb_server import MariaDBUnavailableError, find_binaries

    try:
        find_binaries()
    except MariaDBUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    org = build_org(users=8, days=3, seed=5, citizens=2000)
    plan = build_plan(org, default_scenarios(org, scale=0.05))
    return plan, simulate(plan, tmp_path_factory.mktemp("sim"), db="mariadb", keep_raw=True)


@pytest.fixture(scope="module")
def events(run: tuple[Plan, SimulationResult]) -> pl.DataFrame:
    _, result = run
    config = Config(format="mariadb-audit", mariadb_timezone="UTC")
    frame, summary = parse_files(list(result.replay), config, out=None, dead_letter=None)
    assert summary.rejects == {}
    return frame


@pytest.mark.mariadb
def test_every_planned_statement_ran(run, events: pl.DataFrame) -> None:
    plan, result = run
    assert result.record.errors == []
    stmts = events.filter(pl.col("event_kind") == "statement")
    # each session's client also sends SET NAMES after the handshake
    assert stmts.height == plan.statements + len(plan.sessions)
    assert stmts.filter(pl.col("statement") == "SET NAMES utf8mb4").height == len(plan.sessions)
    assert result.server_version.startswith("10.") and result.audit_version


@pytest.mark.mariadb
def test_labels_match_the_log(run, events: pl.DataFrame) -> None:
    """Each labelled statement: logged for the labelled user, from the planned address,
    inside the label's [start, end]."""
    plan, result = run
    assert mismatches(label_coverage(plan.sessions, events, result.labels, logged_sql)) == []
    labels = {(lab["scenario"], lab["user"]): lab for lab in result.labels}
    stmts = events.filter(pl.col("event_kind") == "statement")
    logged = collections.defaultdict(list)
    for user, ip, text, t in stmts.select("user", "client_ip", "statement", "event_time").rows():
        logged[(user, text)].append((ip, t))
    kinds = set()
    for session in plan.sessions:
        for name in session.labels:
            lab = labels[(name, session.user)]
            kinds.add(lab["kind"])
            lo, hi = (dt.datetime.fromisoformat(lab[k]) for k in ("start", "end"))
            assert lo.microsecond == 0  # the log has whole seconds, and so have the starts
            for st in session.statements:
                seen = logged[(session.user, logged_sql(st))]
                assert any(ip == session.client_ip and lo <= t <= hi for ip, t in seen), (
                    name, session.user, logged_sql(st)[:80],
                )  # fmt: skip
    assert {"smash_and_grab", "enumeration", "compromised_account", "etl_bulk"} <= kinds


@pytest.mark.mariadb
def test_client_addresses_and_no_setup_in_the_log(run, events: pl.DataFrame) -> None:
    plan, _ = run
    want = collections.Counter((s.user, s.client_ip) for s in plan.sessions)
    connects = events.filter(pl.col("event_kind") == "connect")
    assert collections.Counter(connects.select("user", "client_ip").rows()) == want
    assert set(events["user"]) == {s.user for s in plan.sessions}  # nothing of the setup


@pytest.mark.mariadb
def test_times_are_simulated_and_in_order(run, events: pl.DataFrame) -> None:
    plan, result = run
    org = plan.org
    lo = dt.datetime.combine(org.start, dt.time(0), tzinfo=dt.UTC)
    times = events["event_time"]
    assert lo <= times.min() and times.max() < lo + dt.timedelta(days=org.days)
    assert times.is_sorted()
    for i, s in enumerate(plan.sessions):
        first, last = result.record.spans[i]
        assert 0 <= first - s.connect_ms < 60_000 and last >= first, (s.user, from_ms(first))


@pytest.mark.mariadb
def test_warp_changes_nothing_but_timestamps(run) -> None:
    _, result = run
    assert result.raw is not None
    raw, warped = result.raw.all()[0].read_bytes(), result.logs.all()[0].read_bytes()
    assert len(raw) == len(warped) and raw != warped
    assert AUDIT_TS.sub(b"<TS>", raw) == AUDIT_TS.sub(b"<TS>", warped)
    assert len(AUDIT_TS.findall(warped)) == warped.count(b"\n")


@pytest.mark.mariadb
def test_outputs_replay_without_rejects(run) -> None:
    plan, result = run
    out = result.out
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["db"] == "mariadb" and run_json["replay"] == [result.logs.all()[0].name]
    assert run_json["settings"]["server_audit_events"] == "CONNECT,QUERY,TABLE"
    assert json.loads((out / "labels.json").read_text()) == result.labels
    catalog = (out / "catalog.toml").read_text()
    assert '[tables."records.citizens"]' in catalog and "rows = 2000" in catalog
    config = load_config(out / "config.toml")
    assert config.format == "mariadb-audit" and config.mariadb_timezone == "UTC"
    assert config.role_of("etl_loader") == "etl" and "backup" in config.service_roles
    summary = replay_files([out / f for f in run_json["replay"]], config, progress=None)
    assert not summary.rejects
    assert summary.counts["statements"] == plan.statements + len(plan.sessions)


# ----------------------------------------------------------------- a running server (DSN)


@pytest.mark.mariadb
def test_a_running_server_is_left_as_found(tmp_path: Path) -> None:
    """Audit settings set for the run and put back; database and accounts dropped."""
    from detector.lab.simulation.mariadb_server import MariaDBServer

    org = build_org(users=5, days=1, seed=2, citizens=300)
    plan = build_plan(org, ())
    with MariaDBServer() as server:  # plain: query log limit 1024, default rotation
        dsn = f"mariadb://root@localhost/?unix_socket={server.socket_path}"
        result = simulate(plan, tmp_path, db="mariadb", dsn=dsn)
        with server.admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@server_audit_query_log_limit, @@server_audit_excl_users")
            assert cur.fetchone() == (1024, "")
            cur.execute("SELECT count(*) FROM information_schema.SCHEMATA"
                        " WHERE SCHEMA_NAME = 'records'")  # fmt: skip
            assert cur.fetchone() == (0,)
            cur.execute("SELECT count(*) FROM mysql.user WHERE User = 'etl_loader'")
            assert cur.fetchone() == (0,)
    frame, summary = parse_files(
        list(result.replay), load_config(tmp_path / "config.toml"), out=None, dead_letter=None
    )
    assert summary.rejects == {} and result.record.errors == []
    assert frame.filter(pl.col("event_kind") == "statement").height == (
        plan.statements + len(plan.sessions)
    )
    assert mismatches(label_coverage(plan.sessions, frame, result.labels, logged_sql)) == []
