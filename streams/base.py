"""What every parser shares: the result type and the streaming parser protocol.

A parser is fed text chunks that end on record boundaries (see :mod:`streams.source`) and
returns canonical events plus rejects for each. Parsers are stateful because real audit
logs spread one fact over several lines: pgaudit logs one statement once per relation, and
a session's client address appears only on its ``connection received`` line. ``flush``
releases whatever a parser still holds back at end of input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from streams.deadletter import empty_rejects
from streams.schema import empty_events

#: Records longer than this are rejected as ``too_long`` instead of being parsed: a real
#: audit record is rarely above a few hundred KB, and a runaway line must not exhaust memory.
MAX_RECORD_CHARS = 8 * 1024 * 1024


@dataclass(frozen=True)
class ParseResult:
    """Events and rejects produced from one chunk of input."""

    events: pl.DataFrame
    rejects: pl.DataFrame
    lines: int

    @classmethod
    def empty(cls) -> ParseResult:
        return cls(empty_events(), empty_rejects(), 0)


class Parser(Protocol):
    """A stateful parser of one source format.

    ``feed`` takes a chunk of decoded text that ends on a record boundary and the 1-based
    number of its first physical line in ``source``; ``flush`` returns held-back events.
    """

    format_name: str

    @property
    def record_start(self) -> re.Pattern[str]:
        """Matches the first line of a record: chunks are cut only before such lines."""
        ...

    def feed(self, text: str, *, source: str, first_line: int) -> ParseResult: ...

    def flush(self) -> ParseResult: ...
