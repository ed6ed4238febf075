"""A throwaway PostgreSQL 15 + pgaudit cluster in a temp dir.

The binaries come from the Debian packages installed by ``scripts/services/postgres.sh``
(``postgresql-15`` and ``postgresql-15-pgaudit``).  The cluster lives in a fresh temp dir,
listens on a free TCP port of 127.0.0.1 and writes its log through the logging collector in
all three formats at once (``stderr``, ``csvlog``, ``jsonlog``).

PostgreSQL refuses to run as root: when we run as root, ``initdb`` and ``pg_ctl`` run as
the ``postgres`` OS user through ``runuser``, and the temp dir is owned by it.

The simulator (``python -m detector.lab.simulation``) and the real-server tests
(``tests/realdb/postgres.py`` re-exports this module with the tests' own defaults) share it.

>>> BASE_SETTINGS["log_destination"], BASE_SETTINGS["log_timezone"]
("'stderr,csvlog,jsonlog'", "'UTC'")
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import psycopg

PG_MAJOR = 15
INSTALL_HINT = (
    f"PostgreSQL {PG_MAJOR} + pgaudit is not installed: run `scripts/services/postgres.sh` "
    f"as root (installs postgresql-{PG_MAJOR} and postgresql-{PG_MAJOR}-pgaudit)"
)
DBNAME = "records"

#: postgresql.conf settings of every cluster (values as they appear in the file).
BASE_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'pgaudit'",
    "logging_collector": "on",
    "log_destination": "'stderr,csvlog,jsonlog'",
    # PostgreSQL's own default name: the time in the name makes each rotation a new file.
    "log_filename": "'postgresql-%Y-%m-%d_%H%M%S.log'",
    "log_file_mode": "0644",
    "log_rotation_age": "0",
    "log_rotation_size": "0",
    "log_timezone": "'UTC'",
    "timezone": "'UTC'",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_line_prefix": "'%m [%p] '",
    "lc_messages": "'C'",
    # speed: a throwaway cluster needs no durability
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

#: pg_hba.conf: everybody is trusted on the local socket and on all of 127.0.0.0/8 (the
#: simulator's clients come from 127.0.0.N through source-address forwarders).
HBA = """\
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      trust
host    all       all       127.0.0.0/8    trust
"""


class PgNotInstalledError(RuntimeError):
    """The PostgreSQL 15 binaries or the pgaudit library are missing."""


def find_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres of PostgreSQL 15 with pgaudit next to it.

    ``EXFIL_PG_BINDIR`` overrides the Debian location ``/usr/lib/postgresql/15/bin``.
    Raises :class:`PgNotInstalledError` with an install hint if anything is missing.
    """
    bindir = Path(os.environ.get("EXFIL_PG_BINDIR", f"/usr/lib/postgresql/{PG_MAJOR}/bin"))
    missing = [n for n in ("initdb", "pg_ctl", "postgres") if not (bindir / n).is_file()]
    if missing:
        raise PgNotInstalledError(f"{INSTALL_HINT} (missing {', '.join(missing)} in {bindir})")
    pkglibdir = bindir.parent / "lib"
    if not (pkglibdir / "pgaudit.so").is_file():
        raise PgNotInstalledError(f"{INSTALL_HINT} (missing {pkglibdir}/pgaudit.so)")
    return bindir


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now.

    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return list(cmd)


