"""Merging the pgaudit lines of one statement into one statement event.

pgaudit logs one statement on several lines: once per relation with ``log_relation``
(a self-join twice), again as OBJECT lines, and once per sub-statement of
``COPY (SELECT ...) TO``. Lines with the same session and statement id are one statement:
rows are counted once, the tables are the distinct relations, and the command is the
statement's own (COPY for ``COPY (SELECT ...) TO``, whose rows sit on the SELECT line).

All lines go through one ``group_by`` (a statement logged on one line merges into
itself). Most statements are logged on lines that share their command and sub-statement
id: only the remaining few pay for picking the statement's own command line by line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl

from streams.pg.payload import NO_PARAMETERS, NOT_LOGGED, PREVIOUSLY_LOGGED, split_parameters
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

    One ``group_by`` merges every statement, those logged on one line too: for a lone
    line each aggregate is the line's own value, and grouping once costs less than
    counting the lines per statement first to route the lone ones around it.
    """
    # One piece per column: every eager operation on a frame in pieces joins them first.
    lines = pl.concat(parts, how="vertical_relaxed").rechunk()
    merged = _merge_groups(lines)
    held = None
    if holdback is not None:
        cutoff = lines["event_time"].max() - holdback  # type: ignore[operator]
        recent = merged.get_column("_last") >= cutoff
        if recent.any():
            held = _held_lines(lines, merged.filter(recent))
            merged = merged.filter(~recent)
            if merged.is_empty():
                return empty_events(), held
    statements = _choose_commands(lines, merged)
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
    ).drop("_uniform", "_pos", "_last"), held


def _held_lines(lines: pl.DataFrame, held: pl.DataFrame) -> pl.DataFrame:
    """The lines of the ``held`` statements, in input order.

    In a time-ordered log they are the last lines: then a slice (no copy) does.
    """
    positions = held.get_column("_pos").explode()
    first = positions.min()
    n = lines.height
    if positions.len() == n - first:  # type: ignore[operator]
        return lines.slice(first)  # type: ignore[arg-type]
    return lines[positions.sort()]


def _merge_groups(lines: pl.DataFrame) -> pl.DataFrame:
    """One row per statement (per relation, per sub-statement lines merged).

    ``_last`` is the statement's newest line time, ``_pos`` its line positions and
    ``_uniform`` whether its lines agree on command and sub-statement.
    """
    tag, sub = pl.col("command_tag"), pl.col("substatement_id")
    statement, parameter = pl.col("statement"), pl.col("parameter")
    return (
        lines.with_row_index("_pos")
        .group_by(KEY, maintain_order=True)
        .agg(
            pl.col("event_time").min(),
            pl.col("event_time").max().alias("_last"),
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
            # Lines that agree on command and sub-statement need no choosing: the first
            # is the one (valid audit lines always carry both).
            ((tag.min() == tag.max()) & (sub.min() == sub.max())).alias("_uniform"),
            pl.col("object_type").drop_nulls().first(),
            pl.col("object_name")
            .filter(pl.col("object_name") != "")
            .unique(maintain_order=True)
            .alias("tables"),
            # Placeholders are no text: the first line that has one gives it.
            statement.filter((statement != NOT_LOGGED) & (statement != PREVIOUSLY_LOGGED))
            .first()
            .alias("statement"),
            parameter.filter(
                (parameter != NOT_LOGGED)
                & (parameter != PREVIOUSLY_LOGGED)
                & (parameter != NO_PARAMETERS)
            )
            .first()
            .alias("_param"),
            pl.col("rows").max(),
            (tag == "SELECT").any().alias("_has_select"),
            pl.col("_pos"),  # the group's line positions (nearly free: they are the groups)
        )
        .rechunk()  # group_by returns pieces; every eager step would join them again
    )


def _choose_commands(lines: pl.DataFrame, merged: pl.DataFrame) -> pl.DataFrame:
    """Give statements whose lines disagree on the command their own command."""
    tag, sub = pl.col("command_tag"), pl.col("substatement_id")
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
