"""The MariaDB side of the runner: PyMySQL sessions that wait until server_audit logged them.

server_audit writes a statement's ``QUERY`` line after the result has gone to the client,
and a session's ``DISCONNECT`` line after the client has hung up; a client that moved on at
once could see its next step logged before the last one.  So every step here ends only
when its lines are in the file: :class:`AuditTail` reads the file as it grows and counts,
per connection id, the ``CONNECT``, ``QUERY`` and ``DISCONNECT`` lines; a step is done when
the connection's ``QUERY`` lines match the queries the client sent
(:class:`_CountingConnection`) and, for a connect or close, its ``CONNECT`` or
``DISCONNECT`` line is there.  The file is then in step order and :attr:`AuditTail.ends`
holds the byte offset after each step's lines, which is how :func:`.timewarp.warp_audit`
maps lines to steps despite the log's one-second resolution.

Each session connects from its own client address with PyMySQL's ``bind_address``
(127.0.0.N is local on Linux): unlike libpq, PyMySQL can choose its source address, so no
forwarder is needed.  Statements are translated by :mod:`.mysql_dialect` when sent.

>>> import tempfile
>>> log = Path(tempfile.mkdtemp()) / "server_audit.log"
>>> _ = log.write_bytes(b"20240304 09:00:00,h,u,127.0.0.10,7,0,CONNECT,records,,0\\n")
>>> tail = AuditTail(log, 0)
>>> tail.wait(lambda: 7 in tail.connected, "a connect")
>>> tail.mark()
>>> tail.ends, tail.queries[7]
([56], 0)
>>> tail.close()
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import SimulationError
from .mysql_dialect import translate
from .runner import Refusal
from .sessions import Session, Statement

#: how long a step may wait for its lines before the run is given up
LOG_TIMEOUT = 30.0


class AuditTail:
    """Follows a server_audit file from byte ``start``; counts lines per connection.

    Parameters
    ----------
    path
        The audit file (``@@server_audit_file_path``).
    start
        Byte offset where the run's part begins (the file's size before the first step).
    """

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.start = start
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise SimulationError(f"cannot read the server_audit file {path}: {exc}") from exc
        self._inode = os.fstat(self._fd).st_ino
        self.pos = start  # end of the last complete line read
        self._partial = b""
        self.queries: Counter[int] = Counter()
        self.connected: set[int] = set()
        self.disconnected: set[int] = set()
        self.ends: list[int] = []  # per step: offset (from start) after its lines

    def _count_lines(self, line: bytes) -> None:
        fields = line.split(b",", 7)
        if len(fields) < 8 or not fields[4].isdigit():
            return  # not a record (a custom timestamp format would show up in the warp)
        conn, op = int(fields[4]), fields[6]
        if op == b"QUERY":
            self.queries[conn] += 1
        elif op in (b"CONNECT", b"FAILED_CONNECT"):
            self.connected.add(conn)
        elif op == b"DISCONNECT":
            self.disconnected.add(conn)

    def poll(self) -> None:
        """Read what the server appended; count the complete lines."""
        while chunk := os.pread(self._fd, 1 << 20, self.pos + len(self._partial)):
            data = self._partial + chunk
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n")[:-1]:
                self._count_lines(line)
            self.pos += cut
            self._partial = data[cut:]
        if os.fstat(self._fd).st_size < self.pos:
            raise SimulationError(f"{self.path} shrank during the run (rotated or truncated)")

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Poll until ``done()``; a clear error after :data:`LOG_TIMEOUT` seconds."""
        deadline = time.monotonic() + LOG_TIMEOUT
        pause = 0.0
        while True:
            self.poll()
            if done():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(pause)
            pause = min(0.01, pause + 0.0001)
        rotated = ""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino != self._inode:
                rotated = " (the file was rotated: raise server_audit_file_rotate_size)"
        raise SimulationError(
            f"server_audit did not log {what} within {LOG_TIMEOUT:.0f} s{rotated}: is it"
            f" logging CONNECT,QUERY events of every user to {self.path}?"
        )

    def mark(self) -> None:
        """The current step is complete: remember where its lines end."""
        self.ends.append(self.pos - self.start)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _counting_connection_class() -> type[Any]:
    import pymysql
    from pymysql.constants import COMMAND

    class _CountingConnection(pymysql.connections.Connection):  # type: ignore[misc]
        """Counts the queries sent, including PyMySQL's own after the handshake
        (``SET NAMES``): each one gets a ``QUERY`` line."""

        sent = 0

        def _execute_command(self, command: int, sql: Any) -> Any:
            if command == COMMAND.COM_QUERY:
                self.sent += 1
            return super()._execute_command(command, sql)

    return _CountingConnection


class MariaDBBackend:
    """Runs sessions on MariaDB through PyMySQL; each step waits for its audit lines.

    Parameters
    ----------
    host, port
        The server's TCP address (loopback).
    database
        The simulated office's database.
    passwords
        Login password of every user.
    tail
        The audit file being written.
    """

    # lines are mapped to steps by position in the file, so steps may share a millisecond
    distinct_ms = False

    def __init__(
        self,
        host: str,
        port: int,
        database: str,
        passwords: Mapping[str, str],
        tail: AuditTail,
    ) -> None:
        self.host, self.port, self.database = host, port, database
        self.passwords = passwords
        self.tail = tail
        self._connection_class = _counting_connection_class()

    def _settle(self, conn: Any, what: str) -> None:
        cid, sent = conn.thread_id(), conn.sent
        self.tail.wait(lambda: self.tail.queries[cid] >= sent, f"{what} (connection {cid})")
        self.tail.mark()

    def open(self, session: Session) -> Any:
        import pymysql

        try:
            conn = self._connection_class(
                host=self.host,
                port=self.port,
                bind_address=session.client_ip,
                user=session.user,
                password=self.passwords[session.user],
                database=self.database,
                autocommit=True,
                connect_timeout=10,
                # plain TCP on loopback, like the PostgreSQL clients (sslmode=disable); it
                # also spares PyMySQL loading the CA store on every connect (~20 ms)
                ssl_disabled=True,
                # connection attributes, like libpq's application_name (not in the audit log)
                program_name=session.application or None,
            )
        except pymysql.MySQLError as exc:
            raise SimulationError(
                f"{session.user} could not connect from {session.client_ip}: {exc}"
            ) from exc
        cid = conn.thread_id()
        self.tail.wait(lambda: cid in self.tail.connected, f"the CONNECT of {session.user}")
        self._settle(conn, f"the connect queries of {session.user}")
        return conn

    def execute(self, conn: Any, statement: Statement) -> Refusal | None:
        import pymysql

        sql, params = translate(statement)
        refused: Refusal | None = None
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                cur.fetchall()
        except pymysql.MySQLError as e:
            code = e.args[0] if e.args else None
            refused = (None if code is None else str(code)), str(e)
        self._settle(conn, f"the statement {sql[:60]!r}")
        return refused

    def close(self, conn: Any) -> None:
        cid = conn.thread_id()
        conn.close()
        self.tail.wait(lambda: cid in self.tail.disconnected, f"the DISCONNECT of {cid}")
        self.tail.mark()
