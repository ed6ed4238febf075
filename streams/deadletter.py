"""Dead letters: input the parsers could not turn into events.

Nothing is dropped silently. A rejected line (or multi-line record) becomes one row of
:data:`REJECT_SCHEMA` carrying the reason and the original text, is counted by reason, and
is written to a JSON Lines dead-letter file so it can be inspected and replayed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import IO, Final

import polars as pl

#: Reasons are a closed vocabulary so they can be counted and used as metric labels.
REJECT_REASONS: Final = (
    "not_utf8",
    "unknown_format",
    "bad_prefix",
    "bad_timestamp",
    "bad_csv",
    "bad_json",
    "bad_event_kind",
    "wrong_field_count",
    "bad_audit_payload",
    "forged_audit",
    "truncated",
    "too_long",
    "orphan_continuation",
)

REJECT_SCHEMA: Final = pl.Schema(
    {
        "source": pl.String,
        "line": pl.Int64,
        "reason": pl.String,
        "raw": pl.String,
    }
)


def empty_rejects() -> pl.DataFrame:
    """An empty reject frame.

    >>> empty_rejects().columns
    ['source', 'line', 'reason', 'raw']
    """
    return pl.DataFrame(schema=REJECT_SCHEMA)


def rejects_frame(source: str, rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    """Build a reject frame from ``(line, reason, raw)`` tuples.

    >>> rejects_frame("a.log", [(3, "bad_csv", "x")]).row(0)
    ('a.log', 3, 'bad_csv', 'x')
    """
    if not rows:
        return empty_rejects()
    lines, reasons, raws = zip(*rows, strict=True)
    return pl.DataFrame(
        {"source": [source] * len(rows), "line": lines, "reason": reasons, "raw": raws},
        schema=REJECT_SCHEMA,
    )


class DeadLetterWriter:
    """Append rejects to a JSON Lines file and count them by reason.

    Parameters
    ----------
    path
        File to append to; ``None`` only counts (the caller still reports the counts).

    Examples
    --------
    >>> w = DeadLetterWriter(None)
    >>> w.write(rejects_frame("a.log", [(1, "bad_csv", "x"), (2, "bad_csv", "y")]))
    >>> dict(w.counts)
    {'bad_csv': 2}
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._fh: IO[str] | None = None

    def write(self, rejects: pl.DataFrame) -> None:
        if rejects.is_empty():
            return
        for reason, n in rejects.group_by("reason").len().iter_rows():
            self.counts[reason] += n
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        for row in rejects.iter_rows(named=True):
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())
