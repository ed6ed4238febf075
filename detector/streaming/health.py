"""Is ``run`` alive, in its group and reading? The watchdog's judgment, and what
``/healthz`` and ``/readyz`` answer.

A streaming detector's worst failure is a silent one: alerts stop and nothing says so.
:class:`Watchdog` is told, every turn of the ``run`` loop, whether the process is a member
of its consumer group and which partitions have records waiting that nobody reads; it
answers what to do (:class:`Act`), on bounds derived from the session timeout
(:class:`HealthBounds`):

* out of the group (evicted, no coordinator, heartbeats unanswered, a rebalance that does
  not end) for ``rejoin_after`` seconds: rejoin with a new group consumer; still out
  ``give_up_after`` seconds later: exit non-zero (after checkpointing what it owns), so
  systemd or Kubernetes restarts it;
* records waiting in a partition it owns and none read for ``stall_after`` seconds: the
  fetcher reconnects; stalled as long again: exit non-zero.

It also keeps what the HTTP probes answer: live while the loop turns (a loop stuck for
``loop_after`` seconds is not), ready while in the group with partitions and at most
``ready_lag`` records behind. Pure logic on an injectable clock:

>>> now = [0.0]
>>> dog = Watchdog(HealthBounds.for_session(10.0), clock=lambda: now[0])
>>> dog.membership(False, "rebalancing"), dog.live()[0], dog.ready()[0]
(<Act.NOTHING: 'nothing'>, True, False)
>>> now[0] = 11.0
>>> dog.membership(False, "no heartbeat answered")
<Act.REJOIN: 'rejoin'>
>>> now[0] = 20.0
>>> dog.membership(False, "no heartbeat answered")
<Act.NOTHING: 'nothing'>
>>> now[0] = 32.0
>>> dog.membership(False, "no heartbeat answered")
<Act.GIVE_UP: 'give_up'>
>>> dog.membership(True, "member"), dog.owned({0: 0}), dog.ready()
(<Act.NOTHING: 'nothing'>, None, (True, 'in the group, 1 partitions, 0 records behind'))
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Records behind beyond which ``/readyz`` says not ready, unless told otherwise.
READY_LAG: Final = 1_000_000


class Act(enum.Enum):
    """What the watchdog asks the loop to do."""

    NOTHING = "nothing"
    REJOIN = "rejoin"
    RECONNECT = "reconnect"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class HealthBounds:
    """How long each failure may last (seconds) before the watchdog acts."""

    rejoin_after: float
    give_up_after: float
    stall_after: float
    loop_after: float
    ready_lag: int = READY_LAG

    @classmethod
    def for_session(
        cls,
        session_timeout: float,
        *,
        stall_after: float | None = None,
        ready_lag: int = READY_LAG,
    ) -> HealthBounds:
        """Bounds for a group with this session timeout: out of it one session timeout
        before rejoining, two more before giving up; a stall after two minutes (or two
        session timeouts, if longer); the loop stuck after five minutes (or four).

        >>> b = HealthBounds.for_session(45.0)
        >>> b.rejoin_after, b.give_up_after, b.stall_after, b.loop_after, b.ready_lag
        (45.0, 90.0, 120.0, 300.0, 1000000)
        """
        stall = stall_after if stall_after is not None else max(120.0, 2 * session_timeout)
        return cls(
            rejoin_after=session_timeout,
            give_up_after=2 * session_timeout,
            stall_after=stall,
            loop_after=max(300.0, 4 * session_timeout),
            ready_lag=ready_lag,
        )


@dataclass
class Watchdog:
    """The loop's health (see the module's docstring); its answers are thread-safe reads
    for the HTTP probes."""

    bounds: HealthBounds
    clock: Callable[[], float] = time.monotonic
    #: since when the process has been out of its group (``None``: a member)
    out_since_: float | None = None
    #: when it last rejoined (``None``: not since it was last a member)
    rejoined_at_: float | None = None
    why_out_: str = "not joined yet"
    #: per partition it owns: records behind (``None``: unknown)
    owned_: dict[int, int | None] = field(default_factory=dict)
    #: per partition it owns: when it last read records, was caught up or arrived
    heard_: dict[int, float] = field(default_factory=dict)
    #: partitions the fetcher reconnected for, still not reading
    reconnected_: set[int] = field(default_factory=set)
    last_turn_: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.out_since_ = self.clock()  # out until the group's first assignment

    # -- what the loop reports ----------------------------------------------------------

    def turned(self) -> None:
        """The loop turned (liveness)."""
        self.last_turn_ = self.clock()

    def membership(self, member: bool, why: str, patience: float | None = None) -> Act:
        """Whether the process is in its group now (``why``: kafka-python's view, for the
        log); what to do about it. ``patience`` replaces ``rejoin_after`` for a way of
        being out that may legitimately last longer (a rebalance waits for every member,
        up to the group's rebalance timeout)."""
        now = self.clock()
        with self._lock:
            if member:
                self.out_since_ = self.rejoined_at_ = None
                return Act.NOTHING
            self.why_out_ = why
            if self.out_since_ is None:
                self.out_since_ = now
            if self.rejoined_at_ is not None:
                if now - self.rejoined_at_ >= self.bounds.give_up_after:
                    return Act.GIVE_UP
                return Act.NOTHING
            bound = self.bounds.rejoin_after if patience is None else patience
            if now - self.out_since_ >= bound:
                self.rejoined_at_ = now
                return Act.REJOIN
            return Act.NOTHING

    def owned(self, behind: Mapping[int, int | None]) -> None:
        """The partitions the process owns now and their records behind (``None``:
        unknown); a partition new here counts as heard from now."""
        now = self.clock()
        with self._lock:
            self.owned_ = dict(behind)
            self.heard_ = {p: self.heard_.get(p, now) for p in behind}
            self.reconnected_ &= set(behind)

    def read(self, partitions: Iterable[int]) -> None:
        """These partitions read records (or are caught up: nothing to read)."""
        now = self.clock()
        for p in partitions:
            if p in self.heard_:
                self.heard_[p] = now
            self.reconnected_.discard(p)

    def quiet(self) -> list[int]:
        """Partitions that read nothing for ``stall_after`` seconds: are records waiting?"""
        now = self.clock()
        return sorted(p for p, t in self.heard_.items() if now - t >= self.bounds.stall_after)

    def stalled(self, quiet: Iterable[int], waiting: Iterable[int]) -> Act:
        """Of the ``quiet`` partitions, those with records ``waiting``: reconnect the
        fetcher the first time, give up if they are still stalled a bound later.

        >>> now = [0.0]
        >>> dog = Watchdog(HealthBounds(1, 2, stall_after=5, loop_after=9), lambda: now[0])
        >>> dog.membership(True, "member"), dog.owned({0: 10, 1: 0})
        (<Act.NOTHING: 'nothing'>, None)
        >>> now[0] = 6.0
        >>> dog.quiet(), dog.stalled([0, 1], waiting=[0]), dog.quiet()
        ([0, 1], <Act.RECONNECT: 'reconnect'>, [])
        >>> now[0] = 12.0
        >>> dog.stalled(dog.quiet(), waiting=[0]), dog.ready()[1].split("; ")[1]
        (<Act.GIVE_UP: 'give_up'>, 'not reading partitions [0]')
        """
        waiting = set(waiting)
        self.read(p for p in quiet if p not in waiting)  # caught up: nothing to read
        act = Act.NOTHING
        for p in sorted(waiting & set(self.heard_)):
            if p in self.reconnected_:
                return Act.GIVE_UP
            self.heard_[p] = self.clock()
            self.reconnected_.add(p)
            act = Act.RECONNECT
        return act

    # -- what the probes answer ---------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """Liveness: the loop turned in the last ``loop_after`` seconds."""
        if self.last_turn_ is None:
            return True, "starting"
        quiet = self.clock() - self.last_turn_
        if quiet > self.bounds.loop_after:
            return False, f"the loop has not turned for {quiet:.0f} s"
        return True, f"the loop turned {quiet:.1f} s ago"

    def ready(self) -> tuple[bool, str]:
        """Readiness: in the group, partitions owned, lag bounded."""
        with self._lock:
            if self.out_since_ is not None:
                return False, f"out of the group: {self.why_out_}"
            if not self.owned_:
                return False, "in the group, no partitions"
            behind = sum(n for n in self.owned_.values() if n is not None)
            summary = f"in the group, {len(self.owned_)} partitions, {behind} records behind"
            if behind > self.bounds.ready_lag:
                return False, summary + f" (over {self.bounds.ready_lag})"
            if self.reconnected_:
                return False, f"{summary}; not reading partitions {sorted(self.reconnected_)}"
            return True, summary


def probe_app(app: Callable[..., Any], watchdog: Watchdog) -> Callable[..., Any]:
    """A WSGI app answering ``/healthz`` and ``/readyz`` from ``watchdog`` (200 or 503
    with a JSON reason), and passing every other path to ``app`` (``/metrics``)."""
    probes = {"/healthz": watchdog.live, "/readyz": watchdog.ready}

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return app(environ, start_response)
        ok, reason = probe()
        body = json.dumps({"ok": ok, "reason": reason}).encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return dispatch
