"""Read audit-log files as a stream of parsed micro-batches.

This is the file side of the one code path: ``parse`` and ``replay`` read files through
:func:`iter_file_batches`, Kafka feeds the same parsers message batches. Files of one
format are read in the order given through one parser, so sessions that continue across
a rotated log file keep their client address and user.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Final

from streams.base import Parser, ParseResult
from streams.chunking import DEFAULT_CHUNK_BYTES, Chunk, iter_chunks
from streams.detect import detect_file
from streams.exceptions import UnknownFormatError
from streams.pg.prefix import DEFAULT_PREFIX
from streams.pg.timestamps import abbreviation_table

#: Chunks prepared ahead of the one being consumed (and worker threads doing it).
PREFETCH: Final = 2

FORMATS: Final = ("auto", "pgaudit-csv", "pgaudit-json", "pgaudit-stderr", "mariadb-audit")


@dataclass(frozen=True)
class SourceOptions:
    """How to read the input files (from CLI flags or the config file)."""

    format: str = "auto"
    log_line_prefix: str | None = None
    server: str | None = None
    tz_abbreviations: Mapping[str, str] = field(default_factory=dict)
    mariadb_timezone: str = "UTC"
    chunk_bytes: int = DEFAULT_CHUNK_BYTES

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UnknownFormatError(
                f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}"
            )


def make_parser(fmt: str, prefix: str | None, options: SourceOptions) -> Parser:
    """A fresh parser for one concrete format."""
    abbreviations = abbreviation_table(options.tz_abbreviations)
    if fmt == "pgaudit-csv":
        from streams.pg.csvlog import PgauditCsvlogParser

        return PgauditCsvlogParser(server=options.server, abbreviations=abbreviations)
    if fmt == "pgaudit-json":
        from streams.pg.jsonlog import PgauditJsonlogParser

        return PgauditJsonlogParser(server=options.server, abbreviations=abbreviations)
    if fmt == "pgaudit-stderr":
        from streams.pg.stderr import PgauditStderrParser

        return PgauditStderrParser(
            log_line_prefix=prefix or DEFAULT_PREFIX,
            server=options.server,
            abbreviations=abbreviations,
        )
    if fmt == "mariadb-audit":
        from streams.mariadb.audit import MariaDBAuditParser

        return MariaDBAuditParser(server=options.server, timezone=options.mariadb_timezone)
    raise UnknownFormatError(f"no parser for format {fmt!r}")


def _finish_chunk(parser: Parser, chunk: Chunk, prepared: object | None) -> ParseResult:
    if prepared is not None:
        result = parser.consume(prepared)  # type: ignore[attr-defined]
    else:
        result = parser.feed(chunk.text, source=chunk.source, first_line=chunk.first_line)
        if not chunk.rejects.is_empty():
            result = ParseResult(result.events, chunk.rejects.vstack(result.rejects), 0)
    # Lines are counted on the bytes: a line rejected as not UTF-8 still counts.
    return ParseResult(result.events, result.rejects, chunk.lines)


def _read_ahead(chunks: Iterable[Chunk], depth: int) -> Iterator[Chunk]:
    """``chunks`` in order, read up to ``depth`` ahead on a reader thread.

    Reading a chunk (a file read and a line count, ~50 ms per 48 MiB) would otherwise sit
    on the thread that consumes parsed chunks in order, the one step that cannot run in
    parallel. The reader's errors are raised here, in order, after the chunks before them.
    """
    done = object()
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                _ = chunk.lines  # counted here, off the consuming thread
                if not put(chunk):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    reader = threading.Thread(target=read, name="exfil-read", daemon=True)
    reader.start()
    try:
        while True:
            item = queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


def parse_chunks(parser: Parser, chunks: Iterable[Chunk]) -> Iterator[ParseResult]:
    """Parse chunks in order, overlapping the stateless work of the next ones.

    Parsers with a ``prepare_bytes``/``consume`` pair (csvlog) run ``prepare_bytes`` on
    :data:`PREFETCH` chunks ahead in worker threads (polars releases the GIL), while
    ``consume`` keeps the stateful steps in input order on this thread.
    """
    prepare = getattr(parser, "prepare_bytes", None)
    if prepare is None:
        for chunk in _read_ahead(chunks, 1):
            yield _finish_chunk(parser, chunk, None)
        return
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="exfil-prepare") as pool:
        pending: deque[tuple[Chunk, Future[object]]] = deque()
        for chunk in _read_ahead(chunks, 1):
            future = pool.submit(
                prepare,
                chunk.data,
                source=chunk.source,
                first_line=chunk.first_line,
                lines=chunk.lines,
            )
            pending.append((chunk, future))
            if len(pending) > PREFETCH:
                done, fut = pending.popleft()
                yield _finish_chunk(parser, done, fut.result())
        while pending:
            done, fut = pending.popleft()
            yield _finish_chunk(parser, done, fut.result())


@dataclass(frozen=True)
class Batch:
    """One parsed micro-batch and the file it came from."""

    path: Path
    format: str
    result: ParseResult


def iter_file_batches(paths: Sequence[Path], options: SourceOptions) -> Iterator[Batch]:
    """Parse ``paths`` chunk by chunk, yielding events and rejects as they come.

    Rejects found while decoding bytes (``not_utf8``) are yielded in the same batch as
    the parser's own. Each parser's held-back events are flushed after its last file.
    """
    parsers: dict[tuple[str, str | None], Parser] = {}
    last_path: dict[tuple[str, str | None], Path] = {}
    for path in paths:
        if options.format == "auto":
            detected = detect_file(path)
            fmt, prefix = detected.format, options.log_line_prefix or detected.log_line_prefix
        else:
            fmt, prefix = options.format, options.log_line_prefix
        key = (fmt, prefix)
        if key not in parsers:
            parsers[key] = make_parser(fmt, prefix, options)
        parser = parsers[key]
        last_path[key] = path
        chunks = iter_chunks(
            path, parser.record_start, source=str(path), chunk_bytes=options.chunk_bytes
        )
        for result in parse_chunks(parser, chunks):
            yield Batch(path, fmt, result)
    for key, parser in parsers.items():
        yield Batch(last_path[key], key[0], parser.flush())
