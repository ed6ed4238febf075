"""The ``run`` process's membership of its consumer group.

:class:`GroupMember` holds the group consumer (a kafka-python ``KafkaConsumer`` that
reads nothing: the fetcher process reads, see :mod:`streams.kafka.fetcher`), calls the
runner back when the group revokes, takes away or assigns partitions, says whether the
process is in its group (:meth:`GroupMember.member`), and can start over with a new
consumer (:meth:`GroupMember.rejoin`) when the watchdog (:mod:`detector.streaming.health`)
finds the process out of its group for too long.

Why the callbacks run on a thread of their own. kafka-python 3 runs the rebalance
listener on its IO loop, the one thread that also sends the group's heartbeats. Handing
partitions over blocks for seconds: a round trip to the fetcher process, the pipeline's
batch in flight judged, the producer flushed, a checkpoint written per partition (to a
Kafka topic, with ``--checkpoint-topic``). Run on the loop, that work silenced the
heartbeats for as long; under CPU load it outlasted the session timeout, the broker
removed the member "on heartbeat expiration" mid-rebalance, and the process rejoined
(or, when its revoke outlasted the rebalance, missed the new generation). The loop now
awaits the work (:func:`_off_loop`) and keeps heartbeating meanwhile. The runner's own
thread is blocked in ``poll`` while the callbacks run (kafka-python awaits the listener
inside the join that ``poll`` drives), so they never race the loop's bookkeeping.

Why :meth:`GroupMember.poll` asks for a rejoin while a join is in flight: kafka-python
3.0.12 loses a join that completes after the poll awaiting it gave up, when nothing but
the leader's own metadata asked for it (the group's first join on a new topic, which
assigns nothing, then joins again once the topic's partitions are known). The member
then stays "rebalancing" with its heartbeats off: the broker expires it after the session
timeout, kafka-python never joins again, and its poll spins (its next heartbeat is always
"due"). That was the stalled ``run`` of the test suite: a member joined, then was removed
"on heartbeat expiration" without one heartbeat.

Why a broker outage is waited out, not rejoined. kafka-python reconnects by itself when the
broker comes back; a new consumer made while no broker answers cannot join either (its
first poll fails to bootstrap). While no connection to any broker is up the process is out
of its group for :data:`OUTAGE_PATIENCE` before the watchdog acts (not ready meanwhile:
``/readyz`` and ``exfil_group_member`` say so). kafka-python also raises some retriable
errors (a refused connection) out of ``poll`` itself: they are logged and the loop goes
on, since the watchdog judges the membership; the others end the run as
:class:`~detector.exceptions.StreamingError`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from detector.exceptions import StreamingError
from detector.streaming.clients import group_consumer
from detector.streaming.options import StreamOptions
from streams.kafka.settings import KafkaSettings

#: How long a consumer given up for a new one may take to close (a wedged one never does:
#: it is left to its daemon threads).
CLOSE_SECONDS: Final = 10.0
#: How long one poll of the group consumer waits (the loop turns at least this often).
POLL_MS: Final = 200
#: ... while a join is in flight: long enough that the join ends inside the poll (the
#: broker answers once every member has rejoined: seconds), since kafka-python completes
#: a join only in a poll that awaits it.
JOIN_POLL_MS: Final = 5000
#: How long a rebalance may keep the process out of its group before the watchdog acts:
#: the broker waits for every member to rejoin up to the rebalance timeout (kafka-python's
#: ``max_poll_interval_ms``, 300 s), plus a margin.
REBALANCE_PATIENCE: Final = 330.0
#: How long no broker may answer before the watchdog acts (a broker restart, a rolling
#: upgrade): rejoining cannot help while none does.
OUTAGE_PATIENCE: Final = 300.0
#: Tries at a snapshot of kafka-python's connections while its IO thread changes them.
CONNS_ATTEMPTS: Final = 5


class GroupMember:
    """The group consumer and its rebalance callbacks (see the module's docstring).

    Parameters
    ----------
    settings, options
        Where and as whom to join (``options.group``, ``session_timeout``,
        ``instance_id``).
    on_revoked
        Called with partitions leaving in a rebalance; returns the offsets to commit
        before they go (``TopicPartition`` -> ``OffsetAndMetadata``).
    on_lost
        Called with partitions the group gave away while this process was out of it.
    on_assigned
        Called with the partitions the group assigns (all of this process's, eagerly).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        options: StreamOptions,
        on_revoked: Callable[[set[int]], dict[Any, Any]],
        on_lost: Callable[[set[int]], None],
        on_assigned: Callable[[set[int]], None],
    ) -> None:
        self.settings, self.options = settings, options
        self.on_revoked, self.on_lost, self.on_assigned = on_revoked, on_lost, on_assigned
        #: a callback's failure, raised on the runner's thread at its next poll
        self.failure: BaseException | None = None
        #: when the group last assigned this process its partitions (a join completed)
        self.joined_at = time.monotonic()
        #: the kind of the last retriable error out of ``poll`` (logged once in a row)
        self._last_poll_error: str | None = None
        self.consumer = group_consumer(settings, options)
        self._listener = self._subscribe()

    def poll(self) -> None:
        """The group's business (its partitions are paused): joins, rebalances, commits.
        The wait lets a rebalance progress (with none, kafka-python never completes
        one); while a join is in flight it is longer, so that the join ends inside it
        (see :data:`JOIN_POLL_MS`)."""
        coordinator = self.consumer._coordinator
        joining = coordinator.rebalance_in_progress()
        if joining and not coordinator.need_rejoin():
            # kafka-python 3.0.12 completes a join only in the poll that awaits it, and
            # only while need_rejoin() holds; a leader's own assignment makes it false
            # (its metadata snapshot is updated inside the join), so a join the poll's
            # timer left in flight was never completed: the member stayed "rebalancing"
            # with heartbeats off until the broker expired it, and never joined again.
            # Asked again, the next poll completes it (or joins anew)
            coordinator.request_rejoin()
        try:
            self.consumer.poll(timeout_ms=JOIN_POLL_MS if joining else POLL_MS)
        except Exception as exc:
            self._poll_failed(exc)
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _poll_failed(self, exc: Exception) -> None:
        """A retriable Kafka error out of ``poll`` is logged (once per kind in a row);
        any other ends the run."""
        from kafka.errors import KafkaError

        if not isinstance(exc, KafkaError):
            raise exc
        if not exc.retriable:
            raise StreamingError(f"the group consumer failed: {exc!r}") from exc
        kind = type(exc).__name__
        if kind != self._last_poll_error:
            print(f"exfil-detector: group poll: {exc!r} (retrying)", file=sys.stderr)
        self._last_poll_error = kind
        time.sleep(POLL_MS / 1000)  # the poll's own wait, which the error cut short

    def connected(self) -> bool:
        """Whether any connection to a broker is up (kafka-python keeps no public view)."""
        for _ in range(CONNS_ATTEMPTS):
            try:
                conns = list(self.consumer._manager._conns.values())
            except AttributeError:  # another kafka-python: the watchdog judges alone
                return True
            except RuntimeError:  # changed by kafka-python's IO thread meanwhile
                continue
            return any(getattr(c, "connected", False) for c in conns)
        # kafka-python's IO thread churns its connections (reconnecting, an outage): not
        # up. Answering "up" here let --until-idle count idle time while no broker answered
        return False

    def member(self) -> tuple[bool, str, float | None]:
        """Whether the process is in its group now and, if not, why and how long that
        may last (``None``: the watchdog's ``rejoin_after``). Read from kafka-python's
        coordinator: no public API says whether the heartbeats are answered."""
        from kafka.structs import MemberState

        coordinator = self.consumer._coordinator
        if coordinator.coordinator_id is None:
            if not self.connected():
                return False, "no broker answers", OUTAGE_PATIENCE
            return False, "group coordinator unknown", None
        self._last_poll_error = None
        state = coordinator.group_metadata().state
        if state == MemberState.UNJOINED:
            return False, "not in the group", None
        if state == MemberState.REBALANCING:
            return False, "rebalancing", REBALANCE_PATIENCE
        # since the last heartbeat answered (or the last join): kafka-python's own clock
        # restarts whenever it rediscovers the coordinator, so a member the broker removed
        # long ago can look fresh to it forever
        quiet = time.monotonic() - max(coordinator.heartbeat.last_receive, self.joined_at)
        if quiet > self.options.session_timeout:
            return False, f"no heartbeat answered for {quiet:.0f} s", None
        return True, "member", None

    def joining(self) -> bool:
        """A join is in flight: kafka-python completes it, and sends heartbeats again,
        only inside the next :meth:`poll` (the runner turns light until then)."""
        return bool(self.consumer._coordinator.rebalance_in_progress())

    def rejoin(self) -> None:
        """Start over with a new consumer (the runner has handed its partitions over)."""
        self.abandon()
        self.consumer = group_consumer(self.settings, self.options)
        self._listener = self._subscribe()

    def abandon(self) -> None:
        """Leave without handing anything over: the consumer stops calling back at once
        and closes on a thread of its own, within :data:`CLOSE_SECONDS` or never (a
        wedged client is why we are here)."""
        self._listener.retired = True
        closing = threading.Thread(
            target=self.consumer.close, kwargs={"autocommit": False}, name="old-group",
            daemon=True,
        )  # fmt: skip
        closing.start()
        closing.join(CLOSE_SECONDS)

    def close(self) -> None:
        """Leave the group (the callbacks hand the partitions over first)."""
        self.consumer.close(autocommit=False)

    def _subscribe(self) -> Any:
        listener = _listener(self, self.consumer._net)
        self.consumer.subscribe([self.options.topic], listener=listener)
        return listener


def _listener(member: GroupMember, net: Any) -> Any:
    from kafka import AsyncConsumerRebalanceListener
    from kafka.errors import KafkaError

    class Handover(AsyncConsumerRebalanceListener):  # type: ignore[misc]
        #: set when the member moved on to a new consumer: this one calls back no more
        retired = False

        async def on_partitions_revoked(self, revoked: Any) -> None:
            if self.retired:
                return
            offsets = await _off_loop(net, member, member.on_revoked, _numbers(revoked))
            if offsets:  # kafka-python's loop commits: a blocking commit() raises there
                coordinator = member.consumer._coordinator
                try:
                    await coordinator._commit_offsets_sync_async(offsets)
                except KafkaError as exc:  # the checkpoints carry them: the next owner seeks
                    print(f"exfil-detector: offsets not committed: {exc!r}", file=sys.stderr)

        async def on_partitions_lost(self, lost: Any) -> None:
            if not self.retired:
                await _off_loop(net, member, member.on_lost, _numbers(lost))

        async def on_partitions_assigned(self, assigned: Any) -> None:
            if self.retired:
                return
            # the fetcher process reads them (from where the runner tells it, once
            # claimed): this consumer must not
            member.consumer.pause(*assigned)
            member.joined_at = time.monotonic()
            await _off_loop(net, member, member.on_assigned, _numbers(assigned))

    return Handover()


def _numbers(partitions: Any) -> set[int]:
    return {tp.partition for tp in partitions}


async def _off_loop(net: Any, member: GroupMember, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` on a thread of its own, awaited: kafka-python's IO loop goes on
    (heartbeats included) meanwhile. A failure is kept for the runner's thread
    (:meth:`GroupMember.poll` raises it) and the rebalance goes on without the work."""
    from kafka.future import Future

    done = Future()

    def run() -> None:
        try:
            value = work(*args)
        except BaseException as exc:
            if member.failure is None:
                member.failure = exc
            print(f"exfil-detector: rebalance callback failed: {exc}", file=sys.stderr)
            value = None
        net.call_soon_threadsafe(lambda: done.success(value))

    threading.Thread(target=run, name="rebalance", daemon=True).start()
    return await done
