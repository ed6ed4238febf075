"""A throwaway PostgreSQL 15 + pgaudit cluster for the tests.

The cluster code lives in :mod:`detector.lab.simulation.pg_server` (the simulator starts its
own servers); this module re-exports it with the tests' defaults: pgaudit's OBJECT audit
role ``auditor`` and ``pgaudit.log = 'read, write, ddl, misc'`` in every cluster, and a
pg_hba.conf in which ``officer2`` must log in with a password (so a failed login can be
produced) while everybody else is trusted on loopback and the local socket.
"""

from __future__ import annotations

from collections.abc import Mapping

from detector.lab.simulation import pg_server
from detector.lab.simulation.pg_server import (
    DBNAME,
    INSTALL_HINT,
    PG_MAJOR,
    PgCluster,
    PgNotInstalledError,
    find_bindir,
    free_port,
    wait_files_stable,
)

__all__ = [
    "BASE_SETTINGS",
    "DBNAME",
    "HBA",
    "INSTALL_HINT",
    "PG_MAJOR",
    "PgCluster",
    "PgNotInstalledError",
    "find_bindir",
    "free_port",
    "start_cluster",
    "wait_files_stable",
]

#: postgresql.conf settings of every test cluster (log_line_prefix is changed per phase later).
BASE_SETTINGS: Mapping[str, str] = {
    **pg_server.BASE_SETTINGS,
    "pgaudit.log": "'read, write, ddl, misc'",
    "pgaudit.role": "'auditor'",
}

HBA = """\
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      trust
host    all       officer2  127.0.0.1/32   scram-sha-256
host    all       all       127.0.0.1/32   trust
"""


def start_cluster(settings: Mapping[str, str] | None = None) -> PgCluster:
    """initdb + start a test cluster in a new temp dir (``EXFIL_KEEP_PG=1`` keeps it on exit).

    ``settings`` are extra postgresql.conf lines (values as they appear in the file), on top
    of :data:`BASE_SETTINGS`.
    """
    extra = {k: v for k, v in BASE_SETTINGS.items() if k not in pg_server.BASE_SETTINGS}
    return pg_server.start_cluster({**extra, **(settings or {})}, hba=HBA)
