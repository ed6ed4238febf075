"""The checkpoint topic's fence, on the real broker: a process saving a partition after
another process claimed it is refused, and a record whose epoch header was changed
(not signed) fences nothing and is refused on load."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from detector.config import load_config
from detector.exceptions import CheckpointFenced, StreamingError
from detector.sample import bundled_sample_config
from detector.streaming.checkpoint_topic import CheckpointTopic
from detector.streaming.checkpoints import PartitionCheckpoint
from realdb.kafka import KafkaBroker
from streams.kafka.records import PartitionStream

pytestmark = pytest.mark.kafka

KEY = b"group-shared-key-of-some-length"


def _process(broker: KafkaBroker, name: str) -> CheckpointTopic:
    """One ``run`` process's store on checkpoint topic ``name``."""
    settings = load_config(bundled_sample_config()).kafka_settings(broker.bootstrap)
    return CheckpointTopic(settings, name, "audit", KEY)


def _checkpoint(partition: int, offset: int, epoch: int) -> PartitionCheckpoint:
    return PartitionCheckpoint(
        "audit", partition, offset, PartitionStream("audit", partition), epoch=epoch
    )


def _records(broker: KafkaBroker, name: str) -> list[tuple[bytes, bytes, list]]:
    consumer = KafkaConsumer(
        name,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [(m.key, m.value, list(m.headers)) for m in consumer]
    finally:
        consumer.close()


def test_a_save_after_another_process_claimed_the_partition_is_fenced(
    kafka_broker: KafkaBroker,
) -> None:
    name = f"ckpt-{uuid.uuid4().hex[:8]}"
    evicted, new_owner = _process(kafka_broker, name), _process(kafka_broker, name)
    try:
        first = evicted.claim(1)
        evicted.save(_checkpoint(1, 100, first))
        second = new_owner.claim(1)
        assert second == first + 1
        new_owner.save(_checkpoint(1, 500, second))
        with pytest.raises(CheckpointFenced, match=rf"audit/1 .*epoch {second}.*epoch {first}"):
            evicted.save(_checkpoint(1, 200, first))
        evicted.save(_checkpoint(2, 300, evicted.claim(2)))  # another partition: its own
        new_owner.save(_checkpoint(1, 600, second))  # the owner again: replaces
        reader = _process(kafka_broker, name)
        loaded, previous = reader.load(1), reader.load_previous(1)
        assert loaded is not None and (loaded.offset, loaded.epoch) == (600, second)
        # the one before it, for a torn round to roll back to
        assert previous is not None and (previous.offset, previous.epoch) == (500, second)
        reader.close()
        assert len(_records(kafka_broker, name)) == 4  # the fenced save wrote nothing
    finally:
        evicted.close()
        new_owner.close()


def test_an_epoch_header_not_signed_fences_nothing_and_is_refused(
    kafka_broker: KafkaBroker,
) -> None:
    name = f"ckpt-{uuid.uuid4().hex[:8]}"
    owner = _process(kafka_broker, name)
    try:
        epoch = owner.claim(1)
        owner.save(_checkpoint(1, 100, epoch))
        key, value, _ = _records(kafka_broker, name)[-1]
        # the owner's record again with a raised epoch: its signature no longer holds
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        producer.send(name, key=key, value=value, headers=[("epoch", b"99")]).get(timeout=30)
        producer.close()
        with pytest.raises(StreamingError, match="not signed with this group's key"):
            _process(kafka_broker, name).load(1)
        owner.save(_checkpoint(1, 200, epoch))  # not fenced by the forged epoch
        loaded = _process(kafka_broker, name).load(1)
        assert loaded is not None and (loaded.offset, loaded.epoch) == (200, epoch)
    finally:
        owner.close()
