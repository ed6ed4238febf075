"""Shared fixtures: real audit logs produced by a throwaway PostgreSQL 15 + pgaudit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

#: The MariaDB and Kafka fixtures live beside their server helpers (tests/ is not a package).
pytest_plugins = ["realdb.mariadb_fixture", "realdb.kafka_fixture"]

if TYPE_CHECKING:
    from realdb.pg_workload import PgLogs


@pytest.fixture(scope="session")
def pg_logs() -> Iterator[PgLogs]:
    """Run the records-office workload once per session; the server is stopped when yielded.

    Fails (does not skip) when PostgreSQL 15 / pgaudit are missing: CI installs them with
    ``scripts/services/postgres.sh``.  ``EXFIL_KEEP_PG=1`` keeps the temp dir for inspection.
    """
    from realdb.pg_workload import generate
    from realdb.postgres import PgNotInstalledError, find_bindir

    missing = None
    try:
        find_bindir()
    except PgNotInstalledError as e:
        missing = str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    cluster, logs = generate()
    with cluster:
        yield logs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use ``pg_logs`` are ``postgres`` tests (``-m 'not postgres'`` skips them)."""
    for item in items:
        if "pg_logs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
