"""A real single-node Apache Kafka broker in a directory, for tests that need Kafka.

The broker recipe (config, KRaft storage format, JVM options, readiness check, clean stop)
lives in ``scripts/kafka.sh`` alone, which users run too; this class only drives it, so the
tests exercise exactly what users get. The jars are fetched by
``scripts/services/kafka.sh``: a machine without them (or without Java 17) gets a
:class:`KafkaUnavailableError` naming what is missing, never a silent download in a test.

Examples
--------
>>> broker = KafkaBroker(Path("/tmp/nowhere"), port=19092)
>>> broker.bootstrap
'127.0.0.1:19092'
>>> 1024 <= free_port() <= 65535
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from realdb.ports import free_port

__all__ = [
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaUnavailableError",
    "check_available",
    "free_port",
]

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
SERVICE_SH = ROOT / "scripts" / "services" / "kafka.sh"
INSTALL_HINT = "install with: bash scripts/services/kafka.sh"

#: Covers the script's own 60 s readiness wait plus the first start's storage format.
START_TIMEOUT_S = 150.0
#: The script waits 30 s for a clean shutdown, then SIGKILLs and waits up to 10 s more.
STOP_TIMEOUT_S = 60.0


class KafkaBrokerError(RuntimeError):
    """``scripts/kafka.sh`` failed; the message carries its output (and the log tail)."""


class KafkaUnavailableError(KafkaBrokerError):
    """Java 17 or the Kafka broker jars are missing on this machine."""


def check_available() -> Path:
    """The cached broker jars' directory, or :class:`KafkaUnavailableError` naming the gap."""
    if shutil.which("java") is None:
        raise KafkaUnavailableError(
            f"Java 17 (java) is not on PATH: the Kafka broker needs it; {INSTALL_HINT}"
        )
    proc = subprocess.run(
        ["bash", str(SERVICE_SH), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise KafkaUnavailableError(
            proc.stderr.strip() or f"Kafka broker unavailable; {INSTALL_HINT}"
        )
    return Path(proc.stdout.strip())


class KafkaBroker:
    """One broker living in ``directory``; its port is fixed at construction, so a
    restarted broker keeps the bootstrap address clients were given.

    Use as a context manager (start on enter, stop on exit) or call :meth:`start` and
    :meth:`stop`. :meth:`kill` is a SIGKILL, to test recovery from a crash.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory)
        self.port = free_port() if port is None else port

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap_servers`` value for clients."""
        return f"127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        # The scripts' readiness check imports kafka-python: this interpreter has it even
        # when the tests do not run from the repository's .venv.
        env = os.environ | {"EXFIL_KAFKA_PYTHON": sys.executable}
        return subprocess.run(
            ["bash", str(KAFKA_SH), args[0], str(self.directory), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=env,
        )

    def _check(self, proc: subprocess.CompletedProcess[str], what: str) -> str:
        if proc.returncode != 0:
            out = "\n".join(s.strip() for s in (proc.stdout, proc.stderr) if s.strip())
            raise KafkaBrokerError(f"scripts/kafka.sh {what} {self.directory} failed:\n{out}")
        return proc.stdout

    def start(self) -> None:
        """Start (formatting the storage the first time) and return once it answers."""
        check_available()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check(self._run("start", str(self.port), timeout=START_TIMEOUT_S), "start")

    def stop(self) -> None:
        """Clean shutdown (SIGTERM; the script SIGKILLs after 30 s). No-op when stopped."""
        self._check(self._run("stop", timeout=STOP_TIMEOUT_S), "stop")

    def restart(self) -> None:
        """Stop then start on the same directory and port: topics and data are kept."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; :meth:`start` recovers its logs."""
        self._check(self._run("kill", timeout=STOP_TIMEOUT_S), "kill")

    @property
    def running(self) -> bool:
        """What ``scripts/kafka.sh status`` says (exit 0 running, 3 stopped)."""
        proc = self._run("status", timeout=30)
        if proc.returncode not in (0, 3):
            self._check(proc, "status")
        return proc.returncode == 0

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
