"""The rebalance side of the ``run`` loop (:mod:`detector.streaming.runner`): what the
process does when the consumer group gives it partitions, takes them back, or gave them
away while it was evicted, and when a newer owner's checkpoint fences a partition off.

Partitions leaving on a rebalance are judged, checkpointed and committed before they go,
so their next owner goes on exactly from there with the same baselines; partitions lost
to an eviction are forgotten, nothing saved (their next owner resumes from their last
checkpoint). Arriving partitions are claimed by the loop (``_Runner._arrive``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detector.streaming.guard import _log

if TYPE_CHECKING:
    import polars as pl

    from detector.pipeline import Pipeline
    from detector.streaming.delivery import Delivery
    from detector.streaming.group import GroupMember
    from detector.streaming.options import StreamOptions
    from detector.streaming.partitions import OwnedPartitions
    from detector.streaming.worker import PipelineWorker
    from streams.kafka.fetcher import FetcherProcess


class Rebalancing:
    """Mixed into the runner: the attributes below are the runner's."""

    tp: Any
    options: StreamOptions
    group: GroupMember
    pipeline: Pipeline
    fetcher: FetcherProcess
    worker: PipelineWorker
    delivery: Delivery
    state: OwnedPartitions
    changed: bool
    seeked: set[int]
    owned: set[int]
    fenced: set[int]
    flushing: set[int]
    idle_since: dict[int, float]
    blocking: set[int]

    def _judge(self, events: pl.DataFrame | None, stamps: list[int] | None = None) -> None:
        raise NotImplementedError

    def _assigned(self, partitions: set[int]) -> None:
        """The group's new assignment (eager: all of this process's partitions); the loop
        claims and resumes them (:meth:`_arrive`)."""
        self.owned |= partitions
        self.fenced.clear()
        _log(f"partitions assigned {sorted(partitions)}")

    def _revoke(self, partitions: set[int]) -> dict[Any, Any]:
        """Partitions leaving this consumer (a rebalance): send the alerts, checkpoint
        them with their parsers, queued events and users' state (taken out of this
        process); the offsets to commit before they go, so their next owner goes on
        exactly from there, with the same baselines."""
        from kafka.structs import OffsetAndMetadata

        self.owned -= partitions
        self.changed = True
        # the fetcher stops reading them; their parsers as of the last frame read (the
        # frames before the answer still count: they are handled while waiting for it)
        self.state.partitions.update(self.fetcher.revoke(partitions & self.seeked))
        self._forget(partitions)
        partitions &= set(self.state.partitions) | set(self.state.offsets)
        if not partitions:
            return {}
        self.worker.drain()  # the batches judged so far are in the state that leaves
        if self.state.store is None:
            # no checkpoint to carry a parser's held-back records or the events queued
            # behind other partitions: judge them now (their users start cold elsewhere)
            for p in partitions:
                stream = self.state.partitions.get(p)
                if stream is not None:
                    events, rejects = stream.flush()
                    self.state.merge.add(p, events, None)
                    self.delivery.dead_letters(rejects)
            self._judge(self.state.merge.drop(partitions))
            self.worker.drain()
        self.delivery.acknowledge()
        leaving = self.state.leave(partitions)
        _log(f"partitions revoked {sorted(partitions)}")
        self._fenced(leaving.fenced)
        return {
            self.tp(self.options.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in leaving.offsets.items()
        }

    def _lose(self, partitions: set[int]) -> None:
        """Partitions the group gave away while this process was evicted (heartbeats
        missed past the session timeout): forgotten, nothing saved, nothing committed;
        their next owner resumes from their last checkpoint."""
        self.owned -= partitions
        self.changed = True
        self.fetcher.revoke(partitions & self.seeked)  # their parsers are not ours now
        self._forget(partitions)
        self.worker.drain()  # no batch in flight re-creates their users' state after
        self.state.lose(partitions)
        _log(f"partitions lost {sorted(partitions)} (evicted from the group)")

    def _fenced(self, partitions: set[int]) -> None:
        """Partitions whose checkpoint a newer owner saved: this process lost them (it
        was evicted and does not know yet); their records are skipped until the group
        assigns partitions again."""
        if partitions:
            self.changed = True
            self.fenced |= partitions
            self.fetcher.revoke(partitions & self.seeked)
            self._forget(partitions)  # claimed anew if the group gives them back
            _log(f"partitions {sorted(partitions)} claimed by another process: forgotten")

    def _forget(self, partitions: set[int]) -> None:
        """The loop's bookkeeping of partitions leaving (claimed anew if they come back)."""
        self.seeked -= partitions
        self.flushing -= partitions
        self.blocking -= partitions
        for p in partitions:
            self.idle_since.pop(p, None)

    def _share(self, assigned: set[int]) -> None:
        """This process's share of the alert budget: its partitions of the topic's."""
        from kafka.errors import KafkaError

        try:
            total = self.group.consumer.partitions_for_topic(self.options.topic)
        except KafkaError:  # no metadata now (a broker outage): the share stands
            return
        if assigned and total:
            share = min(1.0, len(assigned) / len(total))
            if share != self.pipeline.budget_share:
                self.worker.drain()  # batches judged before the change keep the old share
                self.pipeline.budget_share = share
