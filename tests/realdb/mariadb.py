"""A throwaway MariaDB server with the server_audit plugin, for tests that need real logs.

The server code lives in :mod:`detector.lab.simulation.mariadb_server` (the simulator starts its
own servers); this module re-exports it with the tests' defaults: a non-UTC server time
zone and the workload accounts' passwords. Install the binaries with
``scripts/services/mariadb.sh``.

Examples
--------
>>> free_port() > 0
True
>>> MariaDBServer().timezone
'Asia/Shanghai'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detector.lab.simulation import mariadb_server
from detector.lab.simulation.mariadb_server import (
    INSTALL_HINT,
    MariaDBUnavailableError,
    find_binaries,
    free_port,
)

if TYPE_CHECKING:
    from pymysql.connections import Connection

__all__ = [
    "INSTALL_HINT",
    "PASSWORDS",
    "SERVER_TZ",
    "MariaDBServer",
    "MariaDBUnavailableError",
    "find_binaries",
    "free_port",
]

#: The server writes audit timestamps in its local time; a non-UTC zone with no DST makes
#: the parser's zone conversion observable in the tests without DST ambiguity.
SERVER_TZ = "Asia/Shanghai"
#: Passwords of the workload accounts; throwaway server, loopback only.
PASSWORDS = {"officer1": "officer1-pw", "analyst1": "analyst1-pw", "etl_batch": "etl-pw"}


@dataclass
class MariaDBServer(mariadb_server.MariaDBServer):
    """The package's server in :data:`SERVER_TZ`; :meth:`connect` knows the passwords."""

    timezone: str = SERVER_TZ

    def connect(
        self, user: str, password: str | None = None, database: str | None = None, **extra: Any
    ) -> Connection:
        """A client connection over TCP 127.0.0.1 (password from :data:`PASSWORDS`)."""
        pw = PASSWORDS.get(user, "") if password is None else password
        return super().connect(user, pw, database, **extra)
