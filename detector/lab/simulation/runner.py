"""Execute a plan against a real server, as fast as possible, recording real step spans.

Steps (connect, statement, close) of all sessions run one at a time in simulated-time
order, so sessions that overlap in simulated time are open together, as they would be.
Each step's real span goes into the :class:`~.timewarp.Timeline`; see :mod:`.timewarp`
for why a step waits for the clock's next millisecond and a close waits for the backend
to exit.

A :class:`Backend` opens, uses and closes one server's connections; each of its calls
returns only once the server has logged the step.  :class:`PgBackend` drives PostgreSQL
with psycopg; :class:`~.mariadb_runner.MariaDBBackend` drives MariaDB with PyMySQL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .plan import Plan
from .sessions import Session, Statement
from .timewarp import Timeline

if TYPE_CHECKING:
    import psycopg

Connect = Callable[[Session], "psycopg.Connection[Any]"]
CONNECT, CLOSE = -1, 1 << 30  # step numbers around a session's statements
#: a refused statement: (server error code, message)
Refusal = tuple[str | None, str]


@runtime_checkable
class Backend(Protocol):
    """One server's client side; every call returns once the server has logged the step.

    ``distinct_ms``: steps must not share a real millisecond (the time warp maps log lines
    to steps by their time); false when it maps them by position in the file.
    """

    distinct_ms: bool

    def open(self, session: Session) -> Any:
        """Open ``session``'s connection."""
        ...

    def execute(self, conn: Any, statement: Statement) -> Refusal | None:
        """Run one statement to its end; the server's refusal, or None."""
        ...

    def close(self, conn: Any) -> None:
        """Close the connection and wait until the server has ended the session."""
        ...


@dataclass(frozen=True)
class StepError:
    """A planned statement the server refused (the run goes on)."""

    session: int
    statement: int
    sqlstate: str | None
    message: str


@dataclass
class RunRecord:
    """What happened: the timeline, each session's simulated span, errors, timing."""

    timeline: Timeline = field(default_factory=Timeline)
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)
    errors: list[StepError] = field(default_factory=list)
    seconds: float = 0.0


def steps(plan: Plan) -> list[tuple[int, int, int]]:
    """``(planned_ms, session, step)`` of the whole plan in execution order.

    >>> from .org import build_org
    >>> from .plan import build_plan
    >>> org = build_org(users=6, days=1, citizens=300)
    >>> order = steps(build_plan(org, ()))
    >>> order == sorted(order) and order[0][2] == CONNECT
    True
    """
    out = []
    for i, s in enumerate(plan.sessions):
        out.append((s.connect_ms, i, CONNECT))
        out += [(st.at_ms, i, k) for k, st in enumerate(s.statements)]
        out.append((s.close_ms, i, CLOSE))
    out.sort()
    return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _wait_next_ms(after: int) -> None:
    while _now_ms() <= after:
        time.sleep(0.0001)


def _wait_exit(pid: int, timeout: float = 10.0) -> None:
    """Until backend ``pid`` has exited (it logs its disconnection before it exits)."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.0002)
    raise TimeoutError(f"backend {pid} did not exit within {timeout} s")


def execute(conn: psycopg.Connection[Any], st: Statement) -> None:
    """Send one statement and drain its result (rows or COPY data)."""
    with conn.cursor() as cur:
        if st.copy == "out":
            with cur.copy(st.sql) as copy:
                for _ in copy:
                    pass
        elif st.copy == "in":
            with cur.copy(st.sql) as copy:
                for row in st.rows:
                    copy.write_row(row)
        else:
            cur.execute(st.sql, st.params)  # type: ignore[arg-type]
            if cur.description is not None:
                cur.fetchall()


class PgBackend:
    """PostgreSQL through psycopg: a close waits for the backend process to exit."""

    distinct_ms = True

    def __init__(self, connect: Connect) -> None:
        self.connect = connect

    def open(self, session: Session) -> psycopg.Connection[Any]:
        return self.connect(session)

    def execute(self, conn: psycopg.Connection[Any], statement: Statement) -> Refusal | None:
        import psycopg

        try:
            execute(conn, statement)
        except psycopg.Error as e:
            return (e.diag.sqlstate if e.diag else None), str(e).strip()
        return None

    def close(self, conn: psycopg.Connection[Any]) -> None:
        pid = conn.info.backend_pid
        conn.close()
        _wait_exit(pid)


def run_plan(
    plan: Plan,
    backend: Backend | Connect,
    progress: Callable[[int, int], None] | None = None,
) -> RunRecord:
    """Run every step of ``plan`` in simulated-time order.

    Parameters
    ----------
    plan
        The sessions to run.
    backend
        The server's client side (:class:`Backend`), or a function opening a PostgreSQL
        session's connection (:func:`connector`).
    progress
        Called with ``(steps done, steps)`` about ten times.

    Returns
    -------
    RunRecord
        The timeline, each session's simulated span as run, refused statements.

    Examples
    --------
    Needs a running server; see :func:`.simulate.simulate`.
    """
    client = backend if isinstance(backend, Backend) else PgBackend(backend)
    record = RunRecord(Timeline(strict=client.distinct_ms))
    tl = record.timeline
    conns: dict[int, Any] = {}
    order = steps(plan)
    every = max(500, len(order) // 10)
    started = time.monotonic()
    try:
        for n, (planned, i, step) in enumerate(order):
            session = plan.sessions[i]
            if tl and tl.strict:
                _wait_next_ms(tl.real_last[-1])
            first = _now_ms()
            if step == CONNECT:
                conns[i] = client.open(session)
            elif step == CLOSE:
                client.close(conns.pop(i))
            else:
                refused = client.execute(conns[i], session.statements[step])
                if refused is not None:
                    record.errors.append(StepError(i, step, *refused))
            sim = tl.add(first, _now_ms(), planned)
            if step == CONNECT:
                record.spans[i] = (sim, sim)
            elif step == CLOSE:
                record.spans[i] = (record.spans[i][0], tl.sim_last(len(tl) - 1))
            if progress is not None and n % every == 0:
                progress(n, len(order))
    finally:
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.close()
    record.seconds = time.monotonic() - started
    return record


def connector(
    address: Callable[[str], tuple[str, int]],
    dbname: str,
    passwords: Mapping[str, str] | None = None,
) -> Connect:
    """Open a session's connection through the forwarder of its client address.

    ``passwords`` (user -> password) for a server that asks for them.
    """
    import psycopg

    def connect(session: Session) -> psycopg.Connection[Any]:
        host, port = address(session.client_ip)
        extra: dict[str, Any] = {}
        if session.application:
            extra["application_name"] = session.application
        if passwords is not None:
            extra["password"] = passwords[session.user]
        return psycopg.connect(
            host=host,
            port=port,
            user=session.user,
            dbname=dbname,
            sslmode="disable",
            gssencmode="disable",
            connect_timeout=10,
            autocommit=True,
            # a real portal may prepare; psycopg would do so after 5 runs of a text, which
            # makes what the log shows depend on per-connection history: keep it simple
            prepare_threshold=None,
            **extra,
        )

    return connect
