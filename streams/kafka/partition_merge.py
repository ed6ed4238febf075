"""Events of several partitions, released in event-time order.

Each partition of the audit topic is in order on its own, but one consumer reads them at
different speeds: released as they come, a partition that runs ahead would push the
detector's watermark past events another partition has not delivered yet, and those would
arrive late. :class:`EventTimeMerge` holds each partition's parsed events and releases
only those no partition can still precede: up to the least of the partitions' *complete*
times (the latest event a partition's parser has let go; its held-back records are
later). A partition that is caught up and flushed does not hold the others back
(``complete`` = ``None`` marks "nothing more is pending from it"). Released events carry
their partition in a ``_partition`` column (the detector keeps each partition's users
apart).

A flushed partition may get records again: :meth:`EventTimeMerge.hold` makes it hold the
others back again, at the latest time it has delivered, until it delivers more or is
flushed again (the runner decides when: new records on the topic after a quiet spell).

>>> import datetime as dt
>>> t = lambda m: dt.datetime(2024, 3, 4, 9, m, tzinfo=dt.UTC)
>>> ev = lambda *ms: pl.DataFrame({"event_time": [t(m) for m in ms], "n": list(ms)})
>>> merge = EventTimeMerge()
>>> merge.add(0, ev(1, 5), complete=t(5))
>>> merge.add(1, ev(2), complete=t(2))
>>> merge.release([0, 1])["n"].to_list()   # partition 1 is complete only up to 09:02
[1, 2]
>>> merge.add(1, ev(7), complete=None)      # caught up; partition 0 may still send 09:06
>>> merge.release([0, 1])["n"].to_list()
[5]
>>> merge.add(0, ev(), complete=None)       # caught up too
>>> merge.release([0, 1])["n"].to_list()
[7]
>>> merge.hold(0)                            # records may follow on partition 0
>>> merge.add(1, ev(9), complete=t(9))
>>> merge.release([0, 1]) is None           # partition 0 may still send 09:08
True
>>> merge.add(0, ev(8), complete=t(8)); merge.release([0, 1])["n"].to_list()
[8]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

_SENTINEL = dt.datetime.max.replace(tzinfo=dt.UTC)
#: What a partition that never delivered anything holds the others back at.
_BEGIN = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass
class EventTimeMerge:
    """Per-partition queues of events, released in event-time order (picklable)."""

    queues_: dict[int, list[pl.DataFrame]] = field(default_factory=dict)
    complete_: dict[int, dt.datetime | None] = field(default_factory=dict)
    #: the latest event time each partition has delivered (queued or released)
    latest_: dict[int, dt.datetime] = field(default_factory=dict)
    #: the time up to which events have been released
    released_: dt.datetime | None = None

    def __setstate__(self, state: dict[str, object]) -> None:
        """Load a pickled merge (one pickled before ``latest_`` and ``released_``)."""
        self.__dict__.update({"latest_": {}, "released_": None} | state)

    def add(self, partition: int, events: pl.DataFrame, complete: dt.datetime | None) -> None:
        """Queue ``events`` of ``partition``; ``complete``: the time up to which it has
        delivered everything (``None``: nothing pending, it holds no one back)."""
        if events.height:
            self.queues_.setdefault(partition, []).append(events)
            latest = events["event_time"].max()
            known = self.latest_.get(partition)
            self.latest_[partition] = latest if known is None else max(known, latest)  # type: ignore[type-var, assignment]
        self.complete_[partition] = complete

    def hold(self, partition: int) -> None:
        """A flushed ``partition`` holds the others back again, at the latest time it has
        delivered (else the latest released): records may follow on it."""
        if partition not in self.complete_ or self.complete_[partition] is not None:
            return
        times = [t for t in (self.latest_.get(partition), self.released_) if t is not None]
        self.complete_[partition] = max(times) if times else _BEGIN

    def held(self, partition: int) -> tuple[list[pl.DataFrame], dt.datetime | None]:
        """What ``partition`` has queued and its complete time (for a checkpoint)."""
        return list(self.queues_.get(partition, [])), self.complete_.get(partition)

    def restore(
        self, partition: int, queue: list[pl.DataFrame], complete: dt.datetime | None
    ) -> None:
        """Put back what :meth:`held` gave (a partition resumed from its checkpoint)."""
        self.queues_[partition] = list(queue)
        self.complete_[partition] = complete
        times = [f["event_time"].max() for f in queue if f.height]
        if times:
            self.latest_[partition] = max(times)  # type: ignore[type-var]

    def pending(self) -> int:
        """Events queued."""
        return sum(f.height for q in self.queues_.values() for f in q)

    def release(self, partitions: Iterable[int]) -> pl.DataFrame | None:
        """Queued events up to the least complete time of ``partitions`` (those the
        consumer is assigned), in event-time order; ``None`` when nothing can go yet."""
        limits = []
        for p in partitions:
            if p not in self.complete_:
                return None  # a partition not heard from yet could hold anything
            c = self.complete_[p]
            limits.append(_SENTINEL if c is None else c)
        if not limits:
            return None
        return self._take(min(limits))

    def drain(self) -> pl.DataFrame | None:
        """Everything queued (end of input)."""
        return self._take(_SENTINEL)

    def flushed(self, partition: int) -> bool:
        """Whether ``partition`` holds no one back (caught up and flushed)."""
        return partition in self.complete_ and self.complete_[partition] is None

    def drop(self, partitions: Iterable[int]) -> pl.DataFrame | None:
        """Everything queued of ``partitions``, which are forgotten (revoked from this
        consumer: their events are judged now, whatever the others have delivered)."""
        partitions = list(partitions)
        taken = [_tagged(f, p) for p in partitions for f in self.queues_.pop(p, [])]
        for p in partitions:
            self.complete_.pop(p, None)
            self.latest_.pop(p, None)
        if not taken:
            return None
        return pl.concat(taken, how="vertical_relaxed").sort("event_time", maintain_order=True)

    def _take(self, upto: dt.datetime) -> pl.DataFrame | None:
        parts, keep = [], {}
        for p in sorted(self.queues_):
            frames = self.queues_[p]
            if not frames:
                continue
            queued = pl.concat(frames, how="vertical_relaxed")
            due = queued["event_time"] <= upto
            parts.append(_tagged(queued.filter(due), p))
            rest = queued.filter(~due)
            keep[p] = [rest] if rest.height else []
        self.queues_ = keep
        ready = [f for f in parts if f.height]
        bounds = [t for t in (self.released_, None if upto == _SENTINEL else upto) if t]
        bounds += [f["event_time"].max() for f in ready]  # type: ignore[misc]
        self.released_ = max(bounds) if bounds else None
        if not ready:
            return None
        # stable: partition order, then each partition's own order, for equal times
        return pl.concat(ready, how="vertical_relaxed").sort("event_time", maintain_order=True)


def _tagged(events: pl.DataFrame, partition: int) -> pl.DataFrame:
    return events.with_columns(_partition=pl.lit(partition, dtype=pl.Int32))
