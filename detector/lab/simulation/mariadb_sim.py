"""Plan -> real MariaDB + server_audit -> the run's part of the audit file, time-warped.

The server is a throwaway one (:mod:`.mariadb_server`, UTC) or a running local one given by
a superuser DSN (``mariadb://user:password@host:port/``): the simulator then sets the
server_audit settings it needs for the run (:data:`.mariadb_database.AUDIT_SETTINGS`, put
back afterwards), creates the ``records`` database and accounts, and drops them again.
The audit file is read locally (``@@server_audit_file_path``, relative to ``@@datadir``).

The run's part of the file starts after setup (the admin account is excluded from
auditing, and its disconnect is waited for) and ends with the last step's lines; it is
copied and warped byte for byte but the leading timestamp of each line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import mariadb_database as mdb
from . import timewarp
from .errors import SimulationError
from .forwarder import is_loopback
from .mariadb_runner import AuditTail, MariaDBBackend
from .mariadb_server import MariaDBServer
from .outputs import LogSet, SimulationResult, run_summary, write_json, write_plan_files
from .plan import Plan
from .runner import RunRecord, run_plan
from .sessions import from_ms


def _admin(server: MariaDBServer | None, dsn: str | None) -> tuple[Any, str]:
    """A superuser connection and its user name."""
    import pymysql

    if server is not None:
        return server.admin(), "root"
    args = mdb.parse_dsn(dsn or "")
    try:
        conn = pymysql.connect(**args, autocommit=True, connect_timeout=10)
    except pymysql.MySQLError as exc:
        raise SimulationError(f"cannot connect to MariaDB with {dsn!r}: {exc}") from exc
    return conn, args["user"]


def _read_part(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(length)
    if len(data) != length:
        raise SimulationError(f"{path} is shorter than the run's part ({start}+{length})")
    return data


def _run(
    plan: Plan,
    info: mdb.ServerInfo,
    host: str,
    admin_id: int,
    audit_size: int,
    passwords: dict[str, str],
    say: Callable[[str], None],
) -> tuple[RunRecord, bytes, list[int]]:
    """The workload: returns the record, the run's part of the audit file, step ends."""
    tail = AuditTail(info.audit_file, audit_size)
    try:
        # the setup connection's disconnect is the last line before the run
        tail.wait(lambda: admin_id in tail.disconnected, "the setup connection's DISCONNECT")
        tail.start = tail.pos
        backend = MariaDBBackend(host, info.port, mdb.DBNAME, passwords, tail)
        record = run_plan(plan, backend, lambda n, total: say(f"step {n}/{total}"))
        ends = tail.ends
        data = _read_part(info.audit_file, tail.start, ends[-1] if ends else 0)
    finally:
        tail.close()
    return record, data, ends


def simulate_mariadb(
    plan: Plan,
    out: Path,
    *,
    dsn: str | None = None,
    keep_raw: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Run ``plan`` on MariaDB; see :func:`.simulate.simulate` (``db="mariadb"``)."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("server_audit-*.log"):
        old.unlink()
    host = "127.0.0.1"
    if dsn is not None:
        host = str(mdb.parse_dsn(dsn)["host"])
        if not is_loopback(host):
            raise SimulationError(
                f"the server must run on this host (its log is read here, its clients come"
                f" from 127.0.0.N): {host!r} is not a loopback address"
            )
        host = "127.0.0.1" if host == "localhost" else host
    server = None if dsn else MariaDBServer(extra_args=mdb.SERVER_ARGS)
    restore: dict[str, str] = {}
    created = False
    try:
        if server is not None:
            server.start()
        admin, admin_user = _admin(server, dsn)
        with admin:
            admin_id = admin.thread_id()
            info = mdb.inspect_server(admin)
            if not os.access(info.audit_file, os.R_OK):
                raise SimulationError(
                    f"cannot read the server_audit file {info.audit_file}: run the simulator"
                    " on the server's host as a user allowed to read it"
                )
            audit_size = info.audit_file.stat().st_size
            if not info.skip_name_resolve:
                say("note: skip_name_resolve is off: client hosts may be logged as names")
            restore = mdb.configure_audit(admin, admin_user)
            mdb.check_absent(admin, plan)
            created = True
            passwords = mdb.setup_office(admin, plan)
        say(f"MariaDB {info.version}, server_audit {info.audit_version};"
            f" {len(plan.data.citizens)} citizens loaded")  # fmt: skip
        record, raw_bytes, ends = _run(plan, info, host, admin_id, audit_size, passwords, say)
    finally:
        if server is not None:
            server.cleanup()
        elif restore or created:
            admin, _ = _admin(None, dsn)
            with admin:
                if created:
                    mdb.drop_office(admin, plan)
                mdb.restore_audit(admin, restore)
    say(f"ran {plan.statements} statements in {len(plan.sessions)} sessions"
        f" in {record.seconds:.1f} s; {len(record.errors)} errors")  # fmt: skip
    warped = timewarp.warp_audit(raw_bytes, record.timeline, ends, info.utc_offset_ms)
    first = timewarp.first_audit_time(warped)
    stamp = from_ms(first if first is not None else 0).strftime("%Y-%m-%d_%H%M%S")
    log = out / f"server_audit-{stamp}.log"
    log.write_bytes(warped)
    raw = None
    if keep_raw:
        (out / "raw").mkdir(exist_ok=True)
        (out / "raw" / log.name).write_bytes(raw_bytes)
        raw = LogSet((out / "raw" / log.name,))
    labels = write_plan_files(out, plan, record, resolution_ms=1000)
    write_json(out / "timeline.json", {**record.timeline.to_json(), "audit_ends": ends,
                                       "utc_offset_ms": info.utc_offset_ms})  # fmt: skip
    seconds = time.monotonic() - started
    # the settings in effect during the run (syslog ones and the temp path left out)
    settings = {k: v for k, v in info.settings.items() if k in mdb.REPORTED_SETTINGS}
    settings |= {**mdb.AUDIT_SETTINGS, "server_audit_excl_users": admin_user}
    run = {
        "db": "mariadb",
        "server_version": info.version,
        "server_audit_version": info.audit_version,
        "settings": settings,
        "utc_offset_minutes": info.utc_offset_ms // 60_000,
        **run_summary(plan, record, (log,), seconds),
        "replay": [log.name],
    }
    write_json(out / "run.json", run)
    return SimulationResult(
        out, LogSet((log,)), raw, labels, record, info.version, info.audit_version, seconds,
        db="mariadb",
    )  # fmt: skip
