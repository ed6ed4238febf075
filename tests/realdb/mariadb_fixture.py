"""pytest plugin with the session-scoped ``mariadb_logs`` fixture: a fresh real audit log.

Register it once in ``tests/conftest.py``::

    pytest_plugins = ["realdb.mariadb_fixture"]

The fixture starts a throwaway MariaDB with server_audit (:mod:`.mariadb`), runs the
records-office workload (:mod:`.mariadb_workload`), stops the server so the log is complete
and yields the log's path. Next to it, ``server_audit.json`` holds what the workload did
(IDs looked up, outfile path, server version and time zone, start and stop times in UTC).
A machine without MariaDB fails these tests, it does not skip them: the install step is
``scripts/services/mariadb.sh``. Tests using the fixture get the ``mariadb`` marker.
(PYTEST_DONT_REWRITE: no asserts here, and doctest collection may import it first.)

Examples
--------
>>> mariadb_logs.__name__
'mariadb_logs'
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .mariadb import SERVER_TZ, MariaDBServer, MariaDBUnavailableError, find_binaries
from .mariadb_workload import run_workload


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker here too, so the plugin also works outside this repository."""
    config.addinivalue_line("markers", "mariadb: needs the real MariaDB with server_audit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real server, so ``-m "not mariadb"`` deselects them."""
    for item in items:
        if "mariadb_logs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture(scope="session")
def mariadb_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Path of a server_audit log written by a real MariaDB for the records workload."""
    try:
        find_binaries()
    except MariaDBUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    out = tmp_path_factory.mktemp("mariadb") / "server_audit.log"
    server = MariaDBServer()
    try:
        started = datetime.now(UTC)
        server.start()
        facts = run_workload(server)
        server.stop()
        stopped = datetime.now(UTC)
        shutil.copyfile(server.audit_log, out)
    finally:
        server.cleanup()
    facts |= {
        "version": server.version,
        "timezone": SERVER_TZ,
        "started": started.isoformat(),
        "stopped": stopped.isoformat(),
    }
    out.with_suffix(".json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
    yield out
