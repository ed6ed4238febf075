"""Partition checkpoints in a compacted Kafka topic, for ``run`` processes that share no
directory (``--checkpoint-topic``).

Each checkpoint (:class:`~detector.streaming.checkpoints.PartitionCheckpoint`) is one record
keyed ``<audit topic>/<partition>``; log compaction keeps the latest per key, so the topic
stays about as large as the group's state. A process that gets a partition reads the topic
to its end and takes the partition's latest record. The record before it is kept in
memory too, as read (for a torn round: see :mod:`detector.streaming.checkpoints`); compaction
may have removed it, so rolling a torn round back is best-effort here as well.

Checkpoints are pickles, and unpickling runs code: a record is *signed* (HMAC-SHA256 with
a key derived from the group's ID-hash key, which every process must share anyway:
``EXFIL_ID_HASH_KEY_FILE``) and one whose signature does not verify is refused. Whoever
can write the topic without the key cannot make the detector load anything; protect the
topic with ACLs all the same (it holds per-user behaviour profiles).

**Fencing is best-effort here.** A record carries the epoch its process claimed the
partition at in an ``epoch`` header, covered by the signature; a claim is one above the
partition's latest signed record (nothing is written: two processes claiming between two
saves get the same epoch). Before producing, a save reads the topic to its end and refuses
(:class:`~detector.exceptions.CheckpointFenced`) when the partition's latest signed record
has a newer epoch. A topic has no compare-and-set: a record another process produces
between that read and this save is not seen, and compaction keeps whichever came last.
The fence stops an evicted process's saves from the first one after the new owner's first
checkpoint, not a save racing it; the checkpoint directory's fence is exact
(:class:`~detector.streaming.checkpoints.CheckpointDir`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
import zlib
from typing import Any, Final

from detector.exceptions import StreamingError
from detector.moved import MOVED
from detector.streaming.checkpoints import (
    CHECKPOINT_KIND,
    CHECKPOINT_VERSION,
    PartitionCheckpoint,
    fenced,
)
from models.exceptions import StateError
from models.state import dumps_state, loads_state
from streams.kafka.settings import KafkaSettings

MAGIC: Final = b"EXFILCKPT1"
#: Largest checkpoint record (the topic's ``max.message.bytes``, the clients' limits).
MAX_BYTES: Final = 32 * 1024 * 1024
_MAC_BYTES: Final = 32
#: The record header holding the epoch the saving process claimed (ASCII decimal).
EPOCH_HEADER: Final = "epoch"


def _mac_key(id_key: bytes) -> bytes:
    return hmac.new(id_key, b"exfil-detector checkpoint signing", hashlib.sha256).digest()


def _epoch(headers: list[tuple[str, bytes]] | None) -> int | None:
    """The epoch a record's headers name (``None``: none, as in an older build's
    records, or not a number: such a record does not verify)."""
    for name, value in headers or ():
        if name == EPOCH_HEADER:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


class CheckpointTopic:
    """The checkpoints of one audit topic's partitions in compacted topic ``name``.

    Parameters
    ----------
    settings
        Bootstrap, TLS and SASL of the clients.
    name
        The checkpoint topic (created compacted, one partition, when missing).
    topic
        The audit topic whose partitions are checkpointed.
    id_key
        The group's ID-hash key: the signing key is derived from it.
    """

    def __init__(self, settings: KafkaSettings, name: str, topic: str, id_key: bytes) -> None:
        self.settings = settings
        self.name = name
        self.topic = topic
        self._key = _mac_key(id_key)
        self._producer: Any = None
        self._consumer: Any = None
        #: each key's latest record: its epoch header and its value
        self._latest: dict[bytes, tuple[int | None, bytes]] = {}
        #: each key's record before the latest, when the topic still had it
        self._previous: dict[bytes, tuple[int | None, bytes]] = {}

    def _key_of(self, partition: int) -> bytes:
        return f"{self.topic}/{partition}".encode()

    def _mac(self, epoch: int | None, body: bytes) -> bytes:
        # the epoch is signed with the body: a forged header cannot fence a partition
        # (``None``: an older build's record, signed without one)
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        if epoch is not None:
            mac.update(b"epoch=%d\n" % epoch)
        mac.update(body)
        return mac.digest()

    def _verified(self, epoch: int | None, value: bytes) -> bytes | None:
        """The body of a record whose signature verifies (never empty), else ``None``."""
        if not value.startswith(MAGIC):
            return None
        mac, body = value[len(MAGIC) : len(MAGIC) + _MAC_BYTES], value[len(MAGIC) + _MAC_BYTES :]
        verified = body and hmac.compare_digest(mac, self._mac(epoch, body))
        return body if verified else None

    def _connect(self) -> None:
        if self._producer is not None:
            return
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.errors import KafkaError

        try:
            self._ensure_topic()
            self._producer = KafkaProducer(
                acks="all",
                max_request_size=MAX_BYTES,
                **self.settings.client_args(),
            )
            self._consumer = KafkaConsumer(
                enable_auto_commit=False,
                max_partition_fetch_bytes=MAX_BYTES,
                fetch_max_bytes=2 * MAX_BYTES,
                **self.settings.client_args(),
            )
            tp = TopicPartition(self.name, 0)
            self._consumer.assign([tp])
            self._consumer.seek_to_beginning(tp)
        except KafkaError as exc:
            raise StreamingError(f"checkpoint topic {self.name}: {exc}") from exc

    def _ensure_topic(self) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(**self.settings.client_args())
        try:
            if self.name in admin.list_topics():
                return
            brokers = len(admin.describe_cluster().get("brokers", [])) or 1
            config = {"cleanup.policy": "compact", "max.message.bytes": str(MAX_BYTES)}
            topic = NewTopic(self.name, 1, min(3, brokers), topic_configs=config)
            # another process of the group may have made it first
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([topic])
        finally:
            admin.close()

    def save(self, checkpoint: PartitionCheckpoint) -> None:
        """Write one partition's checkpoint and wait until the broker has it.

        Raises
        ------
        CheckpointFenced
            The partition's latest signed record has a newer epoch than
            ``checkpoint`` (best-effort: see the module's docstring); nothing is written.
        StreamingError
            The topic cannot be read or the record was not acknowledged.
        """
        from kafka.errors import KafkaError

        partition, epoch = checkpoint.partition, checkpoint.epoch
        key = self._key_of(partition)
        self._catch_up()
        stored, value = self._latest.get(key, (None, b""))
        # a record that does not verify fences nothing (loading refuses it): this replaces it
        if stored is not None and stored > epoch and self._verified(stored, value):
            raise fenced(self.topic, partition, stored, epoch)
        try:
            body = zlib.compress(
                dumps_state(checkpoint, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION), 1
            )
        except StateError as exc:
            raise StreamingError(str(exc)) from exc
        value = MAGIC + self._mac(epoch, body) + body
        headers = [(EPOCH_HEADER, str(epoch).encode())]
        try:
            self._producer.send(self.name, key=key, value=value, headers=headers).get(timeout=60)
        except KafkaError as exc:
            raise StreamingError(
                f"checkpoint of {self.topic}/{partition} not written to {self.name}: {exc}"
            ) from exc

    def claim(self, partition: int) -> int:
        """One above the epoch of the partition's latest signed record (best-effort: see
        the module's docstring)."""
        self._catch_up()
        stored, value = self._latest.get(self._key_of(partition), (None, b""))
        verified = stored is not None and self._verified(stored, value) is not None
        return (stored if verified and stored is not None and stored > 0 else 0) + 1

    def load(self, partition: int) -> PartitionCheckpoint | None:
        """The partition's latest checkpoint in the topic, if any."""
        self._catch_up()
        return self._decode(partition, self._latest.get(self._key_of(partition)))

    def load_previous(self, partition: int) -> PartitionCheckpoint | None:
        """The partition's checkpoint before the latest, if the topic still had it."""
        self._catch_up()
        return self._decode(partition, self._previous.get(self._key_of(partition)))

    def _decode(
        self, partition: int, stored: tuple[int | None, bytes] | None
    ) -> PartitionCheckpoint | None:
        if stored is None:
            return None
        where = f"checkpoint of {self.topic}/{partition} in topic {self.name}"
        body = self._verified(*stored)
        if body is None:
            raise StreamingError(
                f"{where} is not signed with this group's key (EXFIL_ID_HASH_KEY_FILE): "
                "refused, unpickling it could run any code"
            )
        try:
            checkpoint = loads_state(
                zlib.decompress(body),
                kind=CHECKPOINT_KIND,
                version=CHECKPOINT_VERSION,
                moved=MOVED,
                source=where,
            )
        except (StateError, zlib.error) as exc:
            raise StreamingError(f"cannot resume partition {partition}: {exc}") from exc
        if not isinstance(checkpoint, PartitionCheckpoint) or checkpoint.partition != partition:
            raise StreamingError(f"{where} holds something else")
        return checkpoint

    def _catch_up(self) -> None:
        """Read the topic to its current end (the latest record of each key wins)."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        self._connect()
        tp = TopicPartition(self.name, 0)
        try:
            end = self._consumer.end_offsets([tp])[tp]
            deadline = time.monotonic() + 120
            while self._consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise StreamingError(f"checkpoint topic {self.name}: not read to its end")
                for records in self._consumer.poll(timeout_ms=1000).values():
                    for r in records:
                        if r.value is None:  # a tombstone
                            self._latest.pop(r.key, None)
                            self._previous.pop(r.key, None)
                            continue
                        if r.key in self._latest:
                            self._previous[r.key] = self._latest[r.key]
                        self._latest[r.key] = (_epoch(r.headers), r.value)
        except KafkaError as exc:
            raise StreamingError(f"cannot read checkpoint topic {self.name}: {exc}") from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._consumer.close()
            self._producer = self._consumer = None
