"""Merging the pgaudit lines of one statement into one statement event.

pgaudit logs one statement on several lines: once per relation with ``log_relation``
(a self-join twice), again as OBJECT lines, and once per sub-statement of
``COPY (SELECT ...) TO``. Lines with the same session and statement id are one statement:
rows are counted once, the tables are the distinct relations, and the command is the
statement's own (COPY for ``COPY (SELECT ...) TO``, whose rows sit on the SELECT line).

Most statements of a real log are logged on one line, and most of the others on lines
that share their command and sub-statement id: only the remaining few pay for picking
the statement's own command line by line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from streams.pgaudit_payload import NO_PARAMETERS, NOT_LOGGED, PREVIOUSLY_LOGGED, split_parameters
from streams.schema import empty_events

SESSION_FIELDS: Final = ("user", "database", "application", "client_ip", "client_port")
KEY: Final = ["session_key", "statement_id"]


def merge_statements(
    parts: list[pl.DataFrame], holdback: timedelta | None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Statement events of the audit lines in ``parts`` and the lines held back.

    With a ``holdback``, the lines of statements whose last line is within
    ``holdback`` of the newest line are returned instead of merged, so a statement
    whose lines straddle two chunks is merged once the next chunk arrives.
    """
    lines = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical_relaxed")
    lines = lines.with_columns(
        pl.len().over(KEY).alias("_n"),
        pl.col("event_time").max().over(KEY).alias("_last"),
    )
    held = None
    if holdback is not None:
        cutoff = lines["event_time"].max() - holdback  # type: ignore[operator]
        lines, held = _split_recent(lines, lines["_last"] >= cutoff)
        held = held.drop("_n", "_last")
        if lines.is_empty():
            return empty_events(), held
    text = (
        pl.when(~pl.col("statement").is_in([NOT_LOGGED, PREVIOUSLY_LOGGED]))
        .then(pl.col("statement"))
        .alias("_text")
    )
    param = (
        pl.when(~pl.col("parameter").is_in([NOT_LOGGED, PREVIOUSLY_LOGGED, NO_PARAMETERS]))
        .then(pl.col("parameter"))
        .alias("_param")
    )
    single_rows = lines["_n"] == 1
    single = lines.filter(single_rows).select(
        *KEY,
        "event_time", "source", "line", *SESSION_FIELDS, "pid", "session_id",
        "audit_type", "substatement_id", "command_tag", "command_class", "object_type",
        pl.when(pl.col("object_name") != "")
        .then(pl.concat_list("object_name"))
        .otherwise(pl.lit([], pl.List(pl.String)))
        .alias("tables"),
        text.alias("statement"),
        param,
        "rows",
        (pl.col("command_tag") == "SELECT").alias("_has_select"),
    )  # fmt: skip
    merged = [single]
    if not single_rows.all():
        multi = lines.filter(~single_rows).with_columns(text, param)
        merged.append(_merge_multi(multi).select(single.columns))
    statements = merged[0] if len(merged) == 1 else pl.concat(merged, how="vertical_relaxed")
    tag = pl.col("command_tag")
    unknown = (pl.col("rows") == 0) & (
        (tag == "FETCH") | ((tag == "COPY") & ~pl.col("_has_select"))
    )
    return statements.with_columns(
        pl.lit("statement").alias("event_kind"),
        split_parameters(statements["_param"]).alias("parameters"),
        pl.when(pl.col("rows").is_null())
        .then(pl.lit("not_logged"))
        .when(unknown)
        .then(pl.lit("unknown"))
        .otherwise(pl.lit("counted"))
        .alias("rows_status"),
        pl.when(unknown).then(None).otherwise(pl.col("rows")).alias("rows"),
    ), held


def _split_recent(lines: pl.DataFrame, recent: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(lines.filter(~recent), lines.filter(recent))``.

    In a time-ordered log the recent lines are the last ones: then two slices (no copy)
    do instead of two filters, each of which copies every column.
    """
    n, k = lines.height, int(recent.sum())
    if recent.null_count() == 0 and (k == 0 or recent.slice(n - k).all()):
        return lines.slice(0, n - k), lines.slice(n - k)
    return lines.filter(~recent), lines.filter(recent)


def _merge_multi(lines: pl.DataFrame) -> pl.DataFrame:
    """Merge statements logged on several lines (per relation, per sub-statement)."""
    tag, sub = pl.col("command_tag"), pl.col("substatement_id")
    lines = lines.with_row_index("_pos")
    merged = lines.group_by(KEY, maintain_order=True).agg(
        pl.col("event_time").min(),
        pl.col("source").first(),
        pl.col("line").min(),
        *[pl.col(f).first() for f in (*SESSION_FIELDS, "pid", "session_id")],
        pl.when((pl.col("audit_type") == "SESSION").any())
        .then(pl.lit("SESSION"))
        .otherwise(pl.lit("OBJECT"))
        .alias("audit_type"),
        sub.min(),
        tag.first(),
        pl.col("command_class").first(),
        # Lines that agree on command and sub-statement need no choosing: the first is
        # the one (valid audit lines always carry both).
        ((tag.min() == tag.max()) & (sub.min() == sub.max())).alias("_uniform"),
        pl.col("object_type").drop_nulls().first(),
        pl.col("object_name")
        .filter(pl.col("object_name") != "")
        .unique(maintain_order=True)
        .alias("tables"),
        pl.col("_text").drop_nulls().first().alias("statement"),
        pl.col("_param").drop_nulls().first().alias("_param"),
        pl.col("rows").max(),
        (tag == "SELECT").any().alias("_has_select"),
        pl.col("_pos"),  # the group's line positions (nearly free: they are the groups)
    )
    mixed = ~merged.get_column("_uniform")
    if not mixed.any():
        return merged
    # The statement's own command is the line whose tag matches the text's first
    # keyword (COPY for COPY (SELECT ...) TO, whose rows sit on the SELECT line).
    groups = (
        merged.filter(mixed)
        .select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_group"), "_pos", "statement")
        .explode("_pos")
    )
    picked = lines.select("command_tag", "command_class", "substatement_id")[groups["_pos"]]
    head = pl.col("statement").str.slice(0, 64).str.strip_chars_start().str.to_uppercase()
    tag_word = tag.str.splitn(" ", 2).struct.field("field_0")
    not_own = ~head.str.starts_with(tag_word).fill_null(False)
    chosen = (
        pl.concat([groups, picked], how="horizontal")
        .with_columns(pl.col("_group").set_sorted())
        .group_by("_group", maintain_order=True)
        .agg(
            tag.sort_by(not_own, sub).first(),
            pl.col("command_class").sort_by(not_own, sub).first(),
        )
    )
    rows = mixed.arg_true()
    return merged.with_columns(
        merged.get_column(c).scatter(rows, chosen.get_column(c))
        for c in ("command_tag", "command_class")
    )
