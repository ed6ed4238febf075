"""Errors raised by the ingestion layer.

Every error the project raises derives from :class:`ExfilDetectorError`, defined here
because ``streams`` is the lowest layer: ``features``, ``models`` and ``detector`` each
subclass it in their own ``exceptions.py``. Foreign errors are re-raised ``from exc``.
"""


class ExfilDetectorError(Exception):
    """Root of every error exfil-detector raises on purpose."""


class StreamsError(ExfilDetectorError):
    """Root of the ingestion layer's errors."""


class UnknownFormatError(StreamsError):
    """The input's format could not be detected, or an unknown format was named."""


class PrefixError(StreamsError):
    """A PostgreSQL ``log_line_prefix`` uses an escape we cannot turn into a pattern."""


class SourceReadError(StreamsError):
    """An input file could not be opened or read."""


class FetcherError(StreamsError):
    """The process that reads a topic's partitions failed or is gone."""
