"""The watchdog's side of the ``run`` loop (:mod:`detector.streaming.runner`): what it tells
the :class:`~detector.streaming.health.Watchdog` each turn and what it does when told to
rejoin the group, reconnect the fetcher or give up; and the measurements of
``StreamOptions.measure`` (benchmarks)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Final

from detector.exceptions import StreamingError, StreamUnhealthy
from detector.streaming.health import Act
from streams.exceptions import FetcherError

if TYPE_CHECKING:
    from detector.metrics import Metrics
    from detector.streaming.group import GroupMember
    from detector.streaming.health import Watchdog
    from detector.streaming.options import RunSummary, StreamOptions
    from detector.streaming.partitions import OwnedPartitions
    from streams.kafka.fetcher import FetcherProcess

#: Seconds between two look-ups of the end offsets of partitions that read nothing.
END_CHECK_SECONDS: Final = 5.0
#: How long a process giving up waits for its fetcher's parsers to checkpoint them.
GIVE_UP_REPLY_SECONDS: Final = 10.0
#: How long an arriving partition's group offset is asked for while no broker answers (a
#: broker restart takes seconds) before the process gives up to be restarted.
OFFSET_PATIENCE_SECONDS: Final = 90.0


class Guarded:
    """Mixed into the runner: the attributes below are the runner's."""

    tp: Any
    options: StreamOptions
    group: GroupMember
    watchdog: Watchdog
    metrics: Metrics | None
    fetcher: FetcherProcess
    state: OwnedPartitions
    summary: RunSummary
    seeked: set[int]
    owned: set[int]
    fenced: set[int]
    member: bool
    last_end_check: float
    started: float
    first_read: float | None

    def _revoke(self, partitions: set[int]) -> dict[Any, Any]:
        raise NotImplementedError

    def _checkpoint(self, reply: float) -> None:
        raise NotImplementedError

    def _behind(self, assigned: set[int]) -> dict[int, int]:
        raise NotImplementedError

    def _watch(self, assigned: set[int]) -> None:
        """Tell the watchdog how the process stands, and do what it says: rejoin the group,
        reconnect the fetcher, or give up (:class:`StreamUnhealthy`)."""
        member, why, patience = self.group.member()
        self.member = member
        self.watchdog.turned()
        if self.metrics is not None:
            self.metrics.turned(member)
        act = self.watchdog.membership(member, why, patience)
        if act is Act.REJOIN:
            self._rejoin(why)
        elif act is Act.GIVE_UP:
            raise StreamUnhealthy(f"out of the consumer group ({why}); rejoining did not help")
        behind = self._behind(assigned)
        self.watchdog.owned({p: behind.get(p) for p in assigned})
        quiet = [p for p in self.watchdog.quiet() if p in self.seeked]
        now = time.monotonic()
        if not quiet or now - self.last_end_check < END_CHECK_SECONDS:
            return
        self.last_end_check = now
        ends = self._ends(quiet)
        waiting = [p for p in quiet if ends.get(p, 0) > self.state.offsets.get(p, 0)]
        act = self.watchdog.stalled(quiet, waiting)
        if act is Act.RECONNECT:
            stuck = {p: ends[p] - self.state.offsets.get(p, 0) for p in waiting}
            _log(f"records waiting and none read (partition: records {stuck}): the fetcher "
                 "reconnects")  # fmt: skip
            self._acted("reconnect")
            self.fetcher.reconnect()
        elif act is Act.GIVE_UP:
            raise StreamUnhealthy(f"partitions {sorted(waiting)} read nothing although records "
                                  "wait, even after the fetcher reconnected")  # fmt: skip

    def _group_offset(self, partition: int) -> int:
        """Where an arriving partition without a checkpoint starts: the group's committed
        offset, else the earliest. Asked again while the broker does not answer (a
        restart: kafka-python raises the refused connection), up to
        :data:`OFFSET_PATIENCE_SECONDS`; then :class:`StreamUnhealthy` (exit 3, restarted,
        the checkpoints intact). An error retrying cannot fix ends the run."""
        from kafka.errors import KafkaError

        tp = self.tp(self.options.topic, partition)
        deadline = time.monotonic() + OFFSET_PATIENCE_SECONDS
        while True:
            try:
                offset = self.group.consumer.committed(tp)
                if offset is None:
                    offset = self.group.consumer.beginning_offsets([tp])[tp]
                return int(offset)
            except KafkaError as exc:
                if not exc.retriable:
                    raise StreamingError(
                        f"no start offset for partition {partition}: {exc!r}"
                    ) from exc
                if time.monotonic() > deadline:
                    raise StreamUnhealthy(
                        f"no start offset for partition {partition} in "
                        f"{OFFSET_PATIENCE_SECONDS:.0f} s: {exc!r}"
                    ) from exc
                _log(f"start offset of partition {partition}: {exc!r} (asking again)")
                time.sleep(1.0)

    def _ends(self, partitions: list[int]) -> dict[int, int]:
        """The partitions' end offsets, asked of the broker (the fetcher's high
        watermarks are what is in doubt); none known when the broker does not answer."""
        from kafka.errors import KafkaError

        tps = [self.tp(self.options.topic, p) for p in partitions]
        try:
            ends = self.group.consumer.end_offsets(tps)
        except KafkaError:
            return {}
        return {tp.partition: int(o) for tp, o in ends.items() if o is not None}

    def _rejoin(self, why: str) -> None:
        """Out of the group too long: hand every partition over (checkpointed; no commit:
        a group that does not know this process would refuse it, and the checkpoints
        carry the offsets) and start over with a new group consumer."""
        bound = self.watchdog.bounds.rejoin_after
        _log(f"out of the consumer group for {bound:.0f} s ({why}): rejoining")
        self._acted("rejoin")
        self._revoke(set(self.owned))
        self.owned.clear()
        self.fenced.clear()
        self.group.rejoin()

    def _give_up(self, exc: StreamUnhealthy) -> None:
        """Exit to be restarted: checkpoint what this process owns (if its fetcher still
        answers) and close, without the end-of-input work of :meth:`_finish`."""
        self._acted("give_up")
        _log(f"giving up: {exc}")
        try:  # a fetcher that does not answer soon is part of the trouble
            self._checkpoint(reply=GIVE_UP_REPLY_SECONDS)
        except (FetcherError, StreamingError) as why:
            _log(f"not checkpointed ({why}): the last checkpoint stands")
        self.group.abandon()  # its partitions' checkpoints are saved, or stand as they were
        self.fetcher.stop()
        self.delivery.close()
        if self.state.store is not None:
            self.state.store.close()

    def _acted(self, action: str) -> None:
        if self.metrics is not None:
            self.metrics.watchdog.labels(action).inc()

    # -- measuring (benchmarks) ---------------------------------------------------------

    def _measure(self, stamps: list[int], assigned: set[int], started: float, turn: float) -> None:
        now = time.perf_counter() - started
        self.summary.lag.append((now, sum(self._behind(assigned).values())))
        if stamps and self.summary.busy is None:
            # from the start of the fetcher's first poll that read records (it decoded
            # and parsed them) to the end of the last batch judged (:meth:`_judged`)
            first = self.first_read if self.first_read is not None else turn
            self.summary.busy = (min(first, turn), now)

    def _judged(self, stamps: list[int], ended: float) -> None:
        """The worker judged the batch of a turn that read records with these stamps."""
        now_ms = time.time() * 1000.0
        self.summary.latency_ms += [now_ms - t for t in stamps]
        if self.summary.busy is not None:
            self.summary.busy = (self.summary.busy[0], ended - self.started)


def _log(message: str) -> None:
    print(f"exfil-detector: {message}", file=sys.stderr, flush=True)
