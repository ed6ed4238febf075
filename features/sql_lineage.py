"""What a parsed query reads: base tables, projected columns traced through subqueries and
CTEs, filters, limits and aggregates.

Works on a sqlglot tree of a *read* query (``SELECT``, set operations, ``VALUES``). Table
names are first rewritten to catalog names (:func:`resolve_tables`), then sqlglot's
``qualify`` attributes every column to a source and expands ``*`` for tables whose columns
the catalog lists. Projected columns are traced through derived tables and CTEs down to
base tables, so ``SELECT n FROM (SELECT national_id AS n FROM citizens) s`` reads
``public.citizens.national_id``. Columns that cannot be attributed are reported as
``?.column`` (the heuristics still class them by name); stars over tables of unknown shape
stay ``table.*``.

>>> import functools, sqlglot
>>> from features.catalog import Catalog
>>> tree = sqlglot.parse_one("SELECT n FROM (SELECT national_id AS n FROM citizens) s",
...                          read="postgres")
>>> resolve_tables(tree, functools.partial(Catalog().qualify_table, default_schema="public"))
>>> analyse_query(tree, Catalog(), "postgres").columns_read
('public.citizens.national_id',)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeGuard, TypeVar

from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope
from sqlglot.schema import MappingSchema

from features.catalog import Catalog
from features.sql_clauses import aggregates, limit_of, lookup_candidates, range_candidates

_MAX_DEPTH: Final = 32
UNKNOWN_TABLE: Final = "?"


@dataclass(frozen=True)
class QueryShape:
    """The read-relevant facts of one query (see :class:`features.sql_analysis.StatementAnalysis`
    for the meaning of each field)."""

    tables_read: tuple[str, ...] = ()
    columns_read: tuple[str, ...] = ()
    where_columns: tuple[str, ...] = ()
    lookup_columns: tuple[str, ...] = ()
    range_columns: tuple[str, ...] = ()
    has_where: bool = False
    has_limit: bool = False
    limit_value: int | None = None
    has_offset: bool = False
    offset_value: int | None = None
    has_group_by: bool = False
    has_aggregate: bool = False
    aggregate_only: bool = False


def table_name(table: exp.Table) -> str:
    """``db.name`` (or ``name``) of a table node, lower-case."""
    return ".".join(p for p in (table.db, table.name) if p).lower()


def is_named_table(node: object) -> TypeGuard[exp.Table]:
    """A real relation reference (not a table function such as ``generate_series``)."""
    return isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier)


def star_columns(catalog: Catalog, table: str) -> list[str]:
    """What ``table.*`` reads: the catalog's column list, else ``table.*`` plus the columns
    the catalog classes (a star over them reads them too).

    >>> star_columns(Catalog.loads('[tables."s.t"]\\nsensitive = { sfz = "national_id" }'), "s.t")
    ['s.t.*', 's.t.sfz']
    """
    columns = catalog.columns_of(table)
    if columns:
        return [f"{table}.{c}" for c in columns]
    info = catalog.table(table)
    return [f"{table}.*", *(f"{table}.{c}" for c, _ in (info.sensitive if info else ()))]


def resolve_tables(tree: exp.Expression, qualify_name: Callable[[str], str]) -> None:
    """Lower-case every identifier and rewrite table references with ``qualify_name``
    (normally a bound :meth:`features.catalog.Catalog.qualify_table`), in place.

    CTE references are left alone. Identifiers are lower-cased because the catalog is
    case-insensitive (a quoted mixed-case name is rare in audit logs and would otherwise
    never match).
    """
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
        ident.set("quoted", False)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not is_named_table(table) or (not table.db and table.name in ctes):
            continue
        written = ".".join(p for p in (table.db, table.name) if p)
        resolved = qualify_name(written)
        db, _, name = resolved.rpartition(".")
        table.set("this", exp.to_identifier(name))
        table.set("db", exp.to_identifier(db) if db else None)
        table.set("catalog", None)
        if table.alias == "" and name != table.name:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))


@functools.lru_cache(maxsize=64)
def _schema(catalog: Catalog, dialect: str) -> MappingSchema:
    return MappingSchema(catalog.sqlglot_schema(), dialect=dialect, normalize=False)


def _qualified(tree: exp.Expr, catalog: Catalog, dialect: str) -> exp.Expr:
    try:
        return qualify(
            tree.copy(),
            dialect=dialect,
            schema=_schema(catalog, dialect),
            validate_qualify_columns=False,
            quote_identifiers=False,
            identify=False,
        )
    except Exception:  # qualify is best-effort: the raw tree still has the tables
        return tree


class _Tracer:
    """Trace columns of a scope tree down to base tables (depth-limited: recursive CTEs)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def projection(self, scope: Scope, depth: int = 0) -> list[str]:
        if depth > _MAX_DEPTH:
            return []
        if _is_set_op(scope):
            return _flat(self.projection(s, depth + 1) for s in scope.set_operation_scopes)
        out: list[str] = []
        for select in getattr(scope.expression, "selects", []):
            out += self.expression(scope, select, depth)
        return out

    def expression(self, scope: Scope, node: exp.Expression, depth: int) -> list[str]:
        if isinstance(node, exp.Star):
            return self.star(scope, None, depth)
        out: list[str] = []
        for col in _local_nodes(node, exp.Column):
            out += self.column(scope, col, depth)
        for sub in _local_nodes(node, exp.Subquery):
            child = _child_scope(scope, sub)
            if child is not None:
                out += self.projection(child, depth + 1)
        return out

    def star(self, scope: Scope, alias: str | None, depth: int) -> list[str]:
        sources = scope.sources if alias is None else {alias: scope.sources.get(alias)}
        out: list[str] = []
        for source in sources.values():
            if isinstance(source, exp.Table) and is_named_table(source):
                out += star_columns(self.catalog, table_name(source))
            elif isinstance(source, Scope):
                out += self.projection(source, depth + 1)
        return out

    def column(self, scope: Scope, col: exp.Column, depth: int) -> list[str]:
        if isinstance(col.this, exp.Star):
            return self.star(scope, col.table or None, depth)
        name = col.name
        source = self._source(scope, col.table, name)
        if isinstance(source, exp.Table) and is_named_table(source):
            return [f"{table_name(source)}.{name}"]
        if isinstance(source, Scope):
            return self.named(source, name, depth + 1)
        return [f"{UNKNOWN_TABLE}.{name}"]

    def named(self, scope: Scope, name: str, depth: int) -> list[str]:
        """Columns behind the output column ``name`` of a derived table / CTE."""
        if depth > _MAX_DEPTH:
            return [f"{UNKNOWN_TABLE}.{name}"]
        if _is_set_op(scope):
            return _flat(self.named(s, name, depth + 1) for s in scope.set_operation_scopes)
        selects = getattr(scope.expression, "selects", [])
        for select in selects:
            if select.alias_or_name == name and not isinstance(select, exp.Star):
                return self.expression(scope, select, depth)
        stars = [
            s
            for s in selects
            if isinstance(s, exp.Star)
            or (isinstance(s, exp.Column) and isinstance(s.this, exp.Star))
        ]
        if stars:
            source = self._source(scope, "", name)
            if isinstance(source, exp.Table) and is_named_table(source):
                return [f"{table_name(source)}.{name}"]
            if isinstance(source, Scope):
                return self.named(source, name, depth + 1)
        return [f"{UNKNOWN_TABLE}.{name}"]

    def _source(self, scope: Scope, alias: str, name: str) -> exp.Expression | Scope | None:
        if alias:
            walk: Scope | None = scope
            while walk is not None:  # correlated subqueries see outer aliases
                if alias in walk.sources:
                    return walk.sources[alias]
                walk = walk.parent
            return None
        sources = list(scope.sources.values())
        if len(sources) == 1:
            return sources[0]
        # Unqualified column, several sources, qualify could not tell: pick the only source
        # known to have it, else the only source whose shape is unknown.
        having = [s for s in sources if name in self._columns_of(s)]
        if len(having) == 1:
            return having[0]
        unknown = [s for s in sources if not self._columns_of(s)]
        return unknown[0] if len(unknown) == 1 else None

    def _columns_of(self, source: exp.Expression | Scope) -> set[str]:
        if isinstance(source, exp.Table) and is_named_table(source):
            return set(self.catalog.columns_of(table_name(source)))
        if isinstance(source, Scope):
            return {s.alias_or_name for s in getattr(source.expression, "selects", [])}
        return set()


