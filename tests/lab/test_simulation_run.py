"""A small simulation on the real PostgreSQL 15 + pgaudit: labels match what the server logged.

One run (6 users, 2 days, 2,000 citizens, scenarios at 5 % size) takes about 6 s.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from detector.commands.parse import parse_files
from detector.config import Config
from detector.lab.simulation.org import build_org
from detector.lab.simulation.plan import Plan, build_plan
from detector.lab.simulation.scenarios import default_scenarios
from detector.lab.simulation.sessions import from_ms
from detector.lab.simulation.simulate import SimulationResult, simulate

pytestmark = pytest.mark.postgres

TS = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})? UTC")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, SimulationResult]:
    from detector.lab.simulation.pg_server import PgNotInstalledError, find_bindir

    try:
        find_bindir()
    except PgNotInstalledError as e:
        pytest.fail(str(e), pytrace=False)
    org = build_org(users=6, days=2, seed=5, citizens=2000)
    plan = build_plan(org, default_scenarios(org, scale=0.05))
    return plan, simulate(plan, tmp_path_factory.mktemp("sim"), keep_raw=True)


@pytest.fixture(scope="module")
def events(run: tuple[Plan, SimulationResult]) -> pl.DataFrame:
    _, result = run
    frame, summary = parse_files([result.csv], Config(), out=None, dead_letter=None)
    assert summary.rejects == {}
    return frame


def test_every_planned_statement_ran(run, events: pl.DataFrame) -> None:
    plan, result = run
    assert result.record.errors == []
    assert events.filter(pl.col("event_kind") == "statement").height == plan.statements
    assert result.server_version.startswith("15.") and result.pgaudit_version == "1.7"


def test_labelled_statements_are_logged_for_the_user_inside_the_label(run, events) -> None:
    plan, result = run
    labels = {(lab["scenario"], lab["user"]): lab for lab in result.labels}
    stmts = events.filter(pl.col("event_kind") == "statement")
    logged = collections.defaultdict(list)
    for user, text, t in stmts.select("user", "statement", "event_time").iter_rows():
        logged[(user, text)].append(t)
    kinds = set()
    for session in plan.sessions:
        for name in session.labels:
            lab = labels[(name, session.user)]
            kinds.add(lab["kind"])
            lo, hi = (dt.datetime.fromisoformat(lab[k]) for k in ("start", "end"))
            for st in session.statements:
                times = logged[(session.user, st.logged_sql)]
                assert any(lo <= t <= hi for t in times), (name, session.user, st.logged_sql)
    assert {"smash_and_grab", "enumeration", "compromised_account", "etl_bulk"} <= kinds


def test_bound_lookups_log_their_parameters(run, events) -> None:
    plan, _ = run
    planned = {
        st.params[0]
        for s in plan.sessions
        if "enumeration-param" in s.labels
        for st in s.statements
        if st.params
    }
    logged = set(
        events.filter(pl.col("statement").str.ends_with("national_id = $1"))
        .get_column("parameters")
        .explode()
        .drop_nulls()
        .to_list()
    )
    assert planned and planned <= logged


def test_client_addresses_appear_as_planned(run, events) -> None:
    plan, _ = run
    want = collections.Counter((s.user, s.client_ip) for s in plan.sessions)
    connects = events.filter(pl.col("event_kind") == "connect")
    got = collections.Counter(connects.select("user", "client_ip").iter_rows())
    assert got == want
    assert len({ip for _, ip in want}) >= 7


def test_times_are_simulated_and_in_order(run, events) -> None:
    plan, result = run
    org = plan.org
    lo = dt.datetime.combine(org.start, dt.time(0), tzinfo=dt.UTC)
    hi = lo + dt.timedelta(days=org.days)
    times = events.get_column("event_time")
    assert lo <= times.min() and times.max() < hi
    spans = result.record.spans
    for i, s in enumerate(plan.sessions):
        first, last = spans[i]
        assert first >= s.connect_ms and last >= first
        assert first - s.connect_ms < 60_000, (s.user, from_ms(s.connect_ms))


def test_log_lines_are_in_simulated_order(run) -> None:
    _, result = run
    stamps = [line[:23] for line in result.csv.read_bytes().split(b"\n") if TS.match(line)]
    assert stamps == sorted(stamps)


def test_warp_changes_nothing_but_timestamps(run) -> None:
    _, result = run
    assert result.raw is not None
    for raw, warped in zip(result.raw.all(), result.logs.all(), strict=True):
        a, b = raw.read_bytes(), warped.read_bytes()
        assert len(a) == len(b) and a != b
        assert TS.sub(b"<TS>", a) == TS.sub(b"<TS>", b)


def test_session_starts_are_just_before_their_first_line(run) -> None:
    _, result = run
    firsts = [
        rec
        for line in result.logs.json.read_text(encoding="utf-8").splitlines()
        if (rec := json.loads(line))["line_num"] == 1 and rec.get("remote_host")
    ]
    assert len(firsts) == len(result.record.spans)
    for rec in firsts:
        t = dt.datetime.strptime(rec["timestamp"], "%Y-%m-%d %H:%M:%S.%f UTC")
        s = dt.datetime.strptime(rec["session_start"], "%Y-%m-%d %H:%M:%S UTC")
        assert dt.timedelta(0) <= t - s < dt.timedelta(seconds=1), rec


def test_outputs_are_written(run) -> None:
    plan, result = run
    users = json.loads((result.out / "users.json").read_text())
    assert {u["user"] for u in users["users"]} == {u.name for u in plan.org.users}
    labels = json.loads((result.out / "labels.json").read_text())
    assert labels == result.labels
    assert {"scenario", "kind", "user", "start", "end", "negative"} <= set(labels[0])
    assert sorted(p.suffix for p in result.out.glob("postgresql-*")) == [".csv", ".json", ".log"]


def test_same_plan_gives_the_same_audit_payloads(run, tmp_path: Path) -> None:
    """Determinism: the AUDIT payloads of a rerun are the same (times and pids differ)."""
    plan, result = run
    again = simulate(plan, tmp_path)

    def payloads(path: Path) -> list[str]:
        frame, _ = parse_files([path], Config(), out=None, dead_letter=None)
        stmts = frame.filter(pl.col("event_kind") == "statement")
        rows = pl.col("rows").cast(pl.String).fill_null("-")
        key = pl.concat_str(pl.col("user"), pl.col("statement"), rows, separator="|")
        return sorted(stmts.select(key).to_series().to_list())

    assert payloads(again.csv) == payloads(result.csv)
