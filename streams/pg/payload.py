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
    # Placeholders become null before the split, so it skips them.
    out = pl.select(pl.when(~placeholder).then(values).str.split(",")).to_series()
    if quoted.any():
        # Each distinct list is parsed once (a statement run again and again binds the
        # same values), and flat (rank, field) pairs build far faster than a Series of
        # Python lists.
        quoted_values = values.filter(quoted)
        distinct = quoted_values.unique(maintain_order=True)
        texts = distinct.to_list()
        ranks: list[int] = []
        fields: list[str] = []
        for rank, text in enumerate(texts):
            parsed = _split_parameters(text)
            ranks.extend([rank] * len(parsed))
            fields.extend(parsed)
        distinct_lists = (
            pl.DataFrame({"r": pl.int_range(len(texts), eager=True, dtype=pl.UInt32)})
            .join(
                pl.DataFrame(
                    {"r": pl.Series(ranks, dtype=pl.UInt32), "p": fields},
                    schema_overrides={"p": pl.String},
                )
                .group_by("r", maintain_order=True)
                .agg("p"),
                on="r",
                how="left",
                maintain_order="left",
            )
            .get_column("p")
        )
        which = (
            quoted_values.to_frame("v")
            .join(
                distinct.to_frame("v").with_row_index("r"),
                on="v",
                how="left",
                maintain_order="left",
            )
            .get_column("r")
        )
        parsed_lists = distinct_lists.gather(which)
        # Each quoted value's rank among the quoted ones picks its list; an empty
        # parse (null) keeps the comma split, as before.
        rank_of = pl.select(pl.when(quoted).then(quoted.cast(pl.UInt32).cum_sum() - 1)).to_series()
        out = pl.select(pl.coalesce(parsed_lists.gather(rank_of), out)).to_series()
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


_TYPE_PREFIX: Final = "AUDIT: "

AUDIT_FIELDS: Final = (
    "audit_type", "statement_id", "substatement_id", "command_class", "command_tag",
    "object_type", "object_name", "statement", "parameter", "rows",
)  # fmt: skip


def parse_audit(frame: pl.DataFrame, message: str = "message") -> pl.DataFrame:
    """Add the payload's fields as columns (:data:`AUDIT_FIELDS`) to ``frame``.

    ``audit_type`` is null where ``message`` is not a valid payload.

    Every string kernel copies its output, so the common layouts are split in as few
    kernels as possible: a tail (OBJECT_NAME onwards) without quotes in one split on
    commas, the usual ``name,"statement",parameter,rows`` in one split on quotes. Only
    the rest (quoted names or parameters, doubled quotes, NUL bytes) takes the general
    field-by-field path of :func:`_take_field`.

    >>> msg = 'AUDIT: SESSION,3,1,READ,SELECT,TABLE,public.t,"SELECT a, ""b"" FROM t",<none>,7'
    >>> s = parse_audit(pl.DataFrame({"message": [msg]}))
    >>> s.select("statement_id", "object_name", "statement", "rows").row(0)
    (3, 'public.t', 'SELECT a, "b" FROM t', 7)
    """
    parsed = _common_layouts(frame, message)
    return _typed(_general_layouts(parsed))