def _is_set_op(scope: Scope) -> bool:
    # Scope.is_set_operation means "is a branch of one"; we need "is one".
    return isinstance(scope.expression, exp.SetOperation)


def _flat(lists: object) -> list[str]:
    return [item for sub in lists for item in sub]  # type: ignore[attr-defined]


_Node = TypeVar("_Node", bound=exp.Expr)


def _local_nodes(node: exp.Expr, kind: type[_Node]) -> list[_Node]:
    """Nodes of ``kind`` under ``node`` that are not inside a nested query."""
    nested = (exp.Subquery, exp.Query)
    return [
        sub
        for sub in node.walk(prune=lambda n: n is not node and isinstance(n, nested))
        if isinstance(sub, kind)
    ]


def _child_scope(scope: Scope, subquery: exp.Expression) -> Scope | None:
    target = subquery.this if isinstance(subquery, exp.Subquery) else subquery
    for child in scope.subquery_scopes:
        if child.expression is target:
            return child
    return None


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def analyse_query(tree: exp.Expr, catalog: Catalog, dialect: str) -> QueryShape:
    """The :class:`QueryShape` of a read query whose tables :func:`resolve_tables` fixed."""
    qualified = _qualified(tree, catalog, dialect)
    root = build_scope(qualified)
    if root is None:
        return QueryShape()
    tracer = _Tracer(catalog)
    tables = [
        table_name(src)
        for sc in root.traverse()
        for src in sc.sources.values()
        if isinstance(src, exp.Table) and is_named_table(src)
    ]
    branches = root.set_operation_scopes if _is_set_op(root) else [root]
    branches = _leaf_scopes(branches)
    where_cols: list[str] = []
    lookups: list[str] = []
    ranges: list[str] = []
    has_where = bool(branches)
    any_agg, agg_only_all, group_by = False, bool(branches), False
    for branch in branches:
        select = branch.expression
        where = select.args.get("where")
        columns = _local_nodes(where.this, exp.Column) if where is not None else []
        has_where = has_where and bool(columns)
        for col in columns:
            where_cols += tracer.column(branch, col, 0)
        if where is not None:
            for col in lookup_candidates(where.this):
                lookups += tracer.column(branch, col, 0)
            for col in range_candidates(where.this):
                ranges += tracer.column(branch, col, 0)
        has_agg, agg_only = aggregates(list(getattr(select, "selects", [])))
        any_agg, agg_only_all = any_agg or has_agg, agg_only_all and agg_only
        group_by = group_by or select.args.get("group") is not None
    has_limit, limit_value, has_offset, offset_value = limit_of(qualified)
    return QueryShape(
        tables_read=_unique(tables),
        columns_read=_unique(tracer.projection(root)),
        where_columns=_unique(where_cols),
        lookup_columns=_unique(lookups),
        range_columns=_unique(ranges),
        has_where=has_where,
        has_limit=has_limit,
        limit_value=limit_value,
        has_offset=has_offset,
        offset_value=offset_value,
        has_group_by=group_by,
        has_aggregate=any_agg,
        aggregate_only=agg_only_all,
    )


def _leaf_scopes(scopes: list[Scope]) -> list[Scope]:
    out: list[Scope] = []
    for scope in scopes:
        if _is_set_op(scope):
            out += _leaf_scopes(scope.set_operation_scopes)
        else:
            out.append(scope)
    return out
