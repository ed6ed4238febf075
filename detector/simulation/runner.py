"""Execute a plan against a real server, as fast as possible, recording real step spans.

Steps (connect, statement, close) of all sessions run one at a time in simulated-time
order, so sessions that overlap in simulated time are open together, as they would be.
Each step's real span goes into the :class:`~.timewarp.Timeline`; see :mod:`.timewarp`
for why a step waits for the clock's next millisecond and a close waits for the backend
to exit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .plan import Plan
from .sessions import Session, Statement
from .timewarp import Timeline

if TYPE_CHECKING:
    import psycopg

Connect = Callable[[Session], "psycopg.Connection[Any]"]
CONNECT, CLOSE = -1, 1 << 30  # step numbers around a session's statements


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


def run_plan(
    plan: Plan, connect: Connect, progress: Callable[[int, int], None] | None = None
) -> RunRecord:
    """Run every step of ``plan`` in simulated-time order.

    Parameters
    ----------
    plan
        The sessions to run.
    connect
        Opens a session's connection (:func:`connector`).
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
    import psycopg

    record = RunRecord()
    tl = record.timeline
    conns: dict[int, psycopg.Connection[Any]] = {}
    pids: dict[int, int] = {}
    order = steps(plan)
    every = max(500, len(order) // 10)
    started = time.monotonic()
    try:
        for n, (planned, i, step) in enumerate(order):
            session = plan.sessions[i]
            if tl:
                _wait_next_ms(tl.real_last[-1])
            first = _now_ms()
            if step == CONNECT:
                conns[i] = connect(session)
                pids[i] = conns[i].info.backend_pid
            elif step == CLOSE:
                conns.pop(i).close()
                _wait_exit(pids.pop(i))
            else:
                try:
                    execute(conns[i], session.statements[step])
                except psycopg.Error as e:
                    sqlstate = e.diag.sqlstate if e.diag else None
                    record.errors.append(StepError(i, step, sqlstate, str(e).strip()))
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


def connector(address: Callable[[str], tuple[str, int]], dbname: str) -> Connect:
    """Open a session's connection through the forwarder of its client address."""
    import psycopg

    def connect(session: Session) -> psycopg.Connection[Any]:
        host, port = address(session.client_ip)
        extra: dict[str, Any] = {}
        if session.application:
            extra["application_name"] = session.application
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