@dataclass
class PgCluster:
    """A running (or stopped) throwaway cluster; use :func:`start_cluster`."""

    base: Path
    bindir: Path
    port: int
    settings: dict[str, str] = field(default_factory=dict)
    running: bool = False
    hba: str = HBA

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logdir(self) -> Path:
        return self.base / "log"

    @property
    def sockdir(self) -> Path:
        return self.base / "sock"

    def conninfo(self, user: str, dbname: str = DBNAME, **extra: object) -> dict[str, object]:
        """Keyword arguments for ``psycopg.connect`` over TCP 127.0.0.1."""
        info: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": user,
            "dbname": dbname,
            "sslmode": "disable",
            "connect_timeout": 10,
        }
        info.update(extra)
        return info

    def connect(self, user: str, dbname: str = DBNAME, **extra: Any) -> psycopg.Connection:
        """A psycopg connection (autocommit unless told otherwise)."""
        import psycopg

        extra.setdefault("autocommit", True)
        return psycopg.connect(**self.conninfo(user, dbname, **extra))

    def _run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            _as_postgres([str(self.bindir / cmd[0]), *cmd[1:]]),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                f"{self.diagnostics()}"
            )
        return proc

    def diagnostics(self) -> str:
        """Tail of pg_ctl's log and of the newest stderr log, for error messages."""
        out = []
        candidates = [self.base / "pg_ctl.log"]
        if self.logdir.is_dir():
            candidates += sorted(self.logdir.glob("*.log"))[-1:]
        for p in candidates:
            if p.is_file():
                out.append(
                    f"--- {p}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                )
        return "\n".join(out)

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth=trust",
            "--no-sync",
        )
        conf = dict(BASE_SETTINGS)
        conf["port"] = str(self.port)
        conf["log_directory"] = f"'{self.logdir}'"
        conf["unix_socket_directories"] = f"'{self.sockdir}'"
        conf.update(self.settings)
        self.settings = conf
        with (self.datadir / "postgresql.conf").open("a") as f:
            f.write("\n# exfil-detector throwaway cluster (detector/lab/simulation/pg_server.py)\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        (self.datadir / "pg_hba.conf").write_text(self.hba)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "pg_ctl.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def _logger_pid(self) -> int | None:
        """pid of the logging collector (a child of the postmaster), if found."""
        try:
            postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == postmaster and cmdline.startswith(b"postgres: logger"):
                return int(proc.name)
        return None

    def stop(self) -> None:
        """Fast shutdown, then wait until the logging collector has exited (files complete)."""
        if not self.running:
            return
        logger = self._logger_pid()
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop")
        self.running = False
        deadline = time.monotonic() + 10
        while logger is not None and Path(f"/proc/{logger}").exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        wait_files_stable(self.logdir.glob("*"))

    def cleanup(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        if os.environ.get("EXFIL_KEEP_PG"):
            self.stop()
        else:
            self.cleanup()


def wait_files_stable(paths: Iterable[Path], quiet: float = 0.3, timeout: float = 10) -> None:
    """Poll until the sizes of ``paths`` have not changed for ``quiet`` seconds."""
    paths = list(paths)
    deadline = time.monotonic() + timeout
    last: list[int] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        sizes = [p.stat().st_size if p.exists() else -1 for p in paths]
        if sizes != last:
            last, stable_since = sizes, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return
        time.sleep(0.05)


def start_cluster(settings: Mapping[str, str] | None = None, hba: str = HBA) -> PgCluster:
    """initdb + start a cluster in a new temp dir (``EXFIL_KEEP_PG=1`` keeps it on exit).

    ``settings`` are extra postgresql.conf lines (values as they appear in the file);
    ``hba`` is the whole pg_hba.conf.
    """
    bindir = find_bindir()
    base = Path(tempfile.mkdtemp(prefix="exfil-pg-"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
    cluster = PgCluster(
        base=base, bindir=bindir, port=free_port(), settings=dict(settings or {}), hba=hba
    )
    try:
        cluster._run("postgres", "--version")  # fails early if not runnable as postgres
        for d in (cluster.logdir, cluster.sockdir):
            subprocess.run(_as_postgres(["mkdir", "-p", str(d)]), check=True)
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.cleanup()
        raise
    return cluster


# --------------------------------------------------------------------------- log files


@dataclass(frozen=True)
class LogFiles:
    """The files the logging collector is writing, one per destination."""

    stderr: Path
    csv: Path
    json: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.stderr, self.csv, self.json)


def current_log_files(ctl: psycopg.Connection) -> LogFiles:
    """The files being written now (``ctl`` is a superuser connection)."""
    row = ctl.execute(
        "SELECT pg_current_logfile('stderr'), pg_current_logfile('csvlog'),"
        " pg_current_logfile('jsonlog')"
    ).fetchone()
    if row is None or not all(row):
        raise RuntimeError(f"logging collector not writing all formats: {row}")
    return LogFiles(*(Path(p) for p in row))


def quiesce(ctl: psycopg.Connection, settle: float = 0.3, dbname: str | None = None) -> None:
    """Wait until no other client backend (of ``dbname``, if given) is alive, then let the
    collector drain its pipe."""
    deadline = time.monotonic() + 10
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    while time.monotonic() < deadline:
        if dbname is None:
            row = ctl.execute(query).fetchone()
        else:
            row = ctl.execute(query + " AND datname = %s", (dbname,)).fetchone()
        if row is not None and row[0] == 0:
            break
        time.sleep(0.02)
    time.sleep(settle)


class _Files(Protocol):
    def all(self) -> tuple[Path, ...]: ...


F = TypeVar("F", bound=_Files)


def rotate_logs(
    ctl: psycopg.Connection,
    current: Callable[[psycopg.Connection], F] = current_log_files,  # type: ignore[assignment]
    dbname: str | None = None,
) -> F:
    """Start new log files and return them (as ``current`` lists them).

    File names have 1 s resolution (``%H%M%S``), so wait for a new second first.
    ``dbname``: wait only for the other sessions of that database to end first.
    """
    quiesce(ctl, dbname=dbname)
    old = current(ctl)
    for _ in range(3):
        time.sleep(1.02 - time.time() % 1)
        ctl.execute("SELECT pg_rotate_logfile()")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            new = current(ctl)
            if all(n != o for n, o in zip(new.all(), old.all(), strict=True)):
                return new
            time.sleep(0.02)
    raise RuntimeError(f"log rotation did not start new files (still {old})")
