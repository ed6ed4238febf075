"""Faster decoding of fetched Kafka record batches for kafka-python's consumer.

kafka-python (pinned, see ``pyproject.toml``) decodes every record of a fetch in Python:
a ``DefaultRecord`` object, seven function calls for its varints, the key and value copied,
header sizes summed, then a ``ConsumerRecord``. At the detector's record sizes that was
~8 µs a record, a third of a streaming process's time. :func:`install` replaces the
fetcher's record unpacking with one that reads the plain case (message format v2, no
deserializers, read-uncommitted, not a control batch) in one loop with the varints
inlined, and hands everything else (old message formats, control batches, transactions,
deserializers) to kafka-python's own code. The records yielded are the same
``ConsumerRecord`` tuples with the same fields (``tests/streams/test_kafka_decode.py`` compares
both decoders on batches fetched from a real broker, headers, null keys and compression
included); batch CRCs are still checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from kafka.consumer.fetcher import ConsumerRecord, Fetcher, IsolationLevel
from kafka.errors import CorruptRecordError
from kafka.record.util import decode_varint

#: kafka-python's own unpacking, for everything but the plain case.
_STOCK: Final = Fetcher.PartitionRecords._unpack_records
_LOG_APPEND_TIME: Final = 1


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    """A zigzag varint (two-byte values inline: records are a few hundred bytes)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    c = buf[pos + 1]
    if c < 0x80:
        raw = (b & 0x7F) | (c << 7)
        return (raw >> 1) ^ -(raw & 1), pos + 2
    return decode_varint(buf, pos)


def _records(state: Any, batch: Any, topic: str, partition: int) -> Iterator[Any]:
    """Every record of one v2 batch, as kafka-python would yield it (``state``: the
    ``PartitionRecords`` whose counters and next offset advance with each record)."""
    leader_epoch = state.leader_epoch
    batch._maybe_uncompress()
    buf, pos, count = batch._buffer, batch._pos, batch._num_records
    base_offset = batch.base_offset
    ts_type = batch.timestamp_type
    first_ts = batch.first_timestamp
    append_ts = batch.max_timestamp if ts_type == _LOG_APPEND_TIME else None
    make = ConsumerRecord
    for _ in range(count):
        try:
            length, pos = _varint(buf, pos)
            start = pos
            pos += 1  # attributes: unused by format v2 records
            ts_delta, pos = _varint(buf, pos)
            offset_delta, pos = _varint(buf, pos)
            key_len, pos = _varint(buf, pos)
            if key_len >= 0:
                key = bytes(buf[pos : pos + key_len])
                pos += key_len
            else:
                key = None
            value_len, pos = _varint(buf, pos)
            if value_len >= 0:
                value = bytes(buf[pos : pos + value_len])
                pos += value_len
            else:
                value = None
            n_headers, pos = _varint(buf, pos)
            headers: list[tuple[str, bytes | None]] = []
            header_size = -1
            if n_headers:
                if n_headers < 0:
                    raise CorruptRecordError(f"Found invalid number of record headers {n_headers}")
                header_size = 0
                for _h in range(n_headers):
                    h_len, pos = _varint(buf, pos)
                    if h_len < 0:
                        raise CorruptRecordError(f"Invalid negative header key size {h_len}")
                    h_key = bytes(buf[pos : pos + h_len]).decode("utf-8")
                    pos += h_len
                    v_len, pos = _varint(buf, pos)
                    h_value = None
                    if v_len >= 0:
                        h_value = bytes(buf[pos : pos + v_len])
                        pos += v_len
                    headers.append((h_key, h_value))
                    header_size += h_len + (v_len if v_len >= 0 else 0)
        except (ValueError, IndexError) as exc:
            raise CorruptRecordError(f"Found invalid record structure: {exc!r}") from exc
        if pos - start != length:
            raise CorruptRecordError(
                f"Invalid record size: expected to read {length} bytes in record payload, "
                f"but instead read {pos - start}"
            )
        state.records_read += 1
        state.bytes_read += length
        state.next_fetch_offset = base_offset + offset_delta + 1
        yield make(
            topic,
            partition,
            leader_epoch,
            base_offset + offset_delta,
            append_ts if append_ts is not None else first_ts + ts_delta,
            ts_type,
            key,
            value,
            headers,
            None,
            key_len,
            value_len,
            header_size,
        )
    if pos != len(buf):
        raise CorruptRecordError(f"{len(buf) - pos} unconsumed bytes after all records consumed")


def _unpack_records(
    self: Any, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
) -> Iterator[Any]:
    """``Fetcher.PartitionRecords._unpack_records`` with the plain case decoded fast."""
    if (
        key_deserializer is not None
        or value_deserializer is not None
        or self.isolation_level != IsolationLevel.READ_UNCOMMITTED
    ):
        yield from _STOCK(self, tp, records, key_deserializer, value_deserializer)
        return
    batch = records.next_batch()
    last_batch = None
    while batch is not None:
        if batch.magic != 2:  # old message formats: kafka-python's path, from here on
            yield from _STOCK(self, tp, _Rewound(batch, records), None, None)
            return
        last_batch = batch
        if self.check_crcs and not batch.validate_crc():
            raise CorruptRecordError(
                f"Record batch for partition {self.topic_partition} at offset "
                f"{batch.base_offset} failed crc check"
            )
        self.leader_epoch = batch.leader_epoch
        if batch.is_control_batch:
            self.next_fetch_offset = batch.next_offset
            batch = records.next_batch()
            continue
        yield from _records(self, batch, tp.topic, tp.partition)
        batch = records.next_batch()
    if last_batch is not None:
        # format v2 keeps a batch's last offset even when compaction removed its record
        self.next_fetch_offset = last_batch.next_offset
    self.drain()


class _Rewound:
    """``MemoryRecords`` that yields ``first`` again before the rest (hands a legacy batch
    already taken back to kafka-python's unpacking)."""

    def __init__(self, first: Any, rest: Any) -> None:
        self._first: Any = first
        self._rest = rest

    def next_batch(self) -> Any:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._rest.next_batch()


def install() -> None:
    """Use the fast unpacking in every consumer of this process (idempotent)."""
    Fetcher.PartitionRecords._unpack_records = _unpack_records
