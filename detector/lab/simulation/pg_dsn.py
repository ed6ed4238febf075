"""A running local PostgreSQL + pgaudit, given by a superuser DSN, as the simulator's server.

The simulator creates its ``records`` database and roles itself (with random passwords,
since the server's pg_hba.conf may ask for them), sets pgaudit's logging per database
(``ALTER DATABASE records SET pgaudit.log ...``: no server setting changes), rotates the
log, runs, and afterwards drops the database and roles again.  The server must already
write what the time warp reads: ``logging_collector = on``, ``csvlog`` among
``log_destination``, ``log_timezone = 'UTC'``, ``pgaudit`` in
``shared_preload_libraries``; its log files must be readable here (the simulator runs on
the server's host).  Sessions of other databases running meanwhile keep their lines,
mapped to the nearest step's time.

>>> missing_requirements({"logging_collector": "off", "log_destination": "stderr",
...     "log_timezone": "UTC", "shared_preload_libraries": "pgaudit"})
["logging_collector = on (is 'off')", "csvlog in log_destination (is 'stderr')"]
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .database import SIM_SETTINGS, load_office
from .errors import SimulationError
from .forwarder import is_loopback
from .outputs import LogSet
from .pg_server import DBNAME, rotate_logs

if TYPE_CHECKING:
    import psycopg

    from .plan import Plan

#: the settings read from the server (and written to run.json)
CHECKED = (
    "logging_collector",
    "log_destination",
    "log_timezone",
    "log_line_prefix",
    "shared_preload_libraries",
    "log_connections",
    "log_disconnections",
    "server_version",
    "data_directory",
    "port",
)
FORMATS = ("stderr", "csvlog", "jsonlog")


def missing_requirements(settings: Mapping[str, str]) -> list[str]:
    """What the server lacks for a simulation, as ``setting = wanted (is ...)`` texts."""
    preload = [s.strip() for s in settings["shared_preload_libraries"].split(",")]
    checks = (
        ("logging_collector = on", "logging_collector", settings["logging_collector"] == "on"),
        ("csvlog in log_destination", "log_destination",
         "csvlog" in settings["log_destination"].split(",")),
        ("log_timezone = 'UTC'", "log_timezone", settings["log_timezone"] in ("UTC", "Etc/UTC")),
        ("pgaudit in shared_preload_libraries", "shared_preload_libraries", "pgaudit" in preload),
    )  # fmt: skip
    return [f"{want} (is {settings[key]!r})" for want, key, ok in checks if not ok]


@dataclass
class PgServer:
    """A running server reached with a superuser DSN; the interface of a ``PgCluster``
    that the simulator uses (``connect``, ``port``, ``settings``, ``stop``, ``cleanup``)."""

    dsn: str
    info: dict[str, Any]
    settings: dict[str, str]
    port: int
    host: str
    passwords: dict[str, str] = field(default_factory=dict)
    plan: Plan | None = None

    def connect(self, user: str = "", dbname: str = DBNAME, **extra: Any) -> psycopg.Connection:
        """A superuser connection (as the DSN's user) whose statements pgaudit skips."""
        import psycopg

        conn = psycopg.connect(**{**self.info, "dbname": dbname, **extra}, autocommit=True)
        conn.execute("SET pgaudit.log = 'none'")
        return conn

    def stop(self) -> None:
        """A running server is not ours to stop."""

    def cleanup(self) -> None:
        """Drop the database and roles the simulation created."""
        if self.plan is None:
            return
        from psycopg import sql

        with self.connect(dbname=self.info.get("dbname") or "postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(DBNAME)))  # fmt: skip
            for user in self.plan.org.users:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user.name)))
        self.plan = None


def open_server(dsn: str) -> PgServer:
    """Connect with ``dsn``, check it is a usable superuser connection to a local server."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() != (True,):  # fmt: skip
                raise SimulationError(f"the DSN's user is not a superuser: {dsn!r}")
            settings = {k: str(conn.execute(f"SHOW {k}").fetchone()[0]) for k in CHECKED}  # type: ignore[index]
    except psycopg.Error as exc:
        raise SimulationError(f"cannot use the PostgreSQL server of {dsn!r}: {exc}") from exc
    if missing := missing_requirements(settings):
        raise SimulationError("the server needs " + "; ".join(missing))
    host = str(info.get("host") or "127.0.0.1")
    if host.startswith("/") or host == "localhost":
        host = "127.0.0.1"  # the simulated clients come over TCP from 127.0.0.N
    if not is_loopback(host):
        raise SimulationError(
            f"the server must run on this host (its log is read here, its clients come"
            f" from 127.0.0.N): {host!r} is not a loopback address"
        )
    return PgServer(dsn, info, settings, int(settings["port"]), host)


def setup(server: PgServer, plan: Plan) -> tuple[str, str]:
    """Create the database (pgaudit settings on it) and load the office; returns versions."""
    import psycopg
    from psycopg import sql

    names = [u.name for u in plan.org.users]
    try:
        with server.connect(dbname=server.info.get("dbname") or "postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DBNAME,)).fetchone():
                raise SimulationError(f"database {DBNAME!r} exists on the server: drop it first")
            taken = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,)
            ).fetchall()
            if taken:
                raise SimulationError(f"roles of the simulated office exist: {taken}")
            server.plan = plan  # from here on, cleanup drops what was created
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
            for name, value in SIM_SETTINGS.items():
                if name.startswith("pgaudit."):
                    conn.execute(f"ALTER DATABASE {DBNAME} SET {name} = {value}")
                    server.settings[name] = value
        server.passwords = {n: secrets.token_urlsafe(12) for n in names}
        with server.connect() as conn:
            return load_office(conn, plan, server.passwords)
    except psycopg.Error as exc:
        raise SimulationError(f"setting up the records office failed: {exc}") from exc


def current_logs(ctl: psycopg.Connection, server: PgServer) -> LogSet:
    """The log files being written now (absolute paths), checked readable here."""
    data_dir = Path(server.settings["data_directory"])
    out = []
    for fmt in FORMATS:
        row = ctl.execute("SELECT pg_current_logfile(%s)", (fmt,)).fetchone()
        if row is None or row[0] is None:
            continue
        if fmt == "stderr" and not server.settings["log_line_prefix"].startswith(("%m", "%t")):
            continue  # the warp finds stderr times only at the start of a line
        path = data_dir / row[0]
        if not os.access(path, os.R_OK):
            raise SimulationError(
                f"cannot read the server's log {path}: run the simulator on the server's"
                " host as a user allowed to read it (log_file_mode, the postgres group)"
            )
        out.append(path)
    return LogSet(tuple(out))


def rotate(ctl: psycopg.Connection, server: PgServer) -> LogSet:
    """Start new log files once the simulation's other sessions have ended."""
    return rotate_logs(ctl, lambda c: current_logs(c, server), dbname=DBNAME)
