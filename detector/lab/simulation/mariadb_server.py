"""A throwaway MariaDB server with the server_audit plugin, in a temp dir.

The binaries come from the Debian package ``mariadb-server`` (installed by
``scripts/services/mariadb.sh``, which ships ``server_audit.so``).  The server runs from a
fresh data directory (``mariadb-install-db``) in a new temp dir, listens on a free port of
127.0.0.1 and on a socket inside that dir, resolves no host names (the audit log shows
client IPs) and writes its audit file there too, so nothing touches a system instance.

The simulator (:mod:`.mariadb_sim`) and the real-server tests (``tests/realdb/mariadb.py``,
which sets the tests' time zone and passwords) share this module.

>>> MariaDBServer().timezone
'UTC'
>>> "--server-audit-events=CONNECT,QUERY,TABLE" in MariaDBServer().server_args()
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import SimulationError
from .pg_server import free_port

if TYPE_CHECKING:
    from pymysql.connections import Connection

__all__ = [
    "INSTALL_HINT",
    "MariaDBServer",
    "MariaDBUnavailableError",
    "find_binaries",
    "free_port",
]

INSTALL_HINT = (
    "MariaDB is not installed: run `sudo scripts/services/mariadb.sh` "
    "(Debian 12 mariadb-server, which ships server_audit.so)"
)


class MariaDBUnavailableError(SimulationError):
    """The MariaDB binaries or the server_audit plugin are missing."""


def find_binaries() -> tuple[Path, Path]:
    """Locate ``mariadbd`` and ``mariadb-install-db`` or raise with the install hint.

    Debian puts mariadbd in /usr/sbin, which a non-root PATH often lacks, hence the fallback.
    """
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/bin"
    server = shutil.which("mariadbd", path=path)
    install = shutil.which("mariadb-install-db", path=path)
    if server is None or install is None:
        raise MariaDBUnavailableError(INSTALL_HINT)
    plugin_dir = Path("/usr/lib/mysql/plugin")
    if plugin_dir.is_dir() and not (plugin_dir / "server_audit.so").exists():
        raise MariaDBUnavailableError(f"{plugin_dir}/server_audit.so missing. {INSTALL_HINT}")
    return Path(server), Path(install)


@dataclass
class MariaDBServer:
    """One mariadbd process with server_audit logging CONNECT, QUERY and TABLE events.

    Use as a context manager; ``stop`` shuts the server down cleanly so the audit file is
    complete, and ``cleanup`` removes the temp dir.

    Parameters
    ----------
    timezone
        ``TZ`` of the server process: server_audit writes its local time.  With ``UTC``
        the SQL session default is UTC too (``--default-time-zone=+00:00``).
    extra_args
        More ``mariadbd`` options, after the defaults (a later option wins).
    keep
        Keep the temp dir after ``cleanup`` (for debugging a failed run).
    """

    timezone: str = "UTC"
    extra_args: tuple[str, ...] = ()
    keep: bool = False
    #: the temp dir, made by :meth:`start` (constructing a server has no side effects)
    base: Path = field(init=False, default=Path("exfil-mariadb-not-started"))
    port: int = field(init=False, default=0)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    version: str = field(init=False, default="")
    started: bool = field(init=False, default=False)

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_path(self) -> Path:
        return self.base / "mariadb.sock"

    @property
    def audit_log(self) -> Path:
        return self.base / "server_audit.log"

    @property
    def outfile_dir(self) -> Path:
        """``secure_file_priv``: the only place ``SELECT ... INTO OUTFILE`` may write."""
        return self.base / "outfile"

    @property
    def error_log(self) -> Path:
        return self.base / "error.log"

    @property
    def user_args(self) -> list[str]:
        """Root must hand the server to the ``mysql`` account; anyone else runs it as self."""
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def server_args(self) -> list[str]:
        """Options after ``mariadbd``: everything explicit, no option files read."""
        zone = ["--default-time-zone=+00:00"] if self.timezone == "UTC" else []
        return [
            "--no-defaults",
            *self.user_args,
            f"--datadir={self.datadir}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base / 'mariadbd.pid'}",
            f"--log-error={self.error_log}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--secure-file-priv={self.outfile_dir}",
            *zone,
            "--plugin-load-add=server_audit",
            "--server-audit-logging=ON",
            "--server-audit-events=CONNECT,QUERY,TABLE",
            f"--server-audit-file-path={self.audit_log}",
            "--server-audit-file-rotate-size=1G",
            # Small InnoDB footprint: start-up time is what the tests pay for.
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--skip-innodb-doublewrite",
            "--innodb-flush-log-at-trx-commit=0",
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> MariaDBServer:
        """Initialise the data directory, start mariadbd and wait until it accepts root."""
        server, install = find_binaries()
        self.base = Path(tempfile.mkdtemp(prefix="exfil-mariadb-"))
        self.started = True
        self.port = free_port()
        self.datadir.mkdir()
        self.outfile_dir.mkdir()
        # mkdtemp makes the dir 0700 for root; mariadbd runs as mysql and must write in it.
        for path in (self.base, self.datadir, self.outfile_dir) if self.user_args else ():
            shutil.chown(path, "mysql", "mysql")
        try:
            subprocess.run(
                [str(install), "--no-defaults", *self.user_args, f"--datadir={self.datadir}",
                 "--auth-root-authentication-method=normal", "--skip-test-db",
                 "--skip-name-resolve"],
                check=True, capture_output=True, timeout=timeout,
            )  # fmt: skip
            self.version = subprocess.run(
                [str(server), "--version"], check=True, capture_output=True, text=True
            ).stdout.strip()
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", None) or b""
            text = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
            raise SimulationError(f"could not initialise MariaDB in {self.base}: {text}") from exc
        env = dict(os.environ, TZ=self.timezone)
        self.proc = subprocess.Popen(
            [str(server), *self.server_args()],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import pymysql

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SimulationError(f"mariadbd exited early:\n{self._error_tail()}")
            if self.socket_path.exists():
                try:
                    pymysql.connect(unix_socket=str(self.socket_path), user="root").close()
                    return
                except pymysql.err.OperationalError:
                    pass
            time.sleep(0.05)
        raise SimulationError(f"mariadbd not ready after {timeout} s:\n{self._error_tail()}")

    def _error_tail(self) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no error log)"

    def admin(self) -> Connection:
        """Root connection over the socket (root has no password on this throwaway server)."""
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket_path), user="root", autocommit=True)

    def connect(
        self, user: str, password: str = "", database: str | None = None, **extra: Any
    ) -> Connection:
        """A client connection over TCP 127.0.0.1, as an application would open it."""
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=password,
            database=database, autocommit=True, connect_timeout=5, **extra,
        )  # fmt: skip

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM) so server_audit closes its file; kill if stuck."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self.started and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
