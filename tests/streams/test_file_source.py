"""The file side of the one code path: chunks read ahead on a thread, parsed in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paths import DATA
from streams.chunking import Chunk
from streams.exceptions import SourceReadError
from streams.file_source import SourceOptions, _read_ahead, iter_file_batches

SNAPSHOT = DATA / "real" / "pg" / "pgbadger-prefix.csv"


def _chunks(n: int, fail_at: int | None = None) -> Iterator[Chunk]:
    for i in range(n):
        if i == fail_at:
            raise SourceReadError(f"cannot read chunk {i}")
        yield Chunk(f"line {i}\n".encode(), i + 1, "x")


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "exfil-read"]


def test_read_ahead_keeps_order_and_counts_lines() -> None:
    got = list(_read_ahead(_chunks(50), 1))
    assert [c.first_line for c in got] == list(range(1, 51))
    assert all(c.lines == 1 for c in got)


def test_a_read_error_comes_after_the_chunks_before_it() -> None:
    seen = []
    with pytest.raises(SourceReadError, match="chunk 3"):
        for chunk in _read_ahead(_chunks(10, fail_at=3), 1):
            seen.append(chunk.first_line)
    assert seen == [1, 2, 3]
    assert not _reader_threads()


def test_stopping_early_stops_the_reader() -> None:
    it = _read_ahead(_chunks(10_000), 1)
    assert next(it).first_line == 1
    it.close()  # what a consumer that stops (or fails) does to the generator
    assert not _reader_threads()


def test_small_chunks_give_the_same_events_as_one(tmp_path: Path) -> None:
    """Many chunks through the reader thread and the prepare workers: same table."""

    def events(chunk_bytes: int) -> list[tuple[object, ...]]:
        opts = SourceOptions(format="pgaudit-csv", chunk_bytes=chunk_bytes)
        rows: list[tuple[object, ...]] = []
        for batch in iter_file_batches([SNAPSHOT], opts):
            rows += batch.result.events.select("raw_ref", "user", "rows").rows()
        return rows

    whole = events(1 << 30)
    assert whole and events(4096) == whole
