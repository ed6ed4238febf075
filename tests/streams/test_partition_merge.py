"""Partitions read at uneven speeds, merged in event-time order (no broker needed).

The fetcher tells the merge how far each partition is complete with its parser's latest
released event (:attr:`streams.kafka.records.PartitionStream.high_`). A partition's first
records can all be held back by its parser (the last second of a read waits for the rest
of its statement): that partition is complete up to nothing yet, not "nothing pending",
or the other partitions' events go past its records, which then arrive late and change
the alerts (the same sample on Kafka gave one alert another score and typical numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from detector.sample import bundled_sample
from kafka_io import sample_records
from streams.file_source import SourceOptions
from streams.kafka.partition_merge import EventTimeMerge
from streams.kafka.records import PartitionStream


@dataclass
class _Record:
    offset: int
    value: bytes


def _records(user: str) -> list[_Record]:
    mine = [r for k, r in sample_records(bundled_sample()) if k == user]
    return [_Record(offset, r.encode()) for offset, r in enumerate(mine)]


@pytest.fixture(scope="module")
def streams() -> tuple[list[_Record], list[_Record]]:
    return _records("analyst02"), _records("etl_loader")


def test_a_partition_whose_first_records_are_all_held_back_holds_the_others(
    streams: tuple[list[_Record], list[_Record]],
) -> None:
    held, other = streams
    a, b = (PartitionStream("audit", p, SourceOptions(format="pgaudit-csv")) for p in (0, 1))
    merge = EventTimeMerge()
    first, _ = a.feed(held[:1])  # one record: the parser waits for the rest of its second
    assert first.is_empty()
    merge.add(0, first, a.high_)
    events, _ = b.feed(other)  # a whole week, most of it after partition 0's record
    merge.add(1, events, b.high_)
    released = merge.release([0, 1])
    rest, _ = a.feed(held[1:])
    merge.add(0, rest, a.high_)
    later = merge.release([0, 1])
    # partition 0's events come after everything released before them, none late
    assert later is not None
    if released is not None:
        assert released["event_time"].max() <= later["event_time"].min()
