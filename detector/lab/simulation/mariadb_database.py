"""Schema, data, accounts and audit settings of the simulated records office on MariaDB.

The same tables and columns as on PostgreSQL (:mod:`.database`), in MariaDB types, in a
``records`` database, loaded with the same :class:`~.queries.Dataset`.  Each role gets the
privileges its PostgreSQL counterpart has: SELECT on the three tables for the people,
read + write for ``etl``, mysqldump's global read privileges for ``backup``, everything
for ``dba``.  Accounts are ``'user'@'127.0.0.0/255.0.0.0'`` (every simulated client
address) with a random per-run password.

Setup runs as the admin account, which is put in ``server_audit_excl_users`` first: only
its connect and disconnect are logged, and the run's part of the file starts after them.

>>> grants_for("backup", "'backup_agent'@'h'")
["GRANT SELECT, LOCK TABLES, SHOW VIEW ON *.* TO 'backup_agent'@'h'"]
>>> parse_dsn("mariadb://root:p%40ss@127.0.0.1:3307/")
{'host': '127.0.0.1', 'port': 3307, 'user': 'root', 'password': 'p@ss'}
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import SimulationError

if TYPE_CHECKING:
    from .plan import Plan

DBNAME = "records"
#: every simulated client address (127.0.0.N, 127.0.1.N ...)
CLIENT_HOSTS = "127.0.0.0/255.0.0.0"
TABLES = (
    "CREATE TABLE citizens (id INT AUTO_INCREMENT PRIMARY KEY,"
    " national_id CHAR(18) NOT NULL UNIQUE, full_name VARCHAR(100) NOT NULL,"
    " phone VARCHAR(32), address VARCHAR(255), birth_date DATE)",
    "CREATE TABLE travel_records (id INT AUTO_INCREMENT PRIMARY KEY, citizen_id INT NOT NULL,"
    " mode VARCHAR(16), origin VARCHAR(64), destination VARCHAR(64), depart_date DATE,"
    " KEY (citizen_id), KEY (destination, depart_date))",
    "CREATE TABLE hotel_stays (id INT AUTO_INCREMENT PRIMARY KEY, citizen_id INT NOT NULL,"
    " hotel VARCHAR(128), checkin DATE, nights INT,"
    " KEY (citizen_id), KEY (hotel, checkin))",
)
TABLE_NAMES = ("citizens", "travel_records", "hotel_stays")
#: global server_audit settings of a run (value as ``SHOW VARIABLES`` prints it)
AUDIT_SETTINGS: Mapping[str, str] = {
    "server_audit_logging": "ON",
    "server_audit_events": "CONNECT,QUERY,TABLE",
    # the nightly loads are one multi-row INSERT each: log them whole
    "server_audit_query_log_limit": "1048576",
    "server_audit_incl_users": "",
    # no rotation in the middle of a run (the runner follows one file)
    "server_audit_file_rotations": "0",
}
#: server_audit settings written to run.json
REPORTED_SETTINGS = (
    *AUDIT_SETTINGS,
    "server_audit_excl_users",
    "server_audit_file_rotate_size",
    "server_audit_mode",
    "server_audit_output_type",
)
#: ``mariadbd`` options of a throwaway server with the same settings
SERVER_ARGS = (
    "--server-audit-query-log-limit=1048576",
    "--server-audit-file-rotations=0",
    "--server-audit-excl-users=root",
    "--max-connections=300",
)


def parse_dsn(dsn: str) -> dict[str, Any]:
    """PyMySQL keyword arguments of ``mariadb://user:password@host:port/?unix_socket=path``.

    ``mysql://`` works too; the path (a database) is ignored.
    """
    url = urlsplit(dsn)
    if url.scheme not in ("mariadb", "mysql"):
        raise SimulationError(f"not a MariaDB DSN (mariadb://user:password@host:port/): {dsn!r}")
    out: dict[str, Any] = {"host": url.hostname or "127.0.0.1"}
    try:
        if url.port is not None:
            out["port"] = url.port
    except ValueError as exc:
        raise SimulationError(f"bad port in DSN {dsn!r}") from exc
    out["user"] = unquote(url.username or "root")
    out["password"] = unquote(url.password or "")
    if sock := parse_qs(url.query).get("unix_socket"):
        out["unix_socket"] = sock[0]
    return out


def grants_for(role: str, account: str) -> list[str]:
    """Privileges of an account (``'name'@'host'``) holding ``role``."""
    tables = [f"{DBNAME}.{t}" for t in TABLE_NAMES]
    if role == "etl":
        return [f"GRANT SELECT, INSERT, UPDATE ON {t} TO {account}" for t in tables]
    if role == "backup":
        return [f"GRANT SELECT, LOCK TABLES, SHOW VIEW ON *.* TO {account}"]
    if role == "dba":
        return [f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION"]
    return [f"GRANT SELECT ON {t} TO {account}" for t in tables]


def account(user: str) -> str:
    """``'user'@'127.0.0.0/255.0.0.0'`` (user names are simple identifiers)."""
    return f"'{user}'@'{CLIENT_HOSTS}'"


@dataclass(frozen=True)
class ServerInfo:
    """What the simulator learns about the server before the run."""

    version: str
    audit_version: str
    audit_file: Path
    port: int
    utc_offset_ms: int
    skip_name_resolve: bool
    settings: dict[str, str]


def _one(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    row = cur.fetchone()
    return None if row is None else row[0]


def _audit_variables(cur: Any) -> dict[str, str]:
    cur.execute("SHOW GLOBAL VARIABLES LIKE 'server\\_audit\\_%'")
    return {name: str(value) for name, value in cur.fetchall()}


def inspect_server(conn: Any) -> ServerInfo:
    """Versions, the audit file's local path, the TCP port and the zone of the log's times."""
    with conn.cursor() as cur:
        audit = _audit_variables(cur)
        if not audit:
            raise SimulationError(
                "the server_audit plugin is not loaded: start the server with"
                " --plugin-load-add=server_audit (or INSTALL SONAME 'server_audit')"
            )
        if audit.get("server_audit_output_type", "file").lower() != "file":
            raise SimulationError("server_audit must write a file: server_audit_output_type=file")
        path = Path(audit.get("server_audit_file_path") or "server_audit.log")
        if not path.is_absolute():
            path = Path(_one(cur, "SELECT @@datadir")) / path
        version = _one(cur, "SELECT VERSION()")
        plugin = _one(
            cur,
            "SELECT PLUGIN_AUTH_VERSION FROM information_schema.PLUGINS"
            " WHERE PLUGIN_NAME = 'SERVER_AUDIT'",
        )
        port = int(_one(cur, "SELECT @@port") or 0)
        if _one(cur, "SELECT @@skip_networking"):
            raise SimulationError("the server does not listen on TCP (skip_networking is on)")
        # server_audit stamps the process's local time ('SYSTEM'), whatever time_zone says
        cur.execute("SET SESSION time_zone = 'SYSTEM'")
        offset = int(_one(cur, "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())"))
        skip = bool(_one(cur, "SELECT @@skip_name_resolve"))
    return ServerInfo(str(version), str(plugin), path, port, offset * 60_000, skip, audit)


def _set_global(cur: Any, name: str, value: str) -> None:
    # numeric variables refuse a string
    cur.execute(f"SET GLOBAL {name} = %s", (int(value) if value.isdigit() else value,))


def configure_audit(conn: Any, admin_user: str) -> dict[str, str]:
    """Set :data:`AUDIT_SETTINGS` (and exclude ``admin_user``); returns what to restore."""
    want = dict(AUDIT_SETTINGS, server_audit_excl_users=admin_user)
    with conn.cursor() as cur:
        have = _audit_variables(cur)
        old = {}
        for name, value in want.items():
            current = have.get(name, "")
            same = (
                {v.strip() for v in current.upper().split(",")}
                == {v.strip() for v in value.upper().split(",")}
                if name == "server_audit_events"
                else current == value
            )
            if not same:
                old[name] = current
                _set_global(cur, name, value)
    return old


def restore_audit(conn: Any, old: Mapping[str, str]) -> None:
    """Put back the settings :func:`configure_audit` changed."""
    with conn.cursor() as cur:
        for name, value in old.items():
            _set_global(cur, name, value)


def check_absent(conn: Any, plan: Plan) -> None:
    """Fail if the database or an account of the office exists already: nothing of a
    running server's is taken over (or dropped afterwards)."""
    names = [u.name for u in plan.org.users]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (DBNAME,),
        )
        if cur.fetchall():
            raise SimulationError(
                f"database {DBNAME!r} exists on the server: drop it first (the simulator"
                " creates it, and drops it after a run on a running server)"
            )
        cur.execute(
            "SELECT DISTINCT User FROM mysql.user WHERE User IN"
            f" ({', '.join(['%s'] * len(names))})",
            names,
        )
        if taken := sorted(str(r[0]) for r in cur.fetchall()):
            raise SimulationError(f"accounts of the simulated office exist already: {taken}")


