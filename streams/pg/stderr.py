"""PostgreSQL ``stderr`` logs (any ``log_line_prefix``) with pgaudit records.

A record starts with a line that matches the prefix followed by ``SEVERITY:  ``.
PostgreSQL writes every further line of a multi-line message with a leading tab
(``append_with_tabs`` in elog.c), so a tab-led line continues the record before it and
any other non-matching line is a stray: it is rejected (``bad_prefix``), never glued to a
neighbour. ``STATEMENT:``/``CONTEXT:``/``DETAIL:`` records that follow an error or a
message belong to it and are attached to it.

Everything runs as polars expressions over the chunk's lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Final

import polars as pl

from streams.base import MAX_RECORD_CHARS, ParseResult
from streams.deadletter import REJECT_SCHEMA
from streams.pg.base import PgParser
from streams.pg.prefix import DEFAULT_PREFIX, record_pattern
from streams.pg.timestamps import DEFAULT_ABBREVIATIONS

#: Severities that continue the record before them rather than stand alone.
AUX_SEVERITIES: Final = ("STATEMENT", "DETAIL", "HINT", "CONTEXT", "QUERY", "LOCATION")


class PgauditStderrParser(PgParser):
    """Parser for ``log_destination = 'stderr'`` files.

    Parameters
    ----------
    log_line_prefix
        The server's ``log_line_prefix`` (PostgreSQL's default when omitted).
    server, abbreviations
        As for the other PostgreSQL parsers.

    Examples
    --------
    >>> p = PgauditStderrParser(log_line_prefix="%m [%p] %q%u@%d ")
    >>> text = (
    ...     "2026-11-28 07:50:00.100 UTC [42] LOG:  connection received: host=10.0.0.5 port=5123\\n"
    ...     "2026-11-28 07:50:00.200 UTC [42] eve@records LOG:  AUDIT: SESSION,1,1,READ,SELECT,"
    ...     'TABLE,public.citizens,"SELECT national_id,\\n\\tphone FROM citizens",<none>,500\\n')
    >>> _ = p.feed(text, source="pg.log", first_line=1)
    >>> p.flush().events.select("user", "client_ip", "statement", "rows").row(0)
    ('eve', '10.0.0.5', 'SELECT national_id,\\nphone FROM citizens', 500)
    """

    format_name: ClassVar[str] = "pgaudit-stderr"

    def __init__(
        self,
        *,
        log_line_prefix: str = DEFAULT_PREFIX,
        server: str | None = None,
        abbreviations: Mapping[str, int] = DEFAULT_ABBREVIATIONS,
    ) -> None:
        super().__init__(server=server, abbreviations=abbreviations)
        self.log_line_prefix = log_line_prefix

    @property
    def pattern_(self) -> str:
        if not hasattr(self, "_pattern"):
            self._pattern = record_pattern(self.log_line_prefix)
        return self._pattern

    @property
    def record_start(self) -> re.Pattern[str]:
        """First line of a record that may begin a chunk (not a STATEMENT/CONTEXT tail)."""
        if not hasattr(self, "_record_start"):
            aux = "|".join(AUX_SEVERITIES)
            self._record_start = re.compile(
                self.pattern_.replace("(?P<severity>", f"(?!(?:{aux}):)(?P<severity>", 1)
            )
        return self._record_start

    def feed(self, text: str, *, source: str, first_line: int) -> ParseResult:
        raw_lines = text.split("\n")
        if raw_lines and raw_lines[-1] == "":
            raw_lines.pop()
        if not raw_lines:
            return ParseResult.empty()
        lines = (
            pl.DataFrame(
                {
                    "text": raw_lines,
                    "line": pl.int_range(first_line, first_line + len(raw_lines), eager=True),
                }
            )
            .with_columns(
                pl.col("text").str.strip_suffix("\r"),
            )
            .with_columns(
                pl.col("text").str.contains(self.pattern_).alias("_start"),
                pl.col("text").str.starts_with("\t").alias("_cont"),
                (pl.col("text").str.strip_chars() == "").alias("_blank"),
            )
            .with_columns(pl.col("_start").cum_sum().alias("_rec"))
        )
        orphan = ~pl.col("_start") & ~pl.col("_blank") & (~pl.col("_cont") | (pl.col("_rec") == 0))
        stray = lines.filter(orphan).select(
            pl.lit(source).alias("source"),
            pl.col("line"),
            pl.when(pl.col("_cont"))
            .then(pl.lit("orphan_continuation"))
            .otherwise(pl.lit("bad_prefix"))
            .alias("reason"),
            pl.col("text").alias("raw"),
        )
        body = lines.filter(pl.col("_start") | (pl.col("_cont") & (pl.col("_rec") > 0)))
        records = body.group_by("_rec", maintain_order=True).agg(
            pl.col("line").first(),
            pl.when(pl.col("_start"))
            .then(pl.col("text"))
            .otherwise(pl.col("text").str.slice(1))
            .str.join("\n")
            .alias("raw"),
        )
        too_long = records["raw"].str.len_chars() > MAX_RECORD_CHARS
        long_rejects = records.filter(too_long).select(
            pl.lit(source).alias("source"),
            "line",
            pl.lit("too_long").alias("reason"),
            pl.col("raw").str.slice(0, MAX_RECORD_CHARS),
        )
        records = records.filter(~too_long)
        fields = records.select(
            "line", "raw", pl.col("raw").str.extract_groups("(?s)" + self.pattern_).alias("f")
        ).unnest("f")
        records = self._attach_aux(fields)
        result = self.builder_.feed(self._to_record_frame(records, source))
        rejects = pl.concat(
            [stray.cast(REJECT_SCHEMA), long_rejects.cast(REJECT_SCHEMA), result.rejects]  # type: ignore[arg-type]
        )
        return ParseResult(result.events, rejects, len(raw_lines))

    @staticmethod
    def _attach_aux(fields: pl.DataFrame) -> pl.DataFrame:
        """Fold STATEMENT/CONTEXT records into the record they follow."""
        is_aux = pl.col("severity").is_in(AUX_SEVERITIES)
        fields = fields.with_row_index("_i").with_columns(
            pl.when(~is_aux).then(pl.col("_i")).forward_fill().alias("_parent")
        )
        aux = fields.filter(is_aux & pl.col("_parent").is_not_null())
        main = fields.filter(~is_aux)
        for severity, column in (("STATEMENT", "query"), ("CONTEXT", "context")):
            part = (
                aux.filter(pl.col("severity") == severity)
                .group_by("_parent")
                .agg(pl.col("message").first().alias(column))
            )
            main = main.join(part, left_on="_i", right_on="_parent", how="left")
        # An aux record with nothing before it in the chunk still counts as a record.
        orphans = fields.filter(is_aux & pl.col("_parent").is_null())
        return pl.concat([main, orphans], how="diagonal_relaxed").drop("_i", "_parent")

    def _to_record_frame(self, records: pl.DataFrame, source: str) -> pl.DataFrame:
        def col(name: str) -> pl.Expr:
            return pl.col(name) if name in records.columns else pl.lit(None, pl.String).alias(name)

        remote = col("remote").str.extract_groups(r"^(?<h>[^(]*)(?:\((?<p>\d+)\))?$")
        epoch = col("epoch").cast(pl.Float64, strict=False)
        timestamp = pl.coalesce(
            col("timestamp"),
            pl.from_epoch((epoch * 1_000_000).cast(pl.Int64), time_unit="us").dt.strftime(
                "%Y-%m-%d %H:%M:%S%.6f UTC"
            ),
        )
        return records.select(
            pl.lit(source).alias("source"),
            pl.col("line"),
            pl.col("raw"),
            timestamp.alias("timestamp"),
            col("pid").cast(pl.Int64, strict=False).alias("pid"),
            col("session_id"),
            pl.when(col("user") != "").then(col("user")).alias("user"),
            pl.when(col("database") != "").then(col("database")).alias("database"),
            pl.when(col("application") != "").then(col("application")).alias("application"),
            pl.coalesce(
                pl.when(col("client_host") != "").then(col("client_host")),
                pl.when(remote.struct.field("h") != "").then(remote.struct.field("h")),
            ).alias("client_ip"),
            remote.struct.field("p").cast(pl.Int32, strict=False).alias("client_port"),
            pl.col("severity"),
            col("sqlstate"),
            pl.col("message"),
            col("context"),
            col("query"),
        )
