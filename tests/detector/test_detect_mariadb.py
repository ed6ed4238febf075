"""Detection on a real MariaDB server_audit log, which has no row counts.

A throwaway MariaDB with server_audit (Debian package, started by the test) serves four
"days" of work: a desk officer looks up people one by one and an analyst runs aggregates;
on the last day the officer reads the whole citizens table. The server's own log is then
time-warped (each day's connections moved to their simulated date, nothing else
touched) and replayed. The rows of the bulk read are not in the log: the catalog sizes
the table, and the alert must say the count is an estimate.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from detector.alerts import Alert
from detector.config import load_config
from detector.replay import replay_files

pytestmark = pytest.mark.mariadb

DAY0 = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
CATALOG = """
[tables."records.citizens"]
rows = 50_000
columns = ["id", "national_id", "full_name", "phone", "address", "birth_date"]
"""
CONFIG = """
[source]
format = "mariadb-audit"
mariadb_timezone = "UTC"
[catalog]
path = "catalog.toml"
[peers.users]
"officer*" = "desk_officer"
"analyst*" = "analyst"
"""


def _warp(log: Path, days: dict[int, int], out: Path) -> None:
    """Give each connection's lines the date of its simulated day, in working hours.

    Lines keep their order and their text; only the ``YYYYMMDD HH:MM:SS`` field moves.
    Setup lines (connections of no day) go before the first day.
    """
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    seen_per_day: dict[int, int] = {}
    warped = []
    for line in lines:
        fields = line.split(",", 5)
        day = days.get(int(fields[4]), -1) if len(fields) > 5 and fields[4].isdigit() else -1
        k = seen_per_day.get(day, 0)
        seen_per_day[day] = k + 1
        when = DAY0 + dt.timedelta(days=day, hours=9, seconds=30 * k)
        warped.append(when.strftime("%Y%m%d %H:%M:%S") + line[17:])
    out.write_text("".join(warped), encoding="utf-8")


@pytest.fixture(scope="module")
def mariadb_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from realdb.mariadb import MariaDBServer, MariaDBUnavailableError, find_binaries
    from realdb.mariadb_workload import _setup, fake_citizens

    try:
        find_binaries()
    except MariaDBUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    out = tmp_path_factory.mktemp("mariadb-days")
    citizens = fake_citizens(300, seed=4)
    day_of_connection: dict[int, int] = {}
    server = MariaDBServer()
    try:
        server.start()
        _setup(server)
        with server.connect("etl_batch", database="records") as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO citizens (id, national_id, full_name, phone, address, birth_date)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                citizens,
            )
        for day in range(4):
            with server.connect("officer1", database="records") as conn, conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                day_of_connection[cur.fetchone()[0]] = day
                for c in citizens[day * 25 : day * 25 + 25]:
                    cur.execute(
                        f"SELECT full_name, phone FROM citizens WHERE national_id = '{c[1]}'"
                    )
                if day == 3:
                    cur.execute("SELECT * FROM citizens")
            with server.connect("analyst1", database="records") as conn, conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                day_of_connection[cur.fetchone()[0]] = day
                for _ in range(5):
                    cur.execute(
                        "SELECT LEFT(national_id, 6) AS region, COUNT(*) FROM citizens"
                        " GROUP BY LEFT(national_id, 6)"
                    )
        server.stop()
        _warp(server.audit_log, day_of_connection, out / "server_audit.log")
    finally:
        server.cleanup()
    (out / "catalog.toml").write_text(CATALOG, encoding="utf-8")
    (out / "config.toml").write_text(CONFIG, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def alerts(mariadb_days: Path) -> list[Alert]:
    config = load_config(mariadb_days / "config.toml")
    summary = replay_files([mariadb_days / "server_audit.log"], config, progress=None)
    assert summary.counts["statements"] > 120
    assert not summary.rejects
    return summary.alerts


def test_whole_table_read_alerts_with_estimated_rows(alerts: list[Alert]) -> None:
    grabs = [a for a in alerts if a.user == "officer1" and "smash_and_grab" in a.kinds]
    assert len(grabs) == 1, [(a.user, a.kind) for a in alerts]
    (grab,) = grabs
    assert grab.severity == "critical"
    assert grab.start.date() == (DAY0 + dt.timedelta(days=3)).date()
    text = " ".join(grab.reasons)
    assert "50,000" in text  # the catalog's size of the table, not a logged count
    assert "estimated" in text
    assert grab.evidence[0].statement == "SELECT * FROM citizens"


def test_normal_days_raise_nothing(alerts: list[Alert]) -> None:
    assert len(alerts) == 1  # the bulk read, nothing on the three normal days
    assert not [a for a in alerts if a.user == "analyst1"]


def test_lookups_are_counted_as_people_not_rows(mariadb_days: Path) -> None:
    """The officer's lookups carry ID numbers in literals: counted as distinct people,
    never shown raw."""
    log = (mariadb_days / "server_audit.log").read_text(encoding="utf-8")
    ids = set(re.findall(r"\b\d{17}[\dX]\b", log))
    assert len(ids) >= 100
    config = load_config(mariadb_days / "config.toml")
    summary = replay_files([mariadb_days / "server_audit.log"], config, progress=None)
    dumped = repr([a.to_json() for a in summary.alerts])
    assert not [i for i in ids if i in dumped]
