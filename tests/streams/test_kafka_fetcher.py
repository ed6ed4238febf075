"""The fetcher process reads, decodes and parses partitions as the parent's own parsers
would, hands their parsers back, and a child that dies is an error, never a silent stop."""

from __future__ import annotations

import os
import signal
import time

import polars as pl
import pytest
from kafka import KafkaConsumer, TopicPartition

from detector.config import load_config
from detector.sample import bundled_sample, bundled_sample_config
from detector.streaming.clients import fetch_args
from detector.streaming.options import StreamOptions
from kafka_io import produce, sample_records, topic
from realdb.kafka import KafkaBroker
from streams.exceptions import FetcherError
from streams.kafka.fetcher import FetcherProcess, FetchSettings, Frame
from streams.kafka.records import PartitionStream

pytestmark = pytest.mark.kafka


def _settings(broker: KafkaBroker, name: str, poll_records: int = 500) -> FetchSettings:
    config = load_config(bundled_sample_config())
    options = StreamOptions(topic=name, poll_records=poll_records)
    args = fetch_args(config.kafka_settings(broker.bootstrap), options)
    return FetchSettings(name, args, config.source_options(), options.max_record_bytes)


def _parsed_here(broker: KafkaBroker, name: str, partition: int) -> pl.DataFrame:
    """The partition read and parsed in this process, flushed at the end."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=3000)
    tp = TopicPartition(name, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    config = load_config(bundled_sample_config())
    stream = PartitionStream(name, partition, config.source_options())
    frames = []
    try:
        for records in iter(lambda: consumer.poll(timeout_ms=2000).get(tp), None):
            frames.append(stream.feed(records)[0])
    finally:
        consumer.close()
    frames.append(stream.flush()[0])
    return pl.concat(frames)


def _until(fetcher: FetcherProcess, done: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the fetcher did not catch up"
        fetcher.read()
        time.sleep(0.05)


def test_the_child_parses_what_the_partition_s_parser_here_parses(
    kafka_broker: KafkaBroker,
) -> None:
    name = topic(kafka_broker, partitions=2)
    records = sample_records(bundled_sample())[:3000]
    produce(kafka_broker, name, [(k, r.encode()) for k, r in records])
    frames: list[Frame] = []
    fetcher = FetcherProcess(_settings(kafka_broker, name), frames.append)
    try:
        fetcher.assign({0: (None, None), 1: (None, None)})

        def caught_up() -> bool:
            read = {r.partition: r.offset for f in frames for r in f.reads}
            high = frames[-1].highwater if frames else {}
            return len(high) == 2 and all(read.get(p, 0) >= (high[p] or 1) for p in high)

        _until(fetcher, caught_up)
        assert sum(r.records for f in frames for r in f.reads) == len(records)
        assert len(frames) > 4  # many polls: parsers carried on from one frame to the next
        fetcher.flush({0, 1})
        parsers = fetcher.snapshot()  # answered after the flush's frame: it is in
        assert sorted(parsers) == [0, 1]
        assert all(p.next_line_ > 1 and p.format_ == "pgaudit-csv" for p in parsers.values())
        for p in (0, 1):
            got = pl.concat([r.events for f in frames for r in f.reads if r.partition == p])
            assert got.height and got.equals(_parsed_here(kafka_broker, name, p)), p
        back = fetcher.revoke({1})
        assert list(back) == [1] and sorted(fetcher.snapshot()) == [0]
    finally:
        fetcher.stop()


def test_a_child_that_dies_is_an_error_naming_its_exit(kafka_broker: KafkaBroker) -> None:
    name = topic(kafka_broker, partitions=1)
    fetcher = FetcherProcess(_settings(kafka_broker, name), lambda frame: None)
    try:
        fetcher.assign({0: (None, None)})
        assert fetcher.pid is not None
        os.kill(fetcher.pid, signal.SIGKILL)
        with pytest.raises(FetcherError, match="fetcher process is gone: exit code -9"):
            fetcher.snapshot()
        with pytest.raises(FetcherError, match="gone"):  # every later call says so too
            fetcher.read()
    finally:
        fetcher.stop()


def test_a_reconnect_goes_on_from_where_each_partition_stands(kafka_broker: KafkaBroker) -> None:
    """The watchdog's remedy for a partition that reads nothing: a new consumer in the
    child, the parsers kept; every record is read once, the events are those of one
    uninterrupted read."""
    name = topic(kafka_broker, partitions=2)
    records = [(k, r.encode()) for k, r in sample_records(bundled_sample())[:3000]]
    produce(kafka_broker, name, records[:1500])
    frames: list[Frame] = []
    fetcher = FetcherProcess(_settings(kafka_broker, name), frames.append)

    def read_all(total: int) -> None:
        _until(fetcher, lambda: sum(r.records for f in frames for r in f.reads) >= total)

    try:
        fetcher.assign({0: (None, None), 1: (None, None)})
        read_all(1500)
        fetcher.reconnect()
        produce(kafka_broker, name, records[1500:])
        read_all(len(records))
        time.sleep(1)  # nothing more comes: no record read twice
        fetcher.read()
        offsets = [(r.partition, r.offset, r.records) for f in frames for r in f.reads]
        assert sum(n for _, _, n in offsets) == len(records)
        fetcher.flush({0, 1})
        fetcher.snapshot()
        for p in (0, 1):
            # the same events; their order may differ where the polls cut the partition
            # elsewhere (the parser releases out-of-order lines per poll; the event-time
            # merge orders them downstream)
            got = pl.concat([r.events for f in frames for r in f.reads if r.partition == p])
            here = _parsed_here(kafka_broker, name, p)
            assert got.sort("raw_ref").equals(here.sort("raw_ref")), p
    finally:
        fetcher.stop()


def test_a_hung_child_is_an_error_not_a_hang(kafka_broker: KafkaBroker) -> None:
    name = topic(kafka_broker, partitions=1)
    fetcher = FetcherProcess(_settings(kafka_broker, name), lambda frame: None)
    try:
        fetcher.assign({0: (None, None)})
        assert fetcher.pid is not None
        os.kill(fetcher.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(FetcherError, match="did not answer in 2 s"):
            fetcher.snapshot(timeout=2)
        assert time.monotonic() - started < 10
    finally:
        if fetcher.pid is not None:
            os.kill(fetcher.pid, signal.SIGCONT)
        fetcher.stop()
