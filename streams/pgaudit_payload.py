"""The pgaudit ``AUDIT:`` payload, parsed as polars expressions.

pgaudit writes ``AUDIT: TYPE,STATEMENT_ID,SUBSTATEMENT_ID,CLASS,COMMAND,OBJECT_TYPE,
OBJECT_NAME,STATEMENT,PARAMETER[,ROWS]`` where STATEMENT, PARAMETER and OBJECT_NAME are CSV
fields (quoted when they hold a comma, quote or newline) and ROWS exists only with
``pgaudit.log_rows=on``. One regex over the whole column does the split; the rare rows
whose parameter list needs real CSV unquoting fall back to :mod:`csv`.
"""

from __future__ import annotations

import csv
from typing import Final

import polars as pl

_FIELD = r'"(?:[^"]|"")*"|[^,]*'
AUDIT_PATTERN: Final = (
    r"^AUDIT: (?<audit_type>SESSION|OBJECT),(?<statement_id>\d+),(?<substatement_id>\d+),"
    r"(?<command_class>[A-Z_]*),(?<command_tag>[^,]*),(?<object_type>[^,]*),"
    rf"(?<object_name>{_FIELD}),(?<statement>{_FIELD}),(?<parameter>{_FIELD})"
    r"(?:,(?<rows>\d+))?$"
)

#: pgaudit placeholders that stand for "not here" rather than a value.
NOT_LOGGED: Final = "<not logged>"
PREVIOUSLY_LOGGED: Final = "<previously logged>"
NO_PARAMETERS: Final = "<none>"
_PLACEHOLDERS: Final = (NOT_LOGGED, PREVIOUSLY_LOGGED, NO_PARAMETERS)


def unquote_csv_expr(expr: pl.Expr) -> pl.Expr:
    """Undo CSV quoting of one field: strip the outer quotes and halve doubled quotes.

    >>> f = pl.DataFrame({"f": ['"a, ""b"" c"', "plain"]})
    >>> f.select(unquote_csv_expr(pl.col("f")))["f"].to_list()
    ['a, "b" c', 'plain']
    """
    quoted = expr.str.starts_with('"') & expr.str.ends_with('"') & (expr.str.len_chars() >= 2)
    inner = expr.str.slice(1, expr.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    return pl.when(quoted).then(inner).otherwise(expr)


def _split_parameters(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def parameters_expr(expr: pl.Expr) -> pl.Expr:
    """Bound parameters as a list, from the already-unquoted PARAMETER field.

    pgaudit joins the parameters as CSV (each quoted if needed) and quotes the joined
    string once more as a field. Placeholders (``<none>``, ``<not logged>``) give null.

    >>> df = pl.DataFrame({"p": ["110101199003077777", "1,abc", '"a,b",2', "<none>"]})
    >>> df.select(parameters_expr(pl.col("p")).alias("p"))["p"].to_list()
    [['110101199003077777'], ['1', 'abc'], ['a,b', '2'], None]
    """
    simple = expr.str.split(",")
    complex_ = expr.map_elements(_split_parameters, return_dtype=pl.List(pl.String))
    return (
        pl.when(expr.is_in(_PLACEHOLDERS) | expr.is_null())
        .then(pl.lit(None, pl.List(pl.String)))
        .when(expr.str.contains('"', literal=True))
        .then(complex_)
        .otherwise(simple)
    )


def parse_audit_expr(message: pl.Expr) -> pl.Expr:
    """Struct of the payload's fields (all null when the message is not a valid payload).

    >>> msg = 'AUDIT: SESSION,3,1,READ,SELECT,TABLE,public.t,"SELECT a, b FROM t",<none>,7'
    >>> s = pl.DataFrame({"m": [msg]}).select(parse_audit_expr(pl.col("m")).alias("a")).unnest("a")
    >>> s.select("statement_id", "command_tag", "object_name", "statement", "rows").row(0)
    (3, 'SELECT', 'public.t', 'SELECT a, b FROM t', 7)
    """
    g = message.str.extract_groups(AUDIT_PATTERN)
    return pl.struct(
        g.struct.field("audit_type"),
        g.struct.field("statement_id").cast(pl.Int64),
        g.struct.field("substatement_id").cast(pl.Int64),
        g.struct.field("command_class"),
        g.struct.field("command_tag"),
        pl.when(g.struct.field("object_type") != "").then(g.struct.field("object_type")),
        unquote_csv_expr(g.struct.field("object_name")).alias("object_name"),
        unquote_csv_expr(g.struct.field("statement")).alias("statement"),
        unquote_csv_expr(g.struct.field("parameter")).alias("parameter"),
        g.struct.field("rows").cast(pl.Int64),
    )
