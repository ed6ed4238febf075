"""The result of analysing one statement: :class:`StatementAnalysis`, and :func:`combine`
for the union of several (see :mod:`features.sql_analysis`, which produces them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any, Final

#: Ways data leaves the database through the statement itself.
EXPORT_FORMS: Final = ("copy_to", "copy_query_to", "into_outfile")


@dataclass(frozen=True)
class StatementAnalysis:
    """What one statement does, as far as exfiltration is concerned.

    Attributes
    ----------
    dialect
        ``postgres`` or ``mysql``.
    kind
        One of :data:`features.sql_rules.STATEMENT_KINDS`.
    statement_index, statement_count
        Position of this statement in its text, and how many the text holds.
    tables_read
        Base tables read, ``schema.table`` lower-case (catalog names when resolvable).
    tables_written
        Targets of INSERT/UPDATE/DELETE/COPY FROM/CREATE/``SELECT INTO``.
    columns_read
        Columns the statement returns, traced to base tables: ``schema.table.column``,
        ``schema.table.*`` when the table's columns are unknown, ``?.column`` when the
        source could not be told. Includes ``RETURNING`` and ``COPY`` column lists.
    where_columns
        Columns referenced by the top-level WHERE.
    lookup_columns
        Columns compared for equality with values (``= ?``, ``IN (...)``) in the WHERE.
    range_columns
        Columns bounded by values on both sides (``BETWEEN ? AND ?``) in the WHERE.
    has_where
        A WHERE that references a column (``WHERE 1=1`` filters nothing).
    has_limit, limit_value, has_offset, offset_value
        Outermost LIMIT/FETCH FIRST and OFFSET; values ``None`` when placeholders.
    has_group_by, has_aggregate
        GROUP BY present; an aggregate (not a window function) in the projection.
    aggregate_only
        Every projected column is inside a reducing aggregate (``count``, ``sum`` ...), so
        few rows come back; ``string_agg``/``array_agg``/``json_agg`` do not count.
    is_export, export_form, export_target
        Data leaves the database through the statement itself: ``copy_to``
        (``COPY table TO``), ``copy_query_to`` (``COPY (SELECT ...) TO``) or
        ``into_outfile`` (MySQL ``INTO OUTFILE|DUMPFILE``); target ``stdout``, ``file``,
        ``program``, ``outfile`` or ``dumpfile``.
    cursor, fetch_count, fetch_all
        Cursor name of FETCH/MOVE/DECLARE; rows a FETCH asks for (``None`` for a
        placeholder or ALL); FETCH ALL.
    parse_ok, parse_error
        Whether sqlglot (or a dedicated rule) understood the statement; if not, why.
    """

    dialect: str
    kind: str
    statement_index: int | None = 0
    statement_count: int = 1
    tables_read: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
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
    is_export: bool = False
    export_form: str | None = None
    export_target: str | None = None
    cursor: str | None = None
    fetch_count: int | None = None
    fetch_all: bool = False
    parse_ok: bool = True
    parse_error: str | None = None

    @property
    def reads_whole_table(self) -> bool:
        """Reads every row of its tables: no filter, no limit, not aggregate-only.

        >>> StatementAnalysis("postgres", "copy", tables_read=("public.t",)).reads_whole_table
        True
        """
        return (
            self.kind in ("select", "copy")
            and not self.has_where
            and not self.has_limit
            and not self.aggregate_only
            and bool(self.tables_read)
        )


def combine(analyses: Iterable[StatementAnalysis]) -> StatementAnalysis:
    """Union of several analyses: what the whole text reads, erring towards "more".

    >>> a = combine([StatementAnalysis("postgres", "select", columns_read=("t.a",), has_where=True),
    ...              StatementAnalysis("postgres", "select", columns_read=("u.b",))])
    >>> a.columns_read, a.has_where, a.statement_index
    (('t.a', 'u.b'), False, None)
    """
    items = list(analyses)
    first = items[0]

    def union(name: str) -> Any:
        return tuple(dict.fromkeys(v for a in items for v in getattr(a, name)))

    exports = [a for a in items if a.is_export]
    return replace(
        first,
        statement_index=None,
        **{
            f.name: union(f.name)
            for f in fields(StatementAnalysis)
            if f.name.endswith(("_read", "_written", "_columns"))
        },
        has_where=all(a.has_where for a in items),
        has_limit=all(a.has_limit for a in items),
        limit_value=None,
        has_offset=all(a.has_offset for a in items),
        offset_value=None,
        has_group_by=any(a.has_group_by for a in items),
        has_aggregate=any(a.has_aggregate for a in items),
        aggregate_only=all(a.aggregate_only for a in items),
        is_export=bool(exports),
        export_form=exports[0].export_form if exports else None,
        export_target=exports[0].export_target if exports else None,
        parse_ok=all(a.parse_ok for a in items),
        parse_error=next((a.parse_error for a in items if a.parse_error), None),
    )
