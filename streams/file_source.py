"""Read audit-log files as a stream of parsed micro-batches.

This is the file side of the one code path: ``parse`` and ``replay`` read files through
:func:`iter_file_batches`, Kafka feeds the same parsers message batches. Files of one
format are read in the order given through one parser, so sessions that continue across
a rotated log file keep their client address and user.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from streams.base import Parser, ParseResult
from streams.chunking import DEFAULT_CHUNK_BYTES, Chunk, iter_chunks
from streams.detect import detect_file
from streams.exceptions import UnknownFormatError
from streams.pg_prefix import DEFAULT_PREFIX
from streams.pg_time import abbreviation_table

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
        from streams.pgaudit_csvlog import PgauditCsvlogParser

        return PgauditCsvlogParser(server=options.server, abbreviations=abbreviations)
    if fmt == "pgaudit-json":
        from streams.pgaudit_jsonlog import PgauditJsonlogParser

        return PgauditJsonlogParser(server=options.server, abbreviations=abbreviations)
    if fmt == "pgaudit-stderr":
        from streams.pgaudit_stderr import PgauditStderrParser

        return PgauditStderrParser(
            log_line_prefix=prefix or DEFAULT_PREFIX,
            server=options.server,
            abbreviations=abbreviations,
        )
    if fmt == "mariadb-audit":
        from streams.mariadb_audit import MariaDBAuditParser

        return MariaDBAuditParser(server=options.server, timezone=options.mariadb_timezone)
    raise UnknownFormatError(f"no parser for format {fmt!r}")


def feed_chunk(parser: Parser, chunk: Chunk) -> ParseResult:
    """Parse one chunk, through the parser's bytes fast path when it has one."""
    fast = getattr(parser, "feed_bytes", None)
    result = None
    if fast is not None:
        result = fast(chunk.data, source=chunk.source, first_line=chunk.first_line)
    if result is None:
        result = parser.feed(chunk.text, source=chunk.source, first_line=chunk.first_line)
        if not chunk.rejects.is_empty():
            result = ParseResult(result.events, chunk.rejects.vstack(result.rejects), 0)
    # Lines are counted on the bytes: a line rejected as not UTF-8 still counts.
    return ParseResult(result.events, result.rejects, chunk.lines)


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
        for chunk in iter_chunks(
            path, parser.record_start, source=str(path), chunk_bytes=options.chunk_bytes
        ):
            yield Batch(path, fmt, feed_chunk(parser, chunk))
    for key, parser in parsers.items():
        yield Batch(last_path[key], key[0], parser.flush())
