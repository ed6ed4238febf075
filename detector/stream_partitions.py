"""The partitions a ``run`` process owns: their parsers, queued events, next offsets and
users' state, and how each arrives, is checkpointed and leaves.

A partition *arrives* (assigned by the group) from its checkpoint when one exists: its
parser, the events parsed but not released, its next offset, and its users' share of the
detector (:func:`detector.partition_state.import_part`). It is *checkpointed* with all of
that (a copy), and *leaves* (revoked) checkpointed with its users' state taken out of this
process. Kafka itself (seeking, committing, acknowledging alerts) is the runner's
(:mod:`detector.stream_runner`); this module does not import kafka-python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from detector.partition_state import ProcessModels, export_part, import_part, process_models
from detector.pipeline import DetectorState
from detector.stream_checkpoint import CheckpointStore, PartitionCheckpoint
from streams.file_source import SourceOptions
from streams.kafka_records import PartitionStream
from streams.partition_merge import EventTimeMerge


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
    options, max_record_bytes
        How a new partition's parser reads records.
    """

    topic: str
    detector: DetectorState
    store: CheckpointStore | None
    options: SourceOptions
    max_record_bytes: int
    partitions: dict[int, PartitionStream] = field(default_factory=dict)
    merge: EventTimeMerge = field(default_factory=EventTimeMerge)
    offsets: dict[int, int] = field(default_factory=dict)

    def stream(self, partition: int) -> PartitionStream:
        """The partition's parser (a new one for a partition read from its start)."""
        stream = self.partitions.get(partition)
        if stream is None:
            stream = PartitionStream(
                self.topic, partition, self.options, max_record_bytes=self.max_record_bytes
            )
            self.partitions[partition] = stream
        return stream

    def take_over(self, partition: int) -> int | None:
        """Resume an arriving partition from its checkpoint, if it has one (its users'
        state joins this process's); the offset to seek to, else ``None`` (the group's
        committed offset is right)."""
        checkpoint = None if self.store is None else self.store.load(partition)
        if checkpoint is None:
            return None
        if checkpoint.shard is not None:
            import_part(self.detector, checkpoint.shard)
        self.partitions[partition] = checkpoint.stream
        self.merge.restore(partition, checkpoint.queue, checkpoint.complete)
        self.offsets[partition] = checkpoint.offset
        return checkpoint.offset

    def save(self, partition: int, *, drop: bool, models: ProcessModels | None = None) -> None:
        """Checkpoint one partition (``drop``: its users' state leaves this process)."""
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
        self.store.save(
            PartitionCheckpoint(self.topic, partition, offset, stream, queue, complete, shard)
        )

    def save_all(self) -> None:
        """Checkpoint every partition owned (copies: they stay)."""
        models = process_models(self.detector) if self.store is not None else None
        for partition in sorted(self.partitions):
            self.save(partition, drop=False, models=models)

    def leave(self, partitions: Iterable[int]) -> dict[int, int]:
        """Checkpoint leaving partitions and forget them; their next offsets (to commit)."""
        partitions = sorted(set(partitions))
        models = process_models(self.detector) if self.store is not None else None
        for partition in partitions:
            self.save(partition, drop=True, models=models)
        self.merge.drop(partitions)  # saved with their checkpoints
        leaving = {p: self.offsets.pop(p) for p in partitions if p in self.offsets}
        for partition in partitions:
            self.partitions.pop(partition, None)
        return leaving
