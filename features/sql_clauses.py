"""Clause-level facts of one SELECT: LIMIT/OFFSET values, aggregates, equality lookups,
bounded ranges.

Helpers of :mod:`features.sql_lineage`, on sqlglot nodes.

>>> import sqlglot
>>> limit_of(sqlglot.parse_one("SELECT 1 FROM t LIMIT 5 OFFSET ?"))
(True, 5, True, None)
"""

from __future__ import annotations

from typing import Final

from sqlglot import exp

#: Aggregates that return the rows' values themselves (one row carrying a whole table):
#: a projection made of these is not "aggregate only".
_COLLECTING_CLASSES: Final = tuple(
    getattr(exp, name)
    for name in ("GroupConcat", "ArrayAgg", "ArrayConcatAgg", "ArrayUnionAgg", "ArrayUniqueAgg",
                 "JSONArrayAgg", "JSONObjectAgg", "JSONBObjectAgg", "ObjectAgg")
    if hasattr(exp, name)
)  # fmt: skip
_COLLECTING_NAMES: Final = frozenset(
    {"string_agg", "array_agg", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
     "xmlagg", "listagg", "group_concat", "json_arrayagg", "json_objectagg"}
)  # fmt: skip
_VALUE_NODES: Final = (exp.Literal, exp.Placeholder, exp.Parameter, exp.Null, exp.Boolean)


def _int_value(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def limit_of(query: exp.Expr) -> tuple[bool, int | None, bool, int | None]:
    """``(has_limit, limit_value, has_offset, offset_value)``; values None for placeholders."""
    limit = query.args.get("limit")
    has_limit, limit_value = False, None
    if isinstance(limit, exp.Limit):
        value = limit.expression
        if not (isinstance(value, exp.Var) and value.name.upper() == "ALL"):
            has_limit, limit_value = True, _int_value(value)
    elif isinstance(limit, exp.Fetch):
        count = limit.args.get("count")
        has_limit, limit_value = True, 1 if count is None else _int_value(count)
    offset = query.args.get("offset")
    if isinstance(offset, exp.Offset):
        return has_limit, limit_value, True, _int_value(offset.expression)
    return has_limit, limit_value, False, None


def _is_collecting(node: exp.Expr) -> bool:
    if isinstance(node, _COLLECTING_CLASSES):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in _COLLECTING_NAMES


def aggregates(selects: list[exp.Expression]) -> tuple[bool, bool]:
    """``(has_aggregate, aggregate_only)`` of a projection list.

    Window aggregates return one row per input row, so they count as plain columns;
    collecting aggregates (``string_agg`` ...) return the values themselves.
    """
    has_agg, reduced = False, True
    for select in selects:
        if isinstance(select, exp.Star):
            reduced = False
            continue
        for node in select.walk():
            agg = isinstance(node, exp.AggFunc) or _is_collecting(node)
            if agg and node.find_ancestor(exp.Window) is None:
                has_agg = True
                reduced = reduced and not _is_collecting(node)
        for col in select.find_all(exp.Column):
            owner = col.find_ancestor(exp.AggFunc, exp.Window, exp.Select)
            if not isinstance(owner, exp.AggFunc) or _is_collecting(owner):
                reduced = False
    return has_agg, has_agg and reduced


def lookup_candidates(where: exp.Expression) -> list[exp.Column]:
    """Columns compared for equality (``=``, ``IN (...)``, ``= ANY(?)``) with values, in the
    top-level ``AND`` of a WHERE."""
    conds = list(where.flatten()) if isinstance(where, exp.And) else [where]
    out = []
    for cond in conds:
        cond = cond.unnest()
        if isinstance(cond, exp.EQ):
            left, right = cond.this, cond.expression
            if isinstance(right, exp.Column):
                left, right = right, left
            if isinstance(right, exp.Any):
                right = right.this.unnest()
            if isinstance(left, exp.Column) and isinstance(right, _VALUE_NODES):
                out.append(left)
        elif isinstance(cond, exp.In) and isinstance(cond.this, exp.Column):
            values = cond.expressions
            if values and all(isinstance(v, _VALUE_NODES) for v in values):
                out.append(cond.this)
    return out


def range_candidates(where: exp.Expression) -> list[exp.Column]:
    """Columns bounded on both sides by values (``col BETWEEN ? AND ?``) in the top-level
    ``AND`` of a WHERE: a key range reads at most its width in rows.

    >>> import sqlglot
    >>> w = sqlglot.parse_one("SELECT 1 FROM t WHERE id BETWEEN 5 AND 9 AND x = 1").args["where"]
    >>> [c.name for c in range_candidates(w.this)]
    ['id']
    """
    conds = list(where.flatten()) if isinstance(where, exp.And) else [where]
    out = []
    for cond in conds:
        cond = cond.unnest()
        if (
            isinstance(cond, exp.Between)
            and isinstance(cond.this, exp.Column)
            and isinstance(cond.args.get("low"), _VALUE_NODES)
            and isinstance(cond.args.get("high"), _VALUE_NODES)
        ):
            out.append(cond.this)
    return out
