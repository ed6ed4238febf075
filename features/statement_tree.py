"""Turn a parsed statement (a sqlglot tree) into a :class:`StatementAnalysis`, or, when
there is no usable tree, analyse the text by keywords (``parse_ok=False``).

Read queries are handed to :mod:`features.sql_lineage`; this module handles the statement
around them: INSERT ... SELECT, CREATE TABLE AS, UPDATE/DELETE ... RETURNING, COPY, SET,
DDL and the verbs sqlglot keeps as opaque commands.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Final

from sqlglot import exp

from features.catalog import Catalog
from features.sql_lineage import QueryShape, analyse_query, is_named_table, star_columns
from features.sql_lineage import table_name as _table_name
from features.sql_rules import (
    classify_keyword,
    copy_export_form,
    cut_outfile,
    mask_sql,
    tables_by_keyword,
)
from features.statement_analysis import StatementAnalysis

_WHERE: Final = re.compile(r"(?i)\bwhere\b")
_LIMIT: Final = re.compile(r"(?i)\blimit\b|\bfetch\s+(?:first|next)\b")
_GROUP_BY: Final = re.compile(r"(?i)\bgroup\s+by\b")
_AGGREGATE: Final = re.compile(r"(?i)\b(?:count|sum|avg|min|max)\s*\(")
_SELECT_STAR: Final = re.compile(r"(?i)\s*select\s+\*")

READ_ROOTS: Final = (exp.Select, exp.SetOperation, exp.Values)
DDL_ROOTS: Final = (exp.Create, exp.Drop, exp.Alter, exp.TruncateTable, exp.Grant, exp.Comment)
#: Root node types that are statements; anything else sqlglot returns (a column, an alias,
#: a comparison ...) means the text was not SQL.
STATEMENT_ROOTS: Final = (
    *READ_ROOTS,
    *DDL_ROOTS,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Copy,
    exp.Set,
    exp.Command,
    exp.Merge,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.Show,
    exp.Describe,
)


def qualifier(catalog: Catalog, dialect: str, default_schema: str | None) -> Callable[[str], str]:
    """Table-name resolver; a MariaDB session database is authoritative (see catalog)."""
    return functools.partial(
        catalog.qualify_table,
        default_schema=default_schema,
        unique_fallback=dialect != "mysql" or default_schema is None,
    )


def _shape_fields(shape: QueryShape) -> dict[str, Any]:
    return {f.name: getattr(shape, f.name) for f in fields(QueryShape)}


def _target(node: exp.Expression | None) -> tuple[str, ...]:
    if isinstance(node, exp.Schema):
        node = node.this
    return (_table_name(node),) if node is not None and is_named_table(node) else ()


def _returning(tree: exp.Expression, target: tuple[str, ...], catalog: Catalog) -> tuple[str, ...]:
    returning = tree.args.get("returning")
    if not isinstance(returning, exp.Returning) or not target:
        return ()
    out: list[str] = []
    for item in returning.expressions:
        if isinstance(item, exp.Star):
            out += star_columns(catalog, target[0])
        else:
            out += [f"{target[0]}.{c.name}" for c in item.find_all(exp.Column)]
    return tuple(dict.fromkeys(out))


def analysis_from_tree(
    tree: exp.Expression,
    dialect: str,
    catalog: Catalog,
    default_schema: str | None,
    original: str,
) -> StatementAnalysis:
    """Analysis of a statement tree whose tables :func:`resolve_tables` already resolved.

    ``original`` is the statement text, for the keyword rules applied to opaque commands.
    """
    if isinstance(tree, READ_ROOTS):
        into = tree.args.get("into")
        written = _target(into.this) if isinstance(into, exp.Into) else ()
        shape = analyse_query(tree, catalog, dialect)
        return StatementAnalysis(dialect, "select", tables_written=written, **_shape_fields(shape))
    if isinstance(tree, exp.Copy):
        return _copy(tree, dialect, catalog)
    if isinstance(tree, exp.Insert | exp.Create):
        kind = "insert" if isinstance(tree, exp.Insert) else "ddl"
        target = _target(tree.this)
        query = tree.expression
        shape = (
            analyse_query(query, catalog, dialect)
            if isinstance(query, READ_ROOTS)
            else QueryShape()
        )
        returning = _returning(tree, target, catalog)
        fields_ = _shape_fields(shape)
        fields_["columns_read"] = shape.columns_read + returning
        fields_["tables_read"] = tuple(t for t in shape.tables_read if t not in target)
        return StatementAnalysis(dialect, kind, tables_written=target, **fields_)
    if isinstance(tree, exp.Update | exp.Delete | exp.Merge):
        kind = {exp.Update: "update", exp.Delete: "delete"}.get(type(tree), "update")
        target = _target(tree.this)
        others = [_table_name(t) for t in tree.find_all(exp.Table) if is_named_table(t)]
        where = tree.args.get("where")
        has_where = where is not None and where.find(exp.Column) is not None
        return StatementAnalysis(
            dialect,
            kind,
            tables_read=tuple(dict.fromkeys(t for t in others if t not in target)),
            tables_written=target,
            columns_read=_returning(tree, target, catalog),
            has_where=has_where,
        )
    if isinstance(tree, exp.Grant):
        return StatementAnalysis(dialect, "ddl")
    if isinstance(tree, DDL_ROOTS):
        targets = [_table_name(t) for t in tree.find_all(exp.Table) if is_named_table(t)]
        return StatementAnalysis(dialect, "ddl", tables_written=tuple(dict.fromkeys(targets)))
    if isinstance(tree, exp.Set):
        return StatementAnalysis(dialect, "set")
    if isinstance(tree, exp.Command):
        # A verb sqlglot recognises but does not model (VACUUM, EXPLAIN, SHOW ...).
        kind = classify_keyword(tree.name)
        read_names, written_names = tables_by_keyword(mask_sql(original, dialect))
        qualify = qualifier(catalog, dialect, default_schema)
        return StatementAnalysis(
            dialect,
            kind if kind in ("set", "ddl") else "other",
            tables_read=tuple(map(qualify, read_names)),
            tables_written=tuple(map(qualify, written_names)),
        )
    return StatementAnalysis(dialect, "other")


def _copy(tree: exp.Copy, dialect: str, catalog: Catalog) -> StatementAnalysis:
    source = tree.this
    is_from = bool(tree.args.get("kind"))
    files = tree.args.get("files") or []
    first = files[0] if files else None
    if isinstance(first, exp.Identifier) and first.name.lower() in ("stdout", "stdin", "program"):
        target = first.name.lower()
    else:
        target = "file"
    if isinstance(source, exp.Subquery):
        shape = analyse_query(source.unnest(), catalog, dialect)
        return StatementAnalysis(
            dialect,
            "copy",
            is_export=not is_from,
            export_form=None if is_from else "copy_query_to",
            export_target=None if is_from else target,
            **_shape_fields(shape),
        )
    table = _target(source)
    if is_from:
        return StatementAnalysis(dialect, "copy", tables_written=table)
    if isinstance(source, exp.Schema) and source.expressions:
        columns = tuple(f"{table[0]}.{c.name}" for c in source.expressions) if table else ()
    elif table:
        columns = tuple(star_columns(catalog, table[0]))
    else:
        columns = ()
    return StatementAnalysis(
        dialect,
        "copy",
        tables_read=table,
        columns_read=columns,
        is_export=True,
        export_form="copy_to",
        export_target=target,
    )


def keyword_analysis(
    text: str, dialect: str, catalog: Catalog, default_schema: str | None, reason: str
) -> StatementAnalysis:
    """Keyword analysis of text the parser could not handle (``parse_ok=False``)."""
    masked = mask_sql(text, dialect)
    kind = classify_keyword(masked)
    read, written = tables_by_keyword(masked)
    qualify = qualifier(catalog, dialect, default_schema)
    tables_read = tuple(dict.fromkeys(map(qualify, read)))
    export = copy_export_form(masked) if kind == "copy" else None
    if kind == "copy" and export is not None and export[0] == "copy_to":
        tables_read, written = tuple(dict.fromkeys(map(qualify, written))), []
    outfile = cut_outfile(text) if dialect == "mysql" else None
    if outfile is not None:
        export = ("into_outfile", outfile.target)
    star = kind == "select" and _SELECT_STAR.match(masked) is not None
    return StatementAnalysis(
        dialect,
        kind,
        tables_read=tables_read,
        tables_written=tuple(dict.fromkeys(map(qualify, written))),
        columns_read=tuple(f"{t}.*" for t in tables_read) if star else (),
        has_where=_WHERE.search(masked) is not None,
        has_limit=_LIMIT.search(masked) is not None,
        has_group_by=_GROUP_BY.search(masked) is not None,
        has_aggregate=_AGGREGATE.search(masked) is not None,
        is_export=export is not None,
        export_form=export[0] if export else None,
        export_target=export[1] if export else None,
        parse_ok=False,
        parse_error=reason,
    )
