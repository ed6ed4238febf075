"""Server settings, schema, data and database roles of the simulated records office.

Setup runs as ``harness``, a superuser whose own audit logging is off, before the log is
rotated: the workload files hold only what the office does.

>>> SIM_SETTINGS["pgaudit.log_rows"], SIM_SETTINGS["log_line_prefix"]
('on', "'%m [%p] %q%u@%d '")
>>> grants_for("backup", "backup_agent")
['GRANT pg_read_all_data TO backup_agent']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .pg_server import DBNAME, PgCluster

if TYPE_CHECKING:
    import psycopg

    from .plan import Plan

#: postgresql.conf lines on top of :data:`.pg_server.BASE_SETTINGS`
SIM_SETTINGS: Mapping[str, str] = {
    "pgaudit.log": "'read, write, ddl, role, misc'",
    "pgaudit.log_rows": "on",
    "pgaudit.log_relation": "on",
    # Debian's default prefix; the time-warp rewrites its leading %m
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "max_connections": "200",
    # the run lasts seconds: keep checkpoints out of the workload log
    "checkpoint_timeout": "'1h'",
    "max_wal_size": "'4GB'",
}

TABLES = (
    "CREATE TABLE citizens (id serial PRIMARY KEY, national_id char(18) NOT NULL UNIQUE,"
    " full_name text NOT NULL, phone text, address text, birth_date date)",
    "CREATE TABLE travel_records (id serial PRIMARY KEY, citizen_id int NOT NULL,"
    " mode text, origin text, destination text, depart_date date)",
    "CREATE TABLE hotel_stays (id serial PRIMARY KEY, citizen_id int NOT NULL,"
    " hotel text, checkin date, nights int)",
    "CREATE INDEX ON travel_records (citizen_id)",
    "CREATE INDEX ON travel_records (destination, depart_date)",
    "CREATE INDEX ON hotel_stays (citizen_id)",
    "CREATE INDEX ON hotel_stays (hotel, checkin)",
)
READ_ALL = "GRANT SELECT ON citizens, travel_records, hotel_stays TO {}"


def grants_for(role: str, login: str) -> list[str]:
    """Privileges of a login of ``role`` (login names are simple identifiers)."""
    if role == "etl":
        return [
            READ_ALL.format(login),
            f"GRANT INSERT, UPDATE ON citizens, travel_records, hotel_stays TO {login}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {login}",
        ]
    if role == "backup":
        return [f"GRANT pg_read_all_data TO {login}"]
    if role == "dba":
        return [f"ALTER ROLE {login} SUPERUSER"]
    return [READ_ALL.format(login)]


def setup_database(cluster: PgCluster, plan: Plan) -> tuple[str, str]:
    """Create the database, tables, data and roles; returns (server, pgaudit) versions."""
    with cluster.connect("postgres", "postgres") as conn:
        conn.execute("CREATE ROLE harness SUPERUSER LOGIN")
        conn.execute("ALTER ROLE harness SET pgaudit.log = 'none'")
    with cluster.connect("harness", "postgres") as conn:
        conn.execute(f"CREATE DATABASE {DBNAME}")
    with cluster.connect("harness") as conn:
        return load_office(conn, plan)


def load_office(
    conn: psycopg.Connection, plan: Plan, passwords: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Tables, data and roles in the database ``conn`` is connected to (as a superuser
    whose statements pgaudit does not log); returns (server, pgaudit) versions.

    ``passwords`` gives every role a login password (a running server's pg_hba.conf may
    ask for one); without it roles have none (the throwaway cluster trusts loopback).
    """
    from psycopg import sql

    data = plan.data
    conn.execute("CREATE EXTENSION pgaudit")
    for stmt in TABLES:
        conn.execute(stmt)
    with conn.cursor() as cur:
        loads = (
            ("citizens (national_id, full_name, phone, address, birth_date)",
             (c.row() for c in data.citizens)),
            ("travel_records (citizen_id, mode, origin, destination, depart_date)",
             data.travel_rows()),
            ("hotel_stays (citizen_id, hotel, checkin, nights)", data.hotel_rows()),
        )  # fmt: skip
        for target, rows in loads:
            with cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    conn.execute("ANALYZE")
    for user in plan.org.users:
        login = sql.Identifier(user.name)
        if passwords is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(login))
        else:
            create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            conn.execute(create.format(login, sql.Literal(passwords[user.name])))
        for grant in grants_for(user.role, user.name):
            conn.execute(grant)
        if plan.org.habit(user).log_parameter:
            # pgaudit settings are superuser-only GUCs: a site sets them per role
            conn.execute(sql.SQL("ALTER ROLE {} SET pgaudit.log_parameter = on").format(login))
    server = conn.execute("SHOW server_version").fetchone()
    ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgaudit'")
    pgaudit = ext.fetchone()
    return (server[0] if server else "?"), (pgaudit[0] if pgaudit else "?")