def _common_layouts(frame: pl.DataFrame, message: str) -> pl.DataFrame:
    """The header split on commas and the common tails parsed in a few kernels; rows left
    to the general path are marked ``_general``."""
    msg = pl.col(message)
    # "AUDIT: " stays on the first field: it holds no comma, so the split is the same.
    lazy = frame.lazy().with_columns(msg.str.splitn(",", 7).alias("_h"))
    lazy = lazy.with_columns(
        [pl.col("_h").struct.field(f"field_{i}").alias(f"_f{i}") for i in range(7)]
    ).drop("_h")
    tail = pl.col("_f6")
    lazy = lazy.with_columns(tail.str.contains('"', literal=True).alias("_qt"))
    quoted = pl.col("_qt")
    # Each split sees only its own rows (the others are null, which kernels skip).
    lazy = lazy.with_columns(
        pl.when(~quoted).then(tail).str.splitn(",", 4).alias("_plain"),
        pl.when(quoted).then(tail).str.splitn('"', 3).alias("_sq"),
        pl.when(quoted).then(tail).str.contains("\x00", literal=True).alias("_nul"),
    )
    name, text, after = (pl.col("_sq").struct.field(f"field_{i}") for i in range(3))
    # name,"text",after: the name holds one comma, at its end (str.find and len_bytes
    # both count bytes); the closing quote is followed by a comma, so the text held no
    # doubled quote; no quote after it, so the parameter is plain. NUL bytes are the
    # general path's escape character: leave those rows to it.
    simple = (
        (name.str.find(",", literal=True) == name.str.len_bytes() - 1)
        & after.str.starts_with(",")
        & ~after.str.contains('"', literal=True)
        & ~pl.col("_nul")
    )
    lazy = lazy.with_columns(simple.fill_null(False).alias("_simple"))
    simple = pl.col("_simple")
    lazy = lazy.with_columns(
        pl.when(simple).then(after).str.splitn(",", 3).alias("_after"),
        (quoted & ~simple).alias("_general"),
    )
    plain = pl.col("_plain").struct
    after_fields = pl.col("_after").struct
    lazy = lazy.with_columns(
        pl.coalesce(plain.field("field_0"), pl.when(simple).then(name.str.strip_suffix(","))).alias(
            "object_name"
        ),
        pl.coalesce(plain.field("field_1"), pl.when(simple).then(text)).alias("statement"),
        pl.coalesce(plain.field("field_2"), after_fields.field("field_1")).alias("parameter"),
        pl.coalesce(plain.field("field_3"), after_fields.field("field_2")).alias("_r3"),
    )
    return lazy.drop("_plain", "_sq", "_nul", "_simple", "_after", "_qt").collect()


def _general_layouts(parsed: pl.DataFrame) -> pl.LazyFrame:
    """The ``_general`` rows' tails parsed field by field (each distinct tail once) and put
    back in place."""
    general = parsed.get_column("_general")
    if general.any():
        # A minority of rows: parse them alone and put the fields back in place.
        rows = general.arg_true()
        tails = parsed.get_column("_f6").gather(rows).rename("_g0")
        # The split is a function of the text alone: a statement run again and again
        # logs the same tail, so parse each distinct one once when that saves work.
        distinct = tails.unique(maintain_order=True)
        dedupe = distinct.len() * 2 <= tails.len()
        lazy = (distinct if dedupe else tails).to_frame().lazy()
        lazy = _take_field(lazy, "_g0", "object_name", "_g1")
        lazy = _take_field(lazy, "_g1", "statement", "_g2")
        lazy = _take_field(lazy, "_g2", "parameter", "_r3")
        fields = lazy.select("_g0", "object_name", "statement", "parameter", "_r3").collect()
        if dedupe:
            fields = tails.to_frame().join(fields, on="_g0", how="left", maintain_order="left")
        fields = fields.drop("_g0")
        # Lazy steps on ``parsed``: an eager one would first join every column's pieces.
        lazy = parsed.lazy().with_columns(
            parsed.get_column(name).scatter(rows, fields.get_column(name))
            for name in fields.columns
        )
    else:
        lazy = parsed.lazy()
    return lazy


def _typed(lazy: pl.LazyFrame) -> pl.DataFrame:
    """Ids and rows as integers, the audit type where the payload is valid, the helper
    columns dropped."""
    lazy = lazy.with_columns(
        pl.col("_f1").cast(pl.Int64, strict=False).alias("statement_id"),
        pl.col("_f2").cast(pl.Int64, strict=False).alias("substatement_id"),
        pl.col("_r3").cast(pl.Int64, strict=False).alias("rows"),
    )
    kind = pl.col("_f0")
    session = kind == _TYPE_PREFIX + "SESSION"
    valid = (
        (session | (kind == _TYPE_PREFIX + "OBJECT"))
        & pl.col("statement_id").is_not_null()
        & pl.col("substatement_id").is_not_null()
        & pl.col("statement").is_not_null()
        & pl.col("parameter").is_not_null()
        & (pl.col("_r3").is_null() | pl.col("rows").is_not_null())
    )
    lazy = lazy.with_columns(
        # Constants, not the prefix stripped off every row.
        pl.when(valid)
        .then(pl.when(session).then(pl.lit("SESSION")).otherwise(pl.lit("OBJECT")))
        .alias("audit_type"),
        pl.col("_f3").alias("command_class"),
        pl.col("_f4").alias("command_tag"),
        pl.when(pl.col("_f5") != "").then(pl.col("_f5")).alias("object_type"),
    )
    return lazy.drop([f"_f{i}" for i in range(7)] + ["_r3", "_general"]).collect()