def setup_office(conn: Any, plan: Plan) -> dict[str, str]:
    """Create the database, tables, data and accounts; returns each user's password."""
    import pymysql

    data = plan.data
    loads = (
        ("citizens (national_id, full_name, phone, address, birth_date)", 5,
         [c.row() for c in data.citizens]),
        ("travel_records (citizen_id, mode, origin, destination, depart_date)", 5,
         data.travel_rows()),
        ("hotel_stays (citizen_id, hotel, checkin, nights)", 4, data.hotel_rows()),
    )  # fmt: skip
    passwords = {u.name: secrets.token_urlsafe(12) for u in plan.org.users}
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DBNAME} CHARACTER SET utf8mb4")
            cur.execute(f"USE {DBNAME}")
            for stmt in TABLES:
                cur.execute(stmt)
            for target, n, rows in loads:
                marks = ", ".join(["%s"] * n)
                # PyMySQL folds this into multi-row INSERTs of up to ~1 MB each
                cur.executemany(f"INSERT INTO {target} VALUES ({marks})", rows)
            cur.execute(f"ANALYZE TABLE {', '.join(TABLE_NAMES)}")
            cur.fetchall()
            for table in TABLE_NAMES:
                # open each table once now: the first open reads the mysql.*_stats tables,
                # which would otherwise show up in the first workload statement's TABLE lines
                cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
                cur.fetchall()
            for user in plan.org.users:
                cur.execute(f"CREATE USER {account(user.name)} IDENTIFIED BY %s",
                            (passwords[user.name],))  # fmt: skip
                for grant in grants_for(user.role, account(user.name)):
                    cur.execute(grant)
    except pymysql.MySQLError as exc:
        raise SimulationError(f"setting up the records office on MariaDB failed: {exc}") from exc
    return passwords


def drop_office(conn: Any, plan: Plan) -> None:
    """Remove what :func:`setup_office` created (a running server is left as found)."""
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
        for user in plan.org.users:
            cur.execute(f"DROP USER IF EXISTS {account(user.name)}")
