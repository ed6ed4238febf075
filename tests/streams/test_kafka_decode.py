"""The fast record decoding yields exactly what kafka-python's own decoding yields."""

from __future__ import annotations

import random
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from kafka_io import topic
from realdb.kafka import KafkaBroker
from streams.kafka import decode as kafka_decode

TP = TopicPartition("audit", 3)


def _batch(records: list[tuple[bytes | None, bytes | None, list[Any]]], *, base: int,
           compression: int = 0, ts: int = 1_700_000_000_000) -> bytes:  # fmt: skip
    builder = DefaultRecordBatchBuilder(2, compression, False, -1, -1, -1, 1 << 26)
    for k, (key, value, headers) in enumerate(records):
        builder.append(k, ts + 37 * k * k, key, value, headers)
    data = builder.build()
    # a fetched batch carries its base offset in the first 8 bytes
    data[0:8] = base.to_bytes(8, "big")
    return bytes(data)


def _records(seed: int, n: int) -> list[tuple[bytes | None, bytes | None, list[Any]]]:
    rng = random.Random(seed)
    out: list[tuple[bytes | None, bytes | None, list[Any]]] = []
    for k in range(n):
        size = rng.choice([0, 1, 63, 64, 200, 8191, 8192, 20_000, 70_000])
        value = None if k % 17 == 5 else rng.randbytes(size)
        key = None if k % 5 == 0 else f"user{k % 7}".encode()
        headers = [] if k % 3 else [("reason", b"x" * (k % 200)), ("empty", None)]
        out.append((key, value, headers))
    return out


def _unpack(unpack: Any, data: bytes, fetch_offset: int) -> list[Any]:
    part = Fetcher.PartitionRecords(fetch_offset, TP, MemoryRecords(data))
    got = list(unpack(part, TP, MemoryRecords(data), None, None))
    return [*got, (part.next_fetch_offset, part.records_read, part.bytes_read)]


@pytest.mark.parametrize("compression", [0, 1])  # none, gzip
def test_fast_decoding_yields_kafka_pythons_records(compression: int) -> None:
    data = b"".join(
        _batch(_records(seed, 40), base=base, compression=compression)
        for seed, base in ((1, 0), (2, 40), (3, 80))
    )
    stock = _unpack(kafka_decode._STOCK, data, 0)
    fast = _unpack(kafka_decode._unpack_records, data, 0)
    assert len(stock) == 121
    assert fast == stock  # every field: offsets, times, keys, values, headers, sizes


def test_a_truncated_record_is_corrupt_not_garbage() -> None:
    data = _batch(_records(4, 3), base=0)
    # the batch loses its last 5 bytes, its length says so (CRC unchecked): the last
    # record claims more bytes than are left
    cut = data[:8] + (len(data) - 5 - 12).to_bytes(4, "big") + data[12:-5]
    part = Fetcher.PartitionRecords(0, TP, MemoryRecords(cut), check_crcs=False)
    with pytest.raises(CorruptRecordError):
        list(kafka_decode._unpack_records(part, TP, MemoryRecords(cut), None, None))


@pytest.mark.kafka
def test_a_consumer_reads_the_same_records_either_way(
    kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = topic(kafka_broker, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=50)
    for key, value, headers in _records(9, 300):
        if key is None and value is None:
            key = b"tombstone"  # the producer wants one of them
        # the producer takes no null header value
        producer.send(name, key=key, value=value, headers=[(h, v or b"") for h, v in headers])
    producer.flush()
    producer.close()

    def read() -> list[Any]:
        consumer = KafkaConsumer(
            name,
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        try:
            return sorted(consumer, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    monkeypatch.setattr(Fetcher.PartitionRecords, "_unpack_records", kafka_decode._STOCK)
    stock = read()
    kafka_decode.install()
    assert Fetcher.PartitionRecords._unpack_records is kafka_decode._unpack_records
    fast = read()
    assert len(stock) == 300
    assert fast == stock
