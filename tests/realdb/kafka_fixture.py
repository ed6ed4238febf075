"""pytest plugin with the session-scoped ``kafka_broker`` fixture: a real Apache Kafka broker.

Register it once in ``tests/conftest.py``::

    pytest_plugins = ["realdb.mariadb_fixture", "realdb.kafka_fixture"]

One broker per session (a JVM start costs seconds on CI's two cores) in a temp dir, started
by ``scripts/kafka.sh`` through :class:`.kafka.KafkaBroker` and stopped at the end; tests
share it, so each uses its own topic and group names. Tests that need a broker of their own
(restarts, crashes) use ``kafka_available`` and a :class:`.kafka.KafkaBroker` in
``tmp_path``. A machine without Java 17 or the broker jars fails these tests, it does not
skip them: the install step is ``scripts/services/kafka.sh``. Tests using either fixture get
the ``kafka`` marker (``-m "not kafka"`` deselects them).
A failed Kafka test's report carries the broker's consumer-group log (joins, rebalances,
members removed on heartbeat expiration): :func:`group_log`. :func:`cpu_hog` keeps the
machine's cores busy around a test that must pass under load.
(PYTEST_DONT_REWRITE: no asserts here, and doctest collection may import it first.)

Examples
--------
>>> sorted(KAFKA_FIXTURES)
['kafka_available', 'kafka_broker']
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kafka import KafkaBroker, KafkaUnavailableError, check_available

#: Tests using any of these get the ``kafka`` marker.
KAFKA_FIXTURES = frozenset({"kafka_available", "kafka_broker"})


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker here too, so the plugin also works outside this repository."""
    config.addinivalue_line("markers", "kafka: needs a real Apache Kafka broker")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real broker, so ``-m "not kafka"`` deselects them."""
    for item in items:
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_available() -> None:
    """Fail (not skip) the test when Java 17 or the broker jars are missing."""
    missing = None
    try:
        check_available()
    except KafkaUnavailableError as exc:
        missing = str(exc)
    if missing:  # failed outside the except: the report shows the reason, not a chain
        pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker(
    kafka_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A running broker shared by the session (``.bootstrap`` for clients)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:  # a start that timed out may still have left a JVM behind
        broker.start()
        yield broker
    finally:
        broker.stop()


#: Lines of a broker's log about consumer groups, the last ones shown with a failure.
GROUP_LOG_LINES = 120


def group_log(logs: list[Path], lines: int = GROUP_LOG_LINES) -> str:
    """The consumer-group lines of brokers' ``server.log`` files, the last ``lines``."""
    picked: list[str] = []
    for log in logs:
        with contextlib.suppress(OSError):
            text = log.read_text(encoding="utf-8", errors="replace")
            picked += [f"{log.parent.parent.name}: {ln}" for ln in text.splitlines()
                       if "GroupCoordinator" in ln or "GroupMetadataManager" in ln]  # fmt: skip
    return "\n".join(picked[-lines:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed (or timed out) Kafka test shows what the broker saw of its groups."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed or item.get_closest_marker("kafka") is None:
        return
    funcargs = getattr(item, "funcargs", {})
    logs = []
    broker = funcargs.get("kafka_broker")
    if broker is not None:
        logs.append(broker.directory / "logs" / "server.log")
    tmp = funcargs.get("tmp_path")
    if tmp is not None:
        logs += sorted(Path(tmp).rglob("logs/server.log"))
    text = group_log(logs)
    if text:
        report.sections.append(("kafka broker: consumer groups", text))


#: a busy loop that ends when the test process is gone (killed: no ``finally`` runs), so a
#: hog never outlives its test and skews whatever runs next on the machine
_HOG = """
import os, sys
parent = int(sys.argv[1])
while True:
    for _ in range(2_000_000):
        pass
    if os.getppid() != parent:
        break
"""


@contextlib.contextmanager
def cpu_hog(processes: int | None = None) -> Iterator[None]:
    """Busy processes (one per core by default) for the duration of the block."""
    count = processes or os.cpu_count() or 2
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG, str(os.getpid())]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)
