"""What the three PostgreSQL parsers (csvlog, jsonlog, stderr) share: their parameters, the
stateful :class:`~streams.pg.records.PgEventBuilder` they feed records to (built lazily,
river-style: ``__init__`` stores parameters only), and the end of input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from streams.base import ParseResult
from streams.pg.records import PgEventBuilder
from streams.pg.timestamps import DEFAULT_ABBREVIATIONS


class PgParser:
    """The shared head of a PostgreSQL log parser.

    Parameters
    ----------
    server
        Server name for the ``server`` column.
    abbreviations
        Time-zone abbreviation table (:func:`streams.pg.timestamps.abbreviation_table`).
    """

    #: the ``source_format`` of its events
    format_name: ClassVar[str]

    def __init__(
        self, *, server: str | None = None, abbreviations: Mapping[str, int] = DEFAULT_ABBREVIATIONS
    ) -> None:
        self.server = server
        self.abbreviations = abbreviations

    @property
    def builder_(self) -> PgEventBuilder:
        """Sessions, statement merging and event building, in input order (its state)."""
        if not hasattr(self, "_builder"):
            self._builder = PgEventBuilder(
                self.format_name, server=self.server, abbreviations=self.abbreviations
            )
        return self._builder

    def flush(self) -> ParseResult:
        """End of input: the statements still held back."""
        return self.builder_.flush()
