"""When a caught-up partition stops holding the others back (the ``run`` loop's idle side,
mixed into :mod:`detector.streaming.runner`).

Events of the partitions are released in event-time order
(:class:`~streams.kafka.partition_merge.EventTimeMerge`): a partition holds the others
back at the time up to which it has delivered. A partition that is caught up cannot say
whether more is coming, so after a wait it is *flushed*: its parser lets go of the
records it held back and it holds no one back any more. The wait follows Kafka Streams'
``max.task.idle.ms``:

- a caught-up partition is flushed ``idle_flush_seconds`` after it caught up, or after
  another partition first had records it would hold back, whichever is later (records
  of a shipper's next batch land on the partitions one after another: released at once,
  the first partition's would run ahead of the others' and make them late);
- it is flushed only when the broker's end offset confirms it is caught up (the fetcher's
  last high watermark can be stale: a broker restart, a fetch not answered yet);
- a flushed partition stays flushed while the others go on, until records come again to
  a partition that was flushed itself (the topic written again after a quiet spell):
  then every flushed partition holds the others back again and waits anew;
- a partition whose end offset is past what was read holds the others back.

``--until-idle`` ends the run once every partition has been caught up that long, confirmed
by the broker's end offsets; no idle time counts while no broker answers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.streaming.group import GroupMember
    from detector.streaming.health import Watchdog
    from detector.streaming.options import StreamOptions
    from detector.streaming.partitions import OwnedPartitions
    from streams.kafka.fetcher import FetcherProcess


class Idleness:
    """Mixed into the runner: the attributes below are the runner's."""

    options: StreamOptions
    group: GroupMember
    watchdog: Watchdog
    fetcher: FetcherProcess
    state: OwnedPartitions
    seeked: set[int]
    fenced: set[int]
    member: bool
    highwater: dict[int, int | None]
    flushing: set[int]
    idle_since: dict[int, float]
    empty_since: float | None
    #: caught-up partitions whose wait for the others' records has started (not reset
    #: by more of them: a partition with steady traffic must not keep it waiting)
    blocking: set[int]

    def _ends(self, partitions: list[int]) -> dict[int, int]:
        raise NotImplementedError

    def _records_read(self, partition: int) -> None:
        """Records were read on ``partition``: caught-up partitions start waiting for the
        others' (once); flushed ones hold the others back again if ``partition`` was
        flushed itself. Called before they join the merge."""
        merge = self.state.merge
        now = time.monotonic()
        again = merge.flushed(partition)
        for p in self.seeked - self.fenced - self.blocking - {partition}:
            if merge.flushed(p):
                if again:
                    merge.hold(p)
                    self.idle_since.pop(p, None)  # waits anew from the next turn
                    self.blocking.add(p)
            elif p in self.idle_since and p not in self.flushing:
                self.idle_since[p] = now
                self.blocking.add(p)
        self.idle_since.pop(partition, None)
        self.blocking.discard(partition)

    def _idle(self, assigned: set[int]) -> float:
        """Flush partitions caught up long enough; how long all have been caught up."""
        now = time.monotonic()
        if not self.group.connected():
            # no broker answers (a restart): whether anything waits is unknown, and an
            # outage is not the end of the input
            self.idle_since.clear()
            self.empty_since = None
            return 0.0
        merge = self.state.merge
        due = []
        for p in assigned:
            # the fetcher's last high watermark against what was read (a stalled fetcher's
            # is stale: the watchdog knows better)
            high, read = self.highwater.get(p), self.state.offsets.get(p)
            if high is None or read is None or read < high or p in self.watchdog.reconnected_:
                self.idle_since.pop(p, None)
                if high is not None and read is not None and read < high:
                    merge.hold(p)  # records wait on the broker
                continue
            since = self.idle_since.setdefault(p, now)
            waited = now - since >= self.options.idle_flush_seconds
            if waited and not merge.flushed(p) and p not in self.flushing:
                due.append(p)
        if due:
            self._flush(due)
        if not assigned:  # in the group with none: idle too (more processes than partitions)
            if not self.member:
                self.empty_since = None
                return 0.0
            self.empty_since = self.empty_since or now
            return now - self.empty_since
        self.empty_since = None
        if any(p not in self.idle_since for p in assigned):
            return 0.0
        return now - max(self.idle_since[p] for p in assigned)

    def _flush(self, due: list[int]) -> None:
        """Flush the partitions of ``due`` the broker confirms caught up (the parser's
        answer arrives as a frame); the others read on."""
        flush = set()
        ends = self._ends(sorted(due))  # none when the broker does not answer: next turn
        for p in due:
            if p not in ends:
                continue
            if ends[p] > self.state.offsets.get(p, 0):
                self._records_wait(p, ends[p])
                continue
            flush.add(p)
        if flush:
            self.flushing |= flush
            self.blocking -= flush
            self.fetcher.flush(flush)

    def _caught_up(self, assigned: set[int]) -> bool:
        """Whether the broker confirms every partition of ``assigned`` read to its end
        (before ``--until-idle`` ends the run); those behind read on."""
        if not assigned:
            return True
        ends = self._ends(sorted(assigned))
        if set(ends) != assigned:
            return False
        behind = [p for p in assigned if ends[p] > self.state.offsets.get(p, 0)]
        for p in behind:
            self._records_wait(p, ends[p])
        return not behind

    def _records_wait(self, partition: int, end: int) -> None:
        """The broker says records wait on ``partition`` up to ``end``: it reads on, not
        idle, and (if it was flushed) holds the others back again."""
        self.highwater[partition] = end
        self.idle_since.pop(partition, None)
        self.state.merge.hold(partition)
