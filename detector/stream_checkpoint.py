"""Checkpoints of ``run``: one file per partition of the audit topic, in a directory every
process of the consumer group can read (``--state-dir``).

A partition's checkpoint (:class:`PartitionCheckpoint`) is everything needed to go on
from it, in any process: the next offset to read, the partition's parser, the events
parsed but not yet released to the pipeline, and its users' share of the detector
(:class:`~detector.partition_state.PartShard`). A process saves the checkpoints of the
partitions it owns at every checkpoint and when a rebalance takes one away; the process
that gets the partition next loads it, so a partition's users keep their baselines
through rebalances and crashes (SIGKILL included: the last checkpoint, and the offsets
committed with it, are where the next owner resumes).

The directory also holds the ID-hash key the group's processes share (``id-hash.key``,
created once, mode 0600) unless ``EXFIL_ID_HASH_KEY_FILE`` names one: people counted in
one process must hash to the same keys in the next.

Files are pickles (:mod:`models.state`): trusted input; protect the directory like the
key it holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import polars as pl

from detector.exceptions import StreamingError
from detector.partition_state import PartShard
from features.keyed_hash import random_key
from models.exceptions import StateError
from models.state import load_state, save_state
from streams.kafka_records import PartitionStream

#: Kind and version of a partition's checkpoint file.
CHECKPOINT_KIND: Final = "exfil-detector/partition"
CHECKPOINT_VERSION: Final = 1
KEY_FILE: Final = "id-hash.key"


@dataclass
class PartitionCheckpoint:
    """One partition's place in the stream and its users' state (picklable)."""

    topic: str
    partition: int
    #: next offset to read
    offset: int
    stream: PartitionStream
    #: parsed events not yet released to the pipeline, and the time up to which the
    #: partition had delivered everything (``None``: nothing pending)
    queue: list[pl.DataFrame] = field(default_factory=list)
    complete: dt.datetime | None = None
    shard: PartShard | None = None


class CheckpointStore(Protocol):
    """Where partition checkpoints live: a directory (:class:`CheckpointDir`) or a
    compacted topic (:class:`detector.checkpoint_topic.CheckpointTopic`)."""

    def save(self, checkpoint: PartitionCheckpoint) -> None: ...

    def load(self, partition: int) -> PartitionCheckpoint | None: ...

    def close(self) -> None: ...


class CheckpointDir:
    """The checkpoints of one topic's partitions under ``root``.

    Parameters
    ----------
    root
        The ``--state-dir`` (created on first save).
    topic
        The audit topic (Kafka topic names are safe file names).
    """

    def __init__(self, root: Path, topic: str) -> None:
        self.root = root
        self.topic = topic

    def path(self, partition: int) -> Path:
        return self.root / "partitions" / f"{self.topic}-{partition}.bin"

    def save(self, checkpoint: PartitionCheckpoint) -> None:
        """Write one partition's checkpoint atomically (a crash keeps the previous one)."""
        path = self.path(checkpoint.partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(path, checkpoint, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)

    def load(self, partition: int) -> PartitionCheckpoint | None:
        """The partition's last checkpoint, if any process saved one."""
        path = self.path(partition)
        if not path.exists():
            return None
        try:
            checkpoint = load_state(path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)
        except StateError as exc:
            raise StreamingError(f"cannot resume partition {partition}: {exc}") from exc
        if not isinstance(checkpoint, PartitionCheckpoint) or (
            checkpoint.topic,
            checkpoint.partition,
        ) != (self.topic, partition):
            raise StreamingError(f"{path} is not a checkpoint of {self.topic}/{partition}")
        return checkpoint

    def close(self) -> None:
        """Nothing to release (the files are written whole at each save)."""

    def id_key(self) -> bytes:
        """The ID-hash key of every process on this directory (made by the first)."""
        path = self.root / KEY_FILE
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # written aside and linked into place: a process starting at the same moment
            # sees no key or the whole key, and the first link wins
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".key-")
            try:
                os.write(fd, random_key())
                os.fsync(fd)
                os.close(fd)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        key = path.read_bytes()
        if len(key) < 16:
            raise StreamingError(f"ID hash key in {path} is shorter than 16 bytes")
        return key
