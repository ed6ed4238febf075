"""The partitions a ``run`` process owns: their parsers, queued events, next offsets and
users' state, and how each arrives, is checkpointed and leaves.

A partition *arrives* (assigned by the group) from its checkpoint when one exists: its
parser, the events parsed but not released, its next offset, and its users' share of the
detector (:func:`detector.streaming.partition_state.import_part`). It is *checkpointed* with all of
that (a copy), and *leaves* (revoked) checkpointed with its users' state taken out of this
process. Kafka itself (seeking, committing, acknowledging alerts) is the runner's
(:mod:`detector.streaming.runner`); this module does not import kafka-python.

A partition can also be *lost*: the group evicted this process (heartbeats missed past
the session timeout) and gave it to another, without a revoke. Every checkpoint carries
the epoch at which this process claimed the partition from the store when the group
assigned it (:meth:`OwnedPartitions.take_over`), and the store refuses one older than the stored
checkpoint's (:class:`~detector.exceptions.CheckpointFenced`): a partition found fenced
when saving, or reported lost by the consumer (:meth:`OwnedPartitions.lose`), is forgotten
without a checkpoint and without an offset to commit. Its next owner resumes from the last
checkpoint saved while this process owned it: the records read since are read again, and
their alerts, whose ids are deterministic, come again as the same alerts.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from detector.detector_state import DetectorState
from detector.exceptions import CheckpointFenced
from detector.streaming.checkpoints import (
    CheckpointRound,
    CheckpointStore,
    PartitionCheckpoint,
    untorn,
)
from detector.streaming.partition_state import (
    ProcessModels,
    export_part,
    import_part,
    process_models,
)
from streams.kafka.partition_merge import EventTimeMerge
from streams.kafka.records import PartitionStream


class Leaving(NamedTuple):
    """What :meth:`OwnedPartitions.leave` did with the leaving partitions."""

    #: next offset of each partition checkpointed (or with no store): to commit
    offsets: dict[int, int]
    #: partitions found fenced: lost to another process, forgotten, nothing to commit
    fenced: set[int]


@dataclass
class OwnedPartitions:
    """The stream's side of one process, per partition it owns.

    Parameters
    ----------
    topic
        The audit topic.
    detector
        The process's detector state (each partition's users have their part in it).
    store
        Where checkpoints live (``None``: nowhere; a partition leaving then takes
        nothing with it and its users start cold at their next owner).
    """

    topic: str
    detector: DetectorState
    store: CheckpointStore | None
    #: per partition, the epoch this process claimed it at (stamped in its checkpoints)
    epochs: dict[int, int] = field(default_factory=dict)
    #: each partition's parser, as of the last snapshot the fetcher process sent (or its
    #: checkpoint's, on arrival)
    partitions: dict[int, PartitionStream] = field(default_factory=dict)
    merge: EventTimeMerge = field(default_factory=EventTimeMerge)
    offsets: dict[int, int] = field(default_factory=dict)
    #: this process as a checkpoint writer, and its rounds so far
    writer: str = field(default_factory=lambda: secrets.token_hex(8))
    rounds: int = 0

    def take_over(self, partitions: Iterable[int]) -> dict[int, int]:
        """Claim arriving partitions (from then on, their previous owners' saves are
        refused) and resume them from their checkpoints, if they have some (their users'
        state joins this process's); the offsets to seek to (a partition without a
        checkpoint has none: the group's committed offset is right).

        Partitions arriving together are resumed together: a round their last owner
        died in the middle of is rolled back to the round before
        (:func:`~detector.streaming.checkpoints.untorn`)."""
        if self.store is None:
            return {}
        partitions = sorted(set(partitions))
        # claimed before loading: a save the previous owner makes after this is refused,
        # one made before it is what is loaded
        for partition in partitions:
            self.epochs[partition] = self.store.claim(partition)
        loaded = {p: c for p in partitions if (c := self.store.load(p)) is not None}
        offsets: dict[int, int] = {}
        for partition, checkpoint in sorted(untorn(loaded, self.store).items()):
            if checkpoint.shard is not None:
                import_part(self.detector, checkpoint.shard)
            self.partitions[partition] = checkpoint.stream
            self.merge.restore(partition, checkpoint.queue, checkpoint.complete)
            self.offsets[partition] = offsets[partition] = checkpoint.offset
        return offsets

    def save(
        self,
        partition: int,
        *,
        drop: bool,
        models: ProcessModels | None = None,
        round_: CheckpointRound | None = None,
    ) -> None:
        """Checkpoint one partition (``drop``: its users' state leaves this process;
        ``round_``: the round it is saved in, with ``models``).

        Raises
        ------
        CheckpointFenced
            Another process claimed the partition since this one did: this process
            lost it, and has forgotten it (as :meth:`lose`) before raising.
        """
        owned = partition in self.detector.parts
        if self.store is None:
            if drop and owned:
                export_part(self.detector, partition, drop=True)
            return
        stream = self.partitions.get(partition)
        offset = self.offsets.get(partition)
        if stream is None or offset is None:
            return  # nothing read here: the group's offset says it all
        queue, complete = self.merge.held(partition)
        shard = export_part(self.detector, partition, drop=drop, models=models) if owned else None
        checkpoint = PartitionCheckpoint(
            self.topic,
            partition,
            offset,
            stream,
            queue,
            complete,
            shard,
            self.epochs.get(partition, -1),
            round_,
        )
        try:
            self.store.save(checkpoint)
        except CheckpointFenced:
            self.lose([partition])
            raise

    def save_all(self) -> set[int]:
        """Checkpoint every partition owned (copies: they stay); the partitions found
        fenced. Those are forgotten (see :meth:`save`) and the others checkpointed all the
        same: :attr:`offsets` then holds the checkpointed ones' only (to commit)."""
        return self._save_round(sorted(self.partitions), drop=False)

    def leave(self, partitions: Iterable[int]) -> Leaving:
        """Checkpoint leaving partitions and forget them: the next offsets of those
        checkpointed (to commit), and those found fenced (forgotten, nothing to commit)."""
        partitions = sorted(set(partitions))
        fenced = self._save_round(partitions, drop=True)
        self.merge.drop(partitions)  # saved with their checkpoints
        offsets = {p: self.offsets.pop(p) for p in partitions if p in self.offsets}
        for partition in partitions:
            self.partitions.pop(partition, None)
            self.epochs.pop(partition, None)
        return Leaving(offsets, fenced)

    def _save_round(self, partitions: list[int], *, drop: bool) -> set[int]:
        """Checkpoint ``partitions`` as one round (one copy of the process-wide models);
        the partitions found fenced."""
        if self.store is None:
            models, round_ = None, None
        else:
            models = process_models(self.detector)
            self.rounds += 1
            round_ = CheckpointRound(self.writer, self.rounds, frozenset(partitions))
        fenced: set[int] = set()
        for partition in partitions:
            try:
                self.save(partition, drop=drop, models=models, round_=round_)
            except CheckpointFenced:
                fenced.add(partition)
        return fenced

    def lose(self, partitions: Iterable[int]) -> None:
        """Forget partitions the group took away without a revoke (this process was
        evicted), saving nothing: another process may own them already, and their last
        checkpoint, saved while this one owned them, is where their next owner resumes.
        Their users' state, queued events, parsers and offsets leave this process; no
        offset of theirs is to be committed."""
        partitions = sorted(set(partitions))
        for partition in partitions:
            if partition in self.detector.parts:
                export_part(self.detector, partition, drop=True)  # discarded: not ours now
            self.partitions.pop(partition, None)
            self.offsets.pop(partition, None)
            self.epochs.pop(partition, None)
        self.merge.drop(partitions)
