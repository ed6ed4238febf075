"""The pgaudit ``AUDIT:`` payload, parsed as polars expressions.

pgaudit writes ``AUDIT: TYPE,STATEMENT_ID,SUBSTATEMENT_ID,CLASS,COMMAND,OBJECT_TYPE,
OBJECT_NAME,STATEMENT,PARAMETER[,ROWS]`` where STATEMENT, PARAMETER and OBJECT_NAME are CSV
fields (quoted when they hold a comma, quote or newline) and ROWS exists only with
``pgaudit.log_rows=on``. Literal string kernels over the whole column do the split; the
rare parameter lists that need real CSV unquoting fall back to :mod:`csv`.
"""

from __future__ import annotations

import csv
from typing import Final

import polars as pl

#: pgaudit placeholders that stand for "not here" rather than a value.
NOT_LOGGED: Final = "<not logged>"
PREVIOUSLY_LOGGED: Final = "<previously logged>"
NO_PARAMETERS: Final = "<none>"
_PLACEHOLDERS: Final = (NOT_LOGGED, PREVIOUSLY_LOGGED, NO_PARAMETERS)


def _split_parameters(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def split_parameters(values: pl.Series) -> pl.Series:
    """Bound parameters as lists, from the already-unquoted PARAMETER field.

    pgaudit joins the parameters as CSV (each quoted if needed) and quotes the joined
    string once more as a field. Placeholders (``<none>``, ``<not logged>``) give null.
    Only values holding a quote need a real CSV reader; the others split on commas.

    >>> s = pl.Series(["110101199003077777", "1,abc", '"a,b",2', "<none>", None])
    >>> split_parameters(s).to_list()
    [['110101199003077777'], ['1', 'abc'], ['a,b', '2'], None, None]
    """
    placeholder = values.is_in(_PLACEHOLDERS).fill_null(True)
    quoted = values.str.contains('"', literal=True).fill_null(False) & ~placeholder
    out = values.str.split(",")
    out = pl.select(
        pl.when(placeholder).then(pl.lit(None, pl.List(pl.String))).otherwise(out)
    ).to_series()
    if quoted.any():
        # Flat (row, field) pairs build far faster than a Series of Python lists.
        idx = quoted.arg_true()
        rows: list[int] = []
        fields: list[str] = []
        for i, text in zip(idx.to_list(), values.gather(idx).to_list(), strict=True):
            parsed = _split_parameters(text)
            rows.extend([i] * len(parsed))
            fields.extend(parsed)
        lists = (
            pl.DataFrame(
                {"i": pl.Series(rows, dtype=idx.dtype), "p": fields},
                schema_overrides={"p": pl.String},
            )
            .group_by("i", maintain_order=True)
            .agg("p")
        )
        out = (
            pl.DataFrame({"i": pl.int_range(len(out), eager=True, dtype=idx.dtype), "o": out})
            .join(lists, on="i", how="left", maintain_order="left")
            .select(pl.coalesce("p", "o"))
            .to_series()
        )
    return out.rename(values.name)


def _take_field(frame: pl.LazyFrame, source: str, field: str, rest: str) -> pl.LazyFrame:
    """Split the first CSV field off column ``source`` into columns ``field`` and ``rest``.

    Inside a quoted field every quote is doubled, so once the opening quote is dropped
    and doubled quotes are masked, the first remaining quote closes the field. Only
    literal string kernels run here: capture-group regexes are ~10x slower on long
    statements. Each step is its own column so nothing is computed twice.
    """
    text = pl.col(source)
    quoted = text.str.starts_with('"')
    # Each branch sees only its own rows (the others are null, which string kernels skip):
    # a when/then over full columns would run both branches on every long statement.
    frame = frame.with_columns(
        quoted.alias("_q"),
        pl.when(quoted)
        .then(text.str.slice(1))
        .str.replace_all('""', "\x00", literal=True)
        .str.splitn('"', 2)
        .alias("_quoted"),
        pl.when(~quoted).then(text).str.splitn(",", 2).alias("_plain"),
    )
    after = pl.col("_quoted").struct.field("field_1")
    quoted_rest = (
        pl.when(after.str.starts_with(","))
        .then(after.str.slice(1).str.replace_all("\x00", '""', literal=True))
        .when(after == "")
        .then(pl.lit(None, pl.String))
        .when(after.is_not_null())
        .then(pl.lit("\x00bad"))  # text after the closing quote: not CSV
    )
    quoted_field = pl.when(after.is_not_null()).then(
        pl.col("_quoted").struct.field("field_0").str.replace_all("\x00", '"', literal=True)
    )
    unterminated = pl.col("_q") & after.is_null()
    return frame.with_columns(
        pl.coalesce(quoted_field, pl.col("_plain").struct.field("field_0")).alias(field),
        pl.when(unterminated)
        .then(pl.lit("\x00bad"))
        .otherwise(pl.coalesce(quoted_rest, pl.col("_plain").struct.field("field_1")))
        .alias(rest),
    ).drop("_q", "_quoted", "_plain")


AUDIT_FIELDS: Final = (
    "audit_type", "statement_id", "substatement_id", "command_class", "command_tag",
    "object_type", "object_name", "statement", "parameter", "rows",
)  # fmt: skip


def parse_audit(frame: pl.DataFrame, message: str = "message") -> pl.DataFrame:
    """Add the payload's fields as columns (:data:`AUDIT_FIELDS`) to ``frame``.

    ``audit_type`` is null where ``message`` is not a valid payload.

    >>> msg = 'AUDIT: SESSION,3,1,READ,SELECT,TABLE,public.t,"SELECT a, ""b"" FROM t",<none>,7'
    >>> s = parse_audit(pl.DataFrame({"message": [msg]}))
    >>> s.select("statement_id", "object_name", "statement", "rows").row(0)
    (3, 'public.t', 'SELECT a, "b" FROM t', 7)
    """
    msg = pl.col(message)
    lazy = frame.lazy().with_columns(msg.str.strip_prefix("AUDIT: ").str.splitn(",", 7).alias("_h"))
    lazy = lazy.with_columns(
        [pl.col("_h").struct.field(f"field_{i}").alias(f"_f{i}") for i in range(7)]
    ).drop("_h")
    lazy = _take_field(lazy, "_f6", "object_name", "_r1")
    lazy = _take_field(lazy, "_r1", "statement", "_r2")
    lazy = _take_field(lazy, "_r2", "parameter", "_r3")
    lazy = lazy.with_columns(
        pl.col("_f1").cast(pl.Int64, strict=False).alias("statement_id"),
        pl.col("_f2").cast(pl.Int64, strict=False).alias("substatement_id"),
        pl.col("_r3").cast(pl.Int64, strict=False).alias("rows"),
    )
    valid = (
        msg.str.starts_with("AUDIT: ")
        & pl.col("_f0").is_in(["SESSION", "OBJECT"])
        & pl.col("statement_id").is_not_null()
        & pl.col("substatement_id").is_not_null()
        & pl.col("statement").is_not_null()
        & pl.col("parameter").is_not_null()
        & (pl.col("_r3").is_null() | pl.col("rows").is_not_null())
    )
    lazy = lazy.with_columns(
        pl.when(valid).then(pl.col("_f0")).alias("audit_type"),
        pl.col("_f3").alias("command_class"),
        pl.col("_f4").alias("command_tag"),
        pl.when(pl.col("_f5") != "").then(pl.col("_f5")).alias("object_type"),
    )
    return lazy.drop([f"_f{i}" for i in range(7)] + ["_r1", "_r2", "_r3"]).collect()
