"""Checkpoints of ``run``: one file per partition of the audit topic, in a directory every
process of the consumer group can read (``--state-dir``).

A partition's checkpoint (:class:`PartitionCheckpoint`) is everything needed to go on
from it, in any process: the next offset to read, the partition's parser, the events
parsed but not yet released to the pipeline, and its users' share of the detector
(:class:`~detector.streaming.partition_state.PartShard`). A process saves the checkpoints of the
partitions it owns at every checkpoint and when a rebalance takes one away; the process
that gets the partition next loads it, so a partition's users keep their baselines
through rebalances and crashes (SIGKILL included: the last checkpoint, and the offsets
committed with it, are where the next owner resumes).

The directory also holds the ID-hash key the group's processes share (``id-hash.key``,
created once, mode 0600) unless ``EXFIL_ID_HASH_KEY_FILE`` names one: people counted in
one process must hash to the same keys in the next.

**Fencing.** A process the group evicted (heartbeats missed past the session timeout:
frozen, starved) may still be running and saving the partitions the group has given to
another process, which would overwrite the new owner's newer checkpoints. Each owner of
a partition *claims* it from the store when the group assigns it (:meth:`CheckpointDir.claim`):
the partition's epoch goes up by one, and a checkpoint saved under an older epoch than the
stored one is refused (:class:`~detector.exceptions.CheckpointFenced`). The epoch is the
store's own counter, not the group's generation: a restarted process under the same
``--instance-id`` or a group made again (generations from 1) still claims a newer epoch.
The directory's fence is exact: the epoch is read, raised and compared, and the
checkpoint written, under an exclusive lock of the
partition (``flock``: the directory's file system must honour it across the group's hosts,
as local disks and NFS with locking do). The topic store's is best-effort
(:mod:`detector.streaming.checkpoint_topic`).

**Rounds.** The partitions one process checkpoints together (every
``--checkpoint-seconds``, or leaving together on a revoke) form a *round*
(:class:`CheckpointRound`), and each of their checkpoints carries a copy of the same
process-wide models. A process killed between two files of a round leaves its partitions
at different rounds; a process that took them over as they are would adopt one round's
models and learn the other partitions' records since the older round a second time. So a
store keeps each partition's previous checkpoint too (:meth:`CheckpointStore.load_previous`),
and a process taking partitions over rolls a torn round's partitions back to the round
before (:func:`untorn`): every partition then resumes from one whole round.

Files are pickles (:mod:`models.state`): trusted input; protect the directory like the
key it holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import polars as pl

from detector.exceptions import CheckpointFenced, StreamingError
from detector.moved import MOVED
from detector.streaming.partition_state import PartShard
from features.keyed_hash import random_key
from models.exceptions import StateError
from models.state import load_state, save_state, write_atomic
from streams.kafka.records import PartitionStream

#: Kind and version of a partition's checkpoint file.
CHECKPOINT_KIND: Final = "exfil-detector/partition"
CHECKPOINT_VERSION: Final = 2
KEY_FILE: Final = "id-hash.key"
#: How long a save waits for another process's save of the same partition to finish.
LOCK_SECONDS: Final = 120.0


@dataclass(frozen=True)
class CheckpointRound:
    """The checkpoints one process saved together, with the same process-wide models."""

    #: the saving process (random per process run: a restarted process is another writer)
    writer: str
    #: the writer's round number (rounds of one writer only are compared)
    seq: int
    #: the partitions the round checkpoints
    partitions: frozenset[int]


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
    #: the epoch the saving process claimed the partition at (``-1``: unknown, the lowest:
    #: a checkpoint saved under it fences no other save)
    epoch: int = -1
    #: the round the checkpoint was saved in (``None``: saved alone)
    round: CheckpointRound | None = None


def untorn(
    checkpoints: dict[int, PartitionCheckpoint], store: CheckpointStore
) -> dict[int, PartitionCheckpoint]:
    """The checkpoints of partitions taken over together, a torn round's rolled back.

    A round is torn when one of its partitions taken over here holds an older round of the
    same writer (the writer died before saving it): the round's partitions go back to
    their previous checkpoint when it is of that older round, so that all resume from one
    whole round, whose models they share. Anything else is kept as it is.

    >>> round_ = lambda seq: CheckpointRound("w", seq, frozenset({0, 1}))
    >>> at = lambda p, seq: PartitionCheckpoint("t", p, seq * 10, None, round=round_(seq))
    >>> class Store:
    ...     def load_previous(self, partition):
    ...         return at(partition, 1)
    >>> resumed = untorn({0: at(0, 2), 1: at(1, 1)}, Store())  # died saving round 2
    >>> {p: c.offset for p, c in resumed.items()}
    {0: 10, 1: 10}
    """
    resumed = dict(checkpoints)
    for partition, checkpoint in checkpoints.items():
        mine = checkpoint.round
        if mine is None:
            continue
        behind = [
            other.round.seq
            for q in mine.partitions & checkpoints.keys()
            if (other := checkpoints[q]).round is not None
            and other.round.writer == mine.writer
            and other.round.seq < mine.seq
        ]
        if not behind:
            continue
        previous = store.load_previous(partition)
        if (
            previous is not None
            and previous.round is not None
            and (previous.round.writer, previous.round.seq) == (mine.writer, max(behind))
        ):
            resumed[partition] = previous
    return resumed


def fenced(topic: str, partition: int, stored: int, epoch: int) -> CheckpointFenced:
    """The error of a save under ``epoch`` when epoch ``stored`` saved already."""
    return CheckpointFenced(
        f"checkpoint of {topic}/{partition} not saved: its owner since epoch {stored} "
        f"claimed it after this process did (epoch {epoch}): the group gave the partition "
        "to another process"
    )


class CheckpointStore(Protocol):
    """Where partition checkpoints live: a directory (:class:`CheckpointDir`) or a
    compacted topic (:class:`detector.streaming.checkpoint_topic.CheckpointTopic`)."""

    def claim(self, partition: int) -> int:
        """A new owner takes the partition: its epoch, above every earlier owner's."""
        ...

    def save(self, checkpoint: PartitionCheckpoint) -> None:
        """Store ``checkpoint``; raises :class:`~detector.exceptions.CheckpointFenced`
        when a later owner claimed the partition."""
        ...

    def load(self, partition: int) -> PartitionCheckpoint | None:
        """The partition's latest checkpoint, if any."""
        ...

    def load_previous(self, partition: int) -> PartitionCheckpoint | None:
        """The checkpoint the latest one replaced, if the store still has it."""
        ...

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

    def _previous_path(self, partition: int) -> Path:
        return self.root / "partitions" / f"{self.topic}-{partition}.prev.bin"

    def _lock_path(self, partition: int) -> Path:
        return self.root / "partitions" / f"{self.topic}-{partition}.lock"

    def _epoch_path(self, partition: int) -> Path:
        return self.root / "partitions" / f"{self.topic}-{partition}.epoch"

    def save(self, checkpoint: PartitionCheckpoint) -> None:
        """Write one partition's checkpoint atomically (a crash keeps the previous one),
        unless a later owner claimed the partition.

        Raises
        ------
        CheckpointFenced
            The partition's epoch is greater than ``checkpoint``'s: the group gave the
            partition to another process, which claimed it; nothing is written.
        StreamingError
            Another process held the partition's lock for over :data:`LOCK_SECONDS`,
            or the epoch file is damaged.
        """
        partition = checkpoint.partition
        path = self.path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(partition):
            stored = self._stored_epoch(partition)
            if stored is not None and stored > checkpoint.epoch:
                raise fenced(self.topic, partition, stored, checkpoint.epoch)
            # the fence is raised before the checkpoint is written: a crash between the
            # two leaves it at the epoch of the partition's current owner, never
            # below a checkpoint it stored (which would let an older writer through)
            if stored != checkpoint.epoch:
                self._write_epoch(partition, checkpoint.epoch)
            # the latest becomes the previous (a torn round rolls back to it); a crash
            # before the new one is in place leaves only the previous, which load reads
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, self._previous_path(partition))
            save_state(path, checkpoint, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)

    def claim(self, partition: int) -> int:
        """Raise the partition's epoch by one and return it: from now on, saves under an
        earlier epoch (an evicted owner's) are refused."""
        self.path(partition).parent.mkdir(parents=True, exist_ok=True)
        with self._locked(partition):
            epoch = max(0, self._stored_epoch(partition) or 0) + 1
            self._write_epoch(partition, epoch)
        return epoch

    def _write_epoch(self, partition: int, epoch: int) -> None:
        path = self._epoch_path(partition)
        try:
            write_atomic(path, f"{epoch}\n".encode())
        except OSError as exc:
            raise StreamingError(f"cannot write {path}: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self, partition: int) -> Iterator[None]:
        """Exclusive lock of the partition's files among the group's processes. Waits a
        bounded time: the holder may be frozen mid-save, and waiting for ever would stall
        this process's loop until the group evicted it too."""
        fd = os.open(self._lock_path(partition), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StreamingError(
                            f"checkpoint of {self.topic}/{partition}: another process has "
                            f"held {self._lock_path(partition)} for over {LOCK_SECONDS:.0f} s"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _stored_epoch(self, partition: int) -> int | None:
        """The partition's epoch (``None``: never claimed nor saved), from its small epoch
        file: the checkpoint is not unpickled to learn it."""
        path = self._epoch_path(partition)
        try:
            return int(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StreamingError(f"cannot read the checkpoint epoch in {path}: {exc}") from exc

    def load(self, partition: int) -> PartitionCheckpoint | None:
        """The partition's last checkpoint, if any process saved one (no lock: files are
        replaced whole)."""
        path = self.path(partition)
        if not path.exists():  # a save died between its two renames: the previous is the last
            return self._read(partition, self._previous_path(partition))
        return self._read(partition, path)

    def load_previous(self, partition: int) -> PartitionCheckpoint | None:
        """The checkpoint the last one replaced, if any."""
        if not self.path(partition).exists():
            return None  # the previous is the last (see load)
        return self._read(partition, self._previous_path(partition))

    def _read(self, partition: int, path: Path) -> PartitionCheckpoint | None:
        if not path.exists():
            return None
        try:
            checkpoint = load_state(
                path, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION, moved=MOVED
            )
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
