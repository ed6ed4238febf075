"""Records-office workload that makes a real PostgreSQL 15 + pgaudit 1.7 write real audit logs.

One run produces, for each ``log_line_prefix`` phase (PostgreSQL default, Debian, pgBadger
style), one file per log format (``.log`` stderr, ``.csv`` csvlog, ``.json`` jsonlog) holding
the same events.  Every phase runs the same :data:`SESSIONS`, each a fresh TCP connection to
127.0.0.1 as a workload role; before each session the DBA sets its pgaudit options on the
role (``ALTER ROLE ... SET pgaudit.log_rows = on`` ...), which is how a site gives one
account other audit settings (the options are superuser-only GUCs).

Phases are separated with ``pg_rotate_logfile()``; the prefix change (``ALTER SYSTEM`` +
``pg_reload_conf()``) happens in a small "reload" file of its own, so each phase file holds
exactly one prefix.  The orchestration runs as the superuser ``harness`` whose own audit
logging is off (``ALTER ROLE harness SET pgaudit.log = 'none'``).

Regenerate the committed snapshot (see tests/data/real/pg/README.md)::

    .venv/bin/python -m tests.realdb.pg_workload --snapshot tests/data/real/pg
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from detector.lab.simulation.pg_server import LogFiles, rotate_logs
from features.national_id import check_char

from .postgres import DBNAME, PgCluster, start_cluster

# --------------------------------------------------------------------------- fake citizens


def check_digit(first17: str) -> str:
    """GB 11643-1999 check character (the detector's own reference implementation).

    >>> check_digit("11010519491231002")
    'X'
    """
    return check_char(first17)


def make_national_id(area: str, birth: dt.date, seq: int) -> str:
    """18-character ID: 6-digit area, YYYYMMDD, 3-digit sequence, check character.

    >>> make_national_id("110105", dt.date(1949, 12, 31), 2)
    '11010519491231002X'
    """
    first17 = f"{area}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_digit(first17)


def is_valid_national_id(s: str) -> bool:
    """Whether ``s`` is an 18-character ID with a correct check character.

    >>> is_valid_national_id("11010519491231002X"), is_valid_national_id("110105194912310021")
    (True, False)
    """
    return len(s) == 18 and s[:17].isdigit() and check_digit(s[:17]) == s[17]


AREAS = (
    ("110101", "北京市东城区"),
    ("110105", "北京市朝阳区"),
    ("310101", "上海市黄浦区"),
    ("440106", "广州市天河区"),
    ("510107", "成都市武侯区"),
    ("330106", "杭州市西湖区"),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林"
GIVEN = (*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚", "秀英", "秀兰", "桂英")
STREETS = ("建国路", "人民路", "解放路", "中山路", "和平街", "文化路", "长安街", "滨江路")
HOTELS = (
    "如家酒店(王府井店)",
    "汉庭酒店(人民广场店)",
    "锦江之星(天河店)",
    "Hilton Shanghai",
    "7天连锁酒店(春熙路店)",
    "全季酒店(西湖店)",
    "Holiday Inn Express Chengdu",
)


@dataclass(frozen=True)
class Citizen:
    id: int
    national_id: str
    full_name: str
    phone: str
    address: str
    birth_date: dt.date


def make_citizens(n: int = 200, seed: int = 11643) -> tuple[Citizen, ...]:
    """Deterministic fake citizens; every 8th shares the address of the previous one."""
    rnd = random.Random(seed)
    out: list[Citizen] = []
    seen: set[str] = set()
    while len(out) < n:
        code, city = rnd.choice(AREAS)
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=rnd.randrange(365 * 55))
        nid = make_national_id(code, birth, rnd.randrange(1, 1000))
        if nid in seen:
            continue
        seen.add(nid)
        i = len(out) + 1
        if out and i % 8 == 0:
            address = out[-1].address  # a family member
        else:
            street, no = rnd.choice(STREETS), rnd.randrange(1, 300)
            address = f"{city}{street}{no}号{rnd.randrange(1, 30)}-{rnd.randrange(101, 2505)}"
        phone = f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN)
        out.append(Citizen(i, nid, name, phone, address, birth))
    return tuple(out)


def make_travel(citizens: tuple[Citizen, ...], n: int = 300, seed: int = 1999):
    rnd = random.Random(seed)
    return tuple(
        (
            rnd.choice(citizens).id,
            rnd.choice(HOTELS),
            dt.date(2023, 1, 1) + dt.timedelta(days=rnd.randrange(730)),
        )
        for _ in range(n)
    )


CITIZENS = make_citizens()
TRAVEL = make_travel(CITIZENS)
#: IDs looked up with literals (the last one is valid but not in the table: 0 rows)
LITERAL_LOOKUP_IDS = (
    CITIZENS[6].national_id,
    CITIZENS[41].national_id,
    make_national_id("110101", dt.date(1990, 3, 7), 777),
)
#: IDs looked up with a bound parameter ($1), and the array-parameter lookup
PARAM_LOOKUP_IDS = (CITIZENS[9].national_id,)
ARRAY_LOOKUP_IDS = (CITIZENS[3].national_id, CITIZENS[4].national_id, CITIZENS[5].national_id)
PAGE_OFFSETS = (0, 20, 40)
#: one new citizen per phase (etl_batch INSERT), then an UPDATE of CITIZENS[20]'s phone
NEW_CITIZENS = tuple(
    Citizen(
        0,
        make_national_id("440106", dt.date(2001, 5, 1 + k), 301 + 2 * k),
        f"新{'甲乙丙'[k]}",
        f"1380013800{k}",
        f"广州市天河区体育西路{10 + k}号",
        dt.date(2001, 5, 1 + k),
    )
    for k in range(3)
)
PASSWORD = "officer2-secret"

# --------------------------------------------------------------------------- phases

#: (phase name, log_line_prefix)
PHASES: tuple[tuple[str, str], ...] = (
    ("default", "%m [%p] "),
    ("debian", "%m [%p] %q%u@%d "),
    ("pgbadger", "%t [%p]: user=%u,db=%d,app=%a,client=%h "),
)

#: application_name per role (analyst1 sets none: its %a / application_name is empty)
APP_NAMES = {
    "officer1": "records-portal",
    "officer2": "records-portal",
    "etl_batch": "etl-nightly",
    "postgres": "dba-console",
}

# --------------------------------------------------------------------------- steps

ROWS = {"pgaudit.log_rows": "on"}

SQL_ROWS = "SELECT id, national_id, full_name FROM citizens WHERE birth_date < '1960-01-01'"
SQL_JOIN = (
    "SELECT c.national_id, c.full_name, t.hotel, t.checkin FROM citizens c "
    "JOIN travel_records t ON t.citizen_id = c.id WHERE t.checkin >= '2024-06-01'"
)
SQL_SELFJOIN = (
    "SELECT c1.national_id, c2.national_id AS relative_id FROM citizens c1 "
    "JOIN citizens c2 ON c2.address = c1.address AND c2.id > c1.id"
)
SQL_COPY_QUERY = "COPY (SELECT national_id, full_name FROM citizens) TO STDOUT"
SQL_COPY_TABLE = "COPY citizens TO STDOUT"
SQL_PARAM = "SELECT * FROM citizens WHERE national_id = %s"
SQL_PARAM_ARRAY = "SELECT id, full_name FROM citizens WHERE national_id = ANY(%s)"
SQL_PARAM_TWO = "SELECT id, national_id FROM citizens WHERE full_name = %s AND birth_date = %s"
SQL_LITERAL = "SELECT full_name, phone FROM citizens WHERE national_id = '{}'"
SQL_MULTI = "SELECT count(*) FROM citizens; SELECT count(*) FROM travel_records"
SQL_MULTILINE = """SELECT full_name AS "Full Name",
       concat_ws(', ', phone, address) AS "Phone, Address"
  FROM citizens
 WHERE birth_date >= '1990-01-01'
 ORDER BY id
 LIMIT 5"""
SQL_PAGE = "SELECT * FROM citizens ORDER BY id LIMIT 20 OFFSET {}"
SQL_AGG = "SELECT count(*), date_part('year', birth_date) FROM citizens GROUP BY 2"
SQL_MISSING = "SELECT * FROM citizen_archive WHERE national_id = '{}'"
SQL_DENIED = "DELETE FROM travel_records WHERE checkin < '2023-02-01'"


def _run_rows(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_ROWS).fetchall()


def _run_join(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_JOIN).fetchall()


def _run_selfjoin(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_SELFJOIN).fetchall()


def _run_copy_query(conn: psycopg.Connection, phase: int) -> None:
    with conn.cursor() as cur, cur.copy(SQL_COPY_QUERY) as copy:
        for _ in copy:
            pass


def _run_copy_table(conn: psycopg.Connection, phase: int) -> None:
    with conn.cursor() as cur, cur.copy(SQL_COPY_TABLE) as copy:
        for _ in copy:
            pass


def _run_cursor(conn: psycopg.Connection, phase: int) -> None:
    # Each statement is sent on its own (simple query protocol, no parameters).
    for q in (
        "BEGIN",
        "DECLARE c CURSOR FOR SELECT * FROM citizens",
        "FETCH 50 FROM c",
        "FETCH 50 FROM c",
        "CLOSE c",
        "COMMIT",
    ):
        conn.execute(q)


def _run_param(conn: psycopg.Connection, phase: int) -> None:
    # psycopg 3 binds server-side: the server sees "... = $1" plus the value.
    with conn.cursor() as cur:
        for nid in PARAM_LOOKUP_IDS:
            cur.execute(SQL_PARAM, (nid,)).fetchall()
        cur.execute(SQL_PARAM_ARRAY, (list(ARRAY_LOOKUP_IDS),)).fetchall()
        c = CITIZENS[12]
        cur.execute(SQL_PARAM_TWO, (c.full_name, c.birth_date)).fetchall()


def _run_literal(conn: psycopg.Connection, phase: int) -> None:
    for nid in LITERAL_LOOKUP_IDS:
        conn.execute(SQL_LITERAL.format(nid)).fetchall()


def _run_one_literal(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_LITERAL.format(LITERAL_LOOKUP_IDS[0])).fetchall()


def _run_multi(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_MULTI)  # no parameters: one simple-protocol Query message


def _run_multiline(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_MULTILINE).fetchall()


def _run_pages(conn: psycopg.Connection, phase: int) -> None:
    for k in PAGE_OFFSETS:
        conn.execute(SQL_PAGE.format(k)).fetchall()


def _run_agg(conn: psycopg.Connection, phase: int) -> None:
    conn.execute(SQL_AGG).fetchall()


def _run_write(conn: psycopg.Connection, phase: int) -> None:
    c = NEW_CITIZENS[phase]
    new_id = conn.execute(
        "INSERT INTO citizens (national_id, full_name, phone, address, birth_date) "
        f"VALUES ('{c.national_id}', '{c.full_name}', '{c.phone}', '{c.address}', "
        f"'{c.birth_date}') RETURNING id"
    ).fetchone()[0]
    conn.execute(
        f"UPDATE citizens SET phone = '1390013900{phase}' "
        f"WHERE national_id = '{CITIZENS[20].national_id}'"
    )
    conn.execute(
        "INSERT INTO travel_records (citizen_id, hotel, checkin) "
        f"VALUES ({new_id}, '{HOTELS[0]}', '2024-12-0{phase + 1}')"
    )


def _run_errors(conn: psycopg.Connection, phase: int) -> None:
    for q in (SQL_MISSING.format(CITIZENS[1].national_id), SQL_DENIED):
        with contextlib.suppress(psycopg.Error):
            conn.execute(q)


def _run_ddl(conn: psycopg.Connection, phase: int) -> None:
    conn.execute("SET pgaudit.log = 'read, write, ddl, misc, role'")
    conn.execute(
        f"CREATE TABLE export_{phase} AS SELECT national_id, full_name, phone FROM citizens"
    )
    conn.execute(f"GRANT SELECT ON export_{phase} TO analyst1")
    conn.execute(f"DROP TABLE export_{phase}")


@dataclass(frozen=True)
class Action:
    name: str
    run: Callable[[psycopg.Connection, int], None]  # (connection, phase index)
    description: str


@dataclass(frozen=True)
class Session:
    """One fresh TCP connection as ``role`` running ``actions`` in order."""

    name: str
    role: str
    #: pgaudit options the DBA sets on the role before the session (ALTER ROLE ... SET)
    audit: Mapping[str, str]
    actions: tuple[Action, ...]


A = Action
SESSIONS: tuple[Session, ...] = (
    Session("analyst", "analyst1", ROWS, (
        A("select_rows_on", _run_rows, SQL_ROWS),
        A("cursor", _run_cursor, "BEGIN; DECLARE c CURSOR FOR SELECT * FROM citizens; "
          "FETCH 50 FROM c; FETCH 50 FROM c; CLOSE c; COMMIT (one Query message each)"),
        A("multi_statement", _run_multi, f"{SQL_MULTI} (one simple-protocol query string)"),
        A("multiline_quoted", _run_multiline, "multi-line SELECT with \"Full Name\" and "
          "\"Phone, Address\" aliases and a ', ' literal"),
        A("errors", _run_errors, "SELECT from the missing table citizen_archive (42P01); "
          "DELETE FROM travel_records without the privilege (42501)"),
        A("aggregate", _run_agg, SQL_AGG),
    )),
    Session("analyst_rows_off", "analyst1", {"pgaudit.log_rows": "off"}, (
        A("select_rows_off", _run_rows, f"{SQL_ROWS} (log_rows=off)"),
    )),
    Session("analyst_relation", "analyst1", {**ROWS, "pgaudit.log_relation": "on"}, (
        A("join", _run_join, SQL_JOIN),
        A("selfjoin", _run_selfjoin, SQL_SELFJOIN),
    )),
    Session("analyst_statement_once", "analyst1",
            {**ROWS, "pgaudit.log_relation": "on", "pgaudit.log_statement_once": "on"}, (
        A("join_once", _run_join, "the join again"),
    )),
    Session("etl", "etl_batch", ROWS, (
        A("copy_query", _run_copy_query, SQL_COPY_QUERY),
        A("copy_table", _run_copy_table, f"{SQL_COPY_TABLE} (psycopg Cursor.copy())"),
        A("write", _run_write, "INSERT a citizen ... RETURNING id; UPDATE a phone by "
          "national_id; INSERT a travel record"),
    )),
    Session("officer_params", "officer1", {**ROWS, "pgaudit.log_parameter": "on"}, (
        A("param_lookup", _run_param, "SELECT * FROM citizens WHERE national_id = $1; "
          "... national_id = ANY($1) with a text[] of 3 IDs; ... full_name = $1 AND "
          "birth_date = $2 (psycopg 3 server-side binding)"),
    )),
    Session("officer", "officer1", ROWS, (
        A("literal_lookup", _run_literal, SQL_LITERAL.format("<id>") + " for 3 IDs "
          "(the 3rd is valid but absent: 0 rows)"),
        A("pagination", _run_pages, SQL_PAGE.format("<k>") + f" for k in {PAGE_OFFSETS}"),
    )),
    Session("dba", "postgres", ROWS, (
        A("ddl_superuser", _run_ddl, "SET pgaudit.log = 'read, write, ddl, misc, role'; "
          "CREATE TABLE export_N AS SELECT ... FROM citizens; GRANT SELECT ON export_N TO "
          "analyst1; DROP TABLE export_N"),
    )),
    Session("officer2_password", "officer2", ROWS, (
        A("password_login", _run_one_literal, "a failed scram-sha-256 login (wrong password, "
          "separate connection), then this session logs in and runs the 1st literal lookup"),
    )),
)  # fmt: skip
del A

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PhaseLogs:
    name: str  # "default" | "debian" | "pgbadger"
    prefix: str  # log_line_prefix active for the whole phase
    files: LogFiles
    settings: Mapping[str, str]  # server settings (postgresql.conf values) active

    @property
    def stderr(self) -> Path:
        return self.files.stderr

    @property
    def csv(self) -> Path:
        return self.files.csv

    @property
    def json(self) -> Path:
        return self.files.json


@dataclass(frozen=True)
class PgLogs:
    phases: tuple[PhaseLogs, ...]
    setup: LogFiles  # server start, schema, data load, roles
    reloads: tuple[LogFiles, ...]  # prefix changes (the postmaster's reload messages)
    shutdown: LogFiles
    server_version: str
    pgaudit_version: str
    sessions: tuple[Session, ...] = field(default=SESSIONS, repr=False)

    def phase(self, name: str) -> PhaseLogs:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)


# --------------------------------------------------------------------------- runner


def _set_prefix(ctl: psycopg.Connection, prefix: str) -> None:
    ctl.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = {}").format(sql.Literal(prefix)))
    ctl.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while ctl.execute("SHOW log_line_prefix").fetchone()[0] != prefix:
        if time.monotonic() > deadline:
            raise RuntimeError("log_line_prefix change not applied")
        time.sleep(0.02)


def _set_role_audit(ctl: psycopg.Connection, role: str, audit: Mapping[str, str]) -> None:
    ctl.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(role)))
    for k, v in audit.items():
        ctl.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                sql.Identifier(role), sql.SQL(k), sql.Literal(v)
            )
        )


def setup_database(cluster: PgCluster) -> None:
    """Create the records database, schema, data, roles (as postgres; logged in the setup file)."""
    with cluster.connect("postgres", "postgres") as conn:
        conn.execute("CREATE ROLE harness SUPERUSER LOGIN")
        conn.execute("ALTER ROLE harness SET pgaudit.log = 'none'")
        conn.execute(f"CREATE DATABASE {DBNAME}")
    with cluster.connect("postgres") as conn:
        conn.execute("CREATE EXTENSION pgaudit")
        conn.execute(
            "CREATE TABLE public.citizens (id serial PRIMARY KEY, national_id char(18) NOT NULL"
            " UNIQUE, full_name text NOT NULL, phone text, address text, birth_date date)"
        )
        conn.execute(
            "CREATE TABLE public.travel_records (citizen_id int REFERENCES citizens (id),"
            " hotel text, checkin date)"
        )
        with conn.cursor() as cur:
            copy_sql = (
                "COPY citizens (national_id, full_name, phone, address, birth_date) FROM STDIN"
            )
            with cur.copy(copy_sql) as copy:
                for c in CITIZENS:
                    copy.write_row((c.national_id, c.full_name, c.phone, c.address, c.birth_date))
            with cur.copy("COPY travel_records (citizen_id, hotel, checkin) FROM STDIN") as copy:
                for row in TRAVEL:
                    copy.write_row(row)
        for stmt in (
            "CREATE ROLE auditor NOLOGIN",
            "GRANT SELECT ON citizens TO auditor",
            "CREATE ROLE officer1 LOGIN",
            f"CREATE ROLE officer2 LOGIN PASSWORD '{PASSWORD}'",
            "CREATE ROLE analyst1 LOGIN",
            "CREATE ROLE etl_batch LOGIN",
            "GRANT SELECT ON citizens, travel_records TO officer1, officer2, analyst1, etl_batch",
            "GRANT INSERT, UPDATE ON citizens, travel_records TO etl_batch",
            "GRANT USAGE ON SEQUENCE citizens_id_seq TO etl_batch",
        ):
            conn.execute(stmt)


def _run_session(cluster: PgCluster, session: Session, phase: int) -> None:
    app = APP_NAMES.get(session.role)
    extra: dict[str, object] = {"application_name": app} if app else {}
    if session.role == "officer2":
        try:
            cluster.connect(session.role, password="wrong-password", **extra).close()
        except psycopg.OperationalError:
            pass
        else:
            raise RuntimeError("officer2 logged in with a wrong password")
        extra["password"] = PASSWORD
    with cluster.connect(session.role, **extra) as conn:
        for action in session.actions:
            action.run(conn, phase)


def run_workload(cluster: PgCluster) -> PgLogs:
    """Set up the database, run every phase, stop the server; returns the produced files."""
    setup = _current_files_from_dir(cluster)
    setup_database(cluster)
    reloads: list[LogFiles] = []
    phases: list[PhaseLogs] = []
    with cluster.connect("harness") as ctl:
        server_version = ctl.execute("SHOW server_version").fetchone()[0]
        pgaudit_version = ctl.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pgaudit'"
        ).fetchone()[0]
        prefix = ctl.execute("SHOW log_line_prefix").fetchone()[0]
        for i, (name, new_prefix) in enumerate(PHASES):
            if new_prefix != prefix:
                reloads.append(rotate_logs(ctl))
                _set_prefix(ctl, new_prefix)
                prefix = new_prefix
            files = rotate_logs(ctl)
            for session in SESSIONS:
                _set_role_audit(ctl, session.role, session.audit)
                _run_session(cluster, session, i)
            for role in {s.role for s in SESSIONS}:
                _set_role_audit(ctl, role, {})
            settings = {k: v.strip("'") for k, v in cluster.settings.items()}
            settings["log_line_prefix"] = prefix
            phases.append(PhaseLogs(name, prefix, files, settings))
        shutdown = rotate_logs(ctl)
    cluster.stop()
    return PgLogs(tuple(phases), setup, tuple(reloads), shutdown, server_version, pgaudit_version)


def _current_files_from_dir(cluster: PgCluster) -> LogFiles:
    """The files of the first log period, read from ``current_logfiles`` in the data dir."""
    deadline = time.monotonic() + 10
    meta = cluster.datadir / "current_logfiles"
    while True:
        entries = (
            dict(line.split(" ", 1) for line in meta.read_text().splitlines() if " " in line)
            if meta.exists()
            else {}
        )
        if {"stderr", "csvlog", "jsonlog"} <= entries.keys():
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no current_logfiles in {cluster.datadir}: {entries}")
        time.sleep(0.05)
    return LogFiles(*(Path(entries[k]) for k in ("stderr", "csvlog", "jsonlog")))


def generate() -> tuple[PgCluster, PgLogs]:
    """Start a cluster, run the workload, stop it.  The caller cleans up ``cluster``."""
    cluster = start_cluster()
    try:
        return cluster, run_workload(cluster)
    except BaseException:
        cluster.cleanup()
        raise


# --------------------------------------------------------------------------- snapshot


def write_snapshot(logs: PgLogs, dest: Path) -> list[Path]:
    """Copy the phase files as ``<phase>-prefix.{log,csv,json}`` (and the reload files)."""
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(files: LogFiles, stem: str) -> None:
        for src, ext in zip(files.all(), ("log", "csv", "json"), strict=True):
            target = dest / f"{stem}.{ext}"
            shutil.copyfile(src, target)
            written.append(target)

    for p in logs.phases:
        put(p.files, f"{p.name}-prefix")
    for p, files in zip(logs.phases[1:], logs.reloads, strict=True):
        put(files, f"reload-to-{p.name}")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshot", type=Path, help="copy the produced files into this directory")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    cluster, logs = generate()
    try:
        print(
            f"PostgreSQL {logs.server_version}, pgaudit {logs.pgaudit_version},"
            f" {time.monotonic() - t0:.1f} s"
        )
        for p in logs.phases:
            sizes = ", ".join(f"{f.name} {f.stat().st_size} B" for f in p.files.all())
            print(f"{p.name:9} {p.prefix!r}: {sizes}")
        if args.snapshot:
            for f in write_snapshot(logs, args.snapshot):
                print("wrote", f)
    finally:
        cluster.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
