"""The real Kafka broker that scripts/kafka.sh starts, driven with kafka-python 3.0.12.

The Kafka source of the next issue relies on these facts, so they are checked against a
real broker rather than assumed: keyed messages come back exactly once and in order per key
through a consumer group, committed offsets stick, and a stopped or crashed broker comes
back on the same directory with its topics, messages and group offsets.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from realdb.kafka import KAFKA_SH, KafkaBroker, KafkaUnavailableError, check_available

MESSAGES = 1_000
KEYS = 40


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    try:
        admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def describe_partitions(bootstrap: str, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    try:
        assert topic in admin.list_topics()
        (described,) = admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> dict[str, int]:
    """Send ``count`` keyed messages ``key:seq`` (seq counts per key); key -> partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        sent = []
        for i in range(start, start + count):
            key = f"user-{i % KEYS:02d}"
            value = f"{key}:{i // KEYS}"
            sent.append((key, producer.send(topic, key=key.encode(), value=value.encode())))
        producer.flush(timeout=60)
        return {key: future.get(timeout=30).partition for key, future in sent}
    finally:
        producer.close(timeout=10)


def consume(bootstrap: str, topic: str, group: str, expected: int) -> list[ConsumerRecord]:
    """Read through a consumer group until ``expected`` records (then a little longer, so a
    duplicate would show), commit, and check the committed offsets reach the end."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 60
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        for _ in range(2):
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        consumer.commit()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
        assert {tp: consumer.committed(tp) for tp in partitions} == ends
        assert sum(ends.values()) == len(records)
        return records
    finally:
        consumer.close()


def values(records: list[ConsumerRecord]) -> list[str]:
    return sorted(r.value.decode() for r in records)


def expected_values(count: int) -> list[str]:
    return sorted(f"user-{i % KEYS:02d}:{i // KEYS}" for i in range(count))


def status(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), "status", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_keyed_messages_arrive_once_in_key_order(kafka_broker: KafkaBroker) -> None:
    topic = "audit-roundtrip"
    create_topic(kafka_broker.bootstrap, topic, 6)
    assert describe_partitions(kafka_broker.bootstrap, topic) == 6
    partition_of = produce(kafka_broker.bootstrap, topic, MESSAGES)

    records = consume(kafka_broker.bootstrap, topic, "roundtrip-group", MESSAGES)

    # Exactly once: every message, no duplicates.
    assert len(records) == MESSAGES
    assert values(records) == expected_values(MESSAGES)
    # The 40 keys spread over all 6 partitions (murmur2 of fixed keys: deterministic).
    assert len({r.partition for r in records}) == 6
    by_key: dict[str, list[ConsumerRecord]] = defaultdict(list)
    for r in records:
        by_key[r.key.decode()].append(r)
    for key, recs in by_key.items():
        # One partition per key, the one the producer was told, and the key's messages in
        # the order they were sent.
        assert {r.partition for r in recs} == {partition_of[key]}
        recs.sort(key=lambda r: r.offset)
        assert [int(r.value.decode().split(":")[1]) for r in recs] == list(range(len(recs)))


def test_status_says_running_or_stopped(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    running = status(kafka_broker.directory)
    assert running.returncode == 0, running.stderr
    assert running.stdout.startswith("running (pid ")
    assert f"127.0.0.1:{kafka_broker.port}" in running.stdout
    assert kafka_broker.running

    never_started = status(tmp_path)
    assert never_started.returncode == 3
    assert never_started.stdout.strip() == "stopped"


def test_restart_and_crash_keep_topics_messages_and_offsets(
    kafka_available: None, tmp_path: Path
) -> None:
    topic, count = "survives", 200
    with KafkaBroker(tmp_path / "broker") as broker:
        create_topic(broker.bootstrap, topic, 3)
        produce(broker.bootstrap, topic, count)
        consume(broker.bootstrap, topic, "before-restart", count)

        broker.stop()
        assert not broker.running
        assert status(broker.directory).stdout.strip() == "stopped"
        broker.start()
        assert broker.running

        # Same directory, same port: the topic, its messages and the group's offsets.
        assert describe_partitions(broker.bootstrap, topic) == 3
        assert values(consume(broker.bootstrap, topic, "after-restart", count)) == (
            expected_values(count)
        )
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="before-restart")
        try:
            tps = [TopicPartition(topic, p) for p in range(3)]
            assert sum(consumer.committed(tp) for tp in tps) == count
        finally:
            consumer.close()

        # A crash (SIGKILL) loses nothing the broker acknowledged, and it takes new writes.
        broker.kill()
        assert not broker.running
        broker.start()
        produce(broker.bootstrap, topic, count, start=count)
        assert values(consume(broker.bootstrap, topic, "after-crash", 2 * count)) == (
            expected_values(2 * count)
        )
    assert not broker.running


@pytest.mark.kafka  # its check runs `java -version` first: no Java, another message
def test_missing_jars_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EXFIL_KAFKA_HOME", str(tmp_path))
    with pytest.raises(KafkaUnavailableError, match=r"broker jars are not in .*libs"):
        check_available()
