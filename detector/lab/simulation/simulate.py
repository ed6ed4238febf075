"""Plan -> real server -> time-warped logs, labels and detector configuration in one call.

Output directory::

    postgresql-<first simulated time>.csv / .json / .log   PostgreSQL's logs, simulated times
    server_audit-<first simulated time>.log                 or MariaDB's audit file
    labels.json     one object per (scenario, user): scenario, kind, user, start, end (ISO
                    8601 UTC), negative, variant, description
    users.json      the organisation: period, roles and habits, users, client addresses
    catalog.toml    the sensitivity catalog of the three tables, with their loaded rows
    config.toml     detector configuration: log format, catalog, every user's role
    run.json        server versions and settings, counts, errors, real run time, ``db``,
                    ``replay`` (the log files to replay: the csvlog, or the audit file)
    timeline.json   real step spans -> simulated starts (re-warp or debug with it)
    raw/            the logs as the server wrote them (``keep_raw``)

``exfil-detector replay DIR/<replay files> --config DIR/config.toml`` replays a run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import pg_dsn, timewarp
from .database import SIM_SETTINGS, setup_database
from .errors import SimulationError
from .forwarder import Forwarders
from .outputs import (
    LogSet,
    SimulationResult,
    describe_org,
    run_summary,
    write_detector_files,
    write_json,
    write_plan_files,
)
from .pg_server import DBNAME, LogFiles, PgCluster, quiesce, rotate_logs, start_cluster
from .plan import Plan
from .runner import connector, run_plan
from .sessions import from_ms

__all__ = ["DATABASES", "SimulationResult", "describe_org", "simulate"]

DATABASES = ("postgres", "mariadb")
#: settings that name the temp dir or port of one run
TEMP_SETTINGS = frozenset({"log_directory", "unix_socket_directories", "port", "data_directory"})


def simulate(
    plan: Plan,
    out: Path,
    *,
    db: str = "postgres",
    dsn: str | None = None,
    keep_raw: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Run ``plan`` on a real server, write the outputs into ``out``.

    Parameters
    ----------
    plan
        What to run (:func:`.plan.build_plan`).
    out
        Output directory (created; earlier log files of the same backend are removed).
    db
        ``"postgres"`` (PostgreSQL 15 + pgaudit) or ``"mariadb"`` (MariaDB + server_audit).
    dsn
        A running local server to use instead of a throwaway one: a superuser DSN
        (``postgresql://...`` or ``mariadb://user:password@host:port/``).  The simulator
        creates its ``records`` database and users, reads the server's log files here,
        and drops what it created afterwards (see :mod:`.pg_dsn`, :mod:`.mariadb_sim`).
    keep_raw
        Also copy the logs as the server wrote them into ``out/raw``.
    progress
        Called with one-line progress messages.

    Returns
    -------
    SimulationResult
        Paths of the warped (and raw) logs, the labels as run, the run record.

    Raises
    ------
    SimulationError
        Unknown ``db``, a server that cannot be started, reached or read.

    Examples
    --------
    Needs PostgreSQL 15 + pgaudit (``scripts/services/postgres.sh``) or MariaDB
    (``scripts/services/mariadb.sh``)::

        org = build_org(users=6, days=2, citizens=2000)
        plan = build_plan(org, default_scenarios(org, 0.05))
        result = simulate(plan, Path("sim"), db="mariadb")
    """
    if db not in DATABASES:
        raise SimulationError(f"unknown database {db!r}: choose one of {', '.join(DATABASES)}")
    if db == "mariadb":
        from .mariadb_sim import simulate_mariadb

        result = simulate_mariadb(plan, out, dsn=dsn, keep_raw=keep_raw, progress=progress)
    else:
        result = _simulate_postgres(plan, out, dsn=dsn, keep_raw=keep_raw, progress=progress)
    write_detector_files(out, plan, db)
    return result


def _simulate_postgres(
    plan: Plan,
    out: Path,
    *,
    dsn: str | None,
    keep_raw: bool,
    progress: Callable[[str], None] | None,
) -> SimulationResult:
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("postgresql-*"):
        old.unlink()
    cluster: PgCluster | pg_dsn.PgServer
    cluster = start_cluster(SIM_SETTINGS) if dsn is None else pg_dsn.open_server(dsn)
    try:
        if isinstance(cluster, PgCluster):
            server, pgaudit = setup_database(cluster, plan)
            target, passwords = ("127.0.0.1", cluster.port), None
        else:
            server, pgaudit = pg_dsn.setup(cluster, plan)
            target, passwords = (cluster.host, cluster.port), cluster.passwords
        say(f"PostgreSQL {server}, pgaudit {pgaudit}; {len(plan.data.citizens)} citizens loaded")
        with cluster.connect("harness") as ctl:
            files = _rotate(ctl, cluster)
            with Forwarders(target, plan.client_ips()) as fw:
                record = run_plan(
                    plan,
                    connector(fw.address, DBNAME, passwords),
                    lambda n, total: say(f"step {n}/{total}"),
                )
            quiesce(ctl, dbname=None if isinstance(cluster, PgCluster) else DBNAME)
            _rotate(ctl, cluster)
        cluster.stop()
        say(f"ran {plan.statements} statements in {len(plan.sessions)} sessions"
            f" in {record.seconds:.1f} s; {len(record.errors)} errors")  # fmt: skip
        first = min(
            (t for f in files.all() if (t := timewarp.first_time(f)) is not None), default=None
        )
        stamp = from_ms(record.timeline.to_sim(first) if first else 0).strftime("%Y-%m-%d_%H%M%S")
        names = tuple(out / f"postgresql-{stamp}{f.suffix}" for f in files.all())
        warped = LogFiles(*names) if isinstance(files, LogFiles) else LogSet(names)
        for src, dest in zip(files.all(), warped.all(), strict=True):
            timewarp.warp_file(src, dest, record.timeline)
        raw = None
        if keep_raw:
            (out / "raw").mkdir(exist_ok=True)
            raw_names = tuple(out / "raw" / f.name for f in files.all())
            raw = LogFiles(*raw_names) if isinstance(files, LogFiles) else LogSet(raw_names)
            for src, dest in zip(files.all(), raw.all(), strict=True):
                shutil.copyfile(src, dest)
    finally:
        cluster.cleanup()
    labels = write_plan_files(out, plan, record)
    write_json(out / "timeline.json", record.timeline.to_json())
    seconds = time.monotonic() - started
    result = SimulationResult(out, warped, raw, labels, record, server, pgaudit, seconds)
    write_json(
        out / "run.json",
        {
            "db": "postgres",
            "server_version": server,
            "pgaudit_version": pgaudit,
            "settings": {k: v.strip("'") for k, v in cluster.settings.items()
                         if k not in TEMP_SETTINGS},
            **run_summary(plan, record, warped.all(), seconds),
            "replay": [p.name for p in result.replay],
        },
    )  # fmt: skip
    return result


def _rotate(ctl: Any, cluster: PgCluster | pg_dsn.PgServer) -> LogFiles | LogSet:
    """New log files: all three formats of a throwaway cluster, or what a server writes."""
    if isinstance(cluster, PgCluster):
        return rotate_logs(ctl)
    return pg_dsn.rotate(ctl, cluster)
