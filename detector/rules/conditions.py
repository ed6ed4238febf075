"""The conditions of threat rules: ``{column, op, value}`` tests and ``any``/``all`` groups,
validated against the window columns' kinds and compiled into polars expressions (the
operators of each kind are listed in :mod:`detector.rules.schema`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import polars as pl

from detector.rules.vocabulary import WINDOW_COLUMNS

_OPS: Final[dict[str, tuple[str, ...]]] = {
    "numeric": (">=", ">", "<=", "<", "==", "!="),
    "boolean": ("==", "!="),
    "string": ("==", "!=", "in", "not in"),
    "list": ("len>=", "len>", "len<=", "len<", "len==", "contains", "contains_any"),
}
_COMPARE: Final = dict(
    zip(
        _OPS["numeric"],
        (pl.Expr.ge, pl.Expr.gt, pl.Expr.le, pl.Expr.lt, pl.Expr.eq, pl.Expr.ne),
        strict=True,
    )
)


@dataclass(frozen=True)
class Condition:
    """``column op value``; see the module docstring for the operators of each kind."""

    column: str
    op: str
    value: Any

    def expr(self) -> pl.Expr:
        """The condition as a boolean polars expression (null -> false).

        >>> frame = pl.DataFrame({"pages": [30.0, 2.0, None]})
        >>> frame.select(Condition("pages", ">=", 20).expr())["pages"].to_list()
        [True, False, False]
        """
        col = pl.col(self.column)
        if self.op in _COMPARE:
            out = _COMPARE[self.op](col, pl.lit(self.value))
        elif self.op in ("in", "not in"):
            out = col.is_in(list(self.value))
            out = ~out if self.op == "not in" else out
        elif self.op.startswith("len"):
            out = _COMPARE[self.op[3:]](col.list.len(), pl.lit(self.value))
        elif self.op == "contains":
            out = col.list.contains(pl.lit(self.value))
        else:  # contains_any
            out = col.list.eval(pl.element().is_in(list(self.value))).list.any()
        return out.fill_null(False)


@dataclass(frozen=True)
class Group:
    """``any``/``all`` of nested conditions."""

    mode: Literal["any", "all"]
    conditions: tuple[Condition | Group, ...]

    def expr(self) -> pl.Expr:
        """``any`` -> or of the members, ``all`` -> and."""
        exprs = [c.expr() for c in self.conditions]
        return pl.any_horizontal(exprs) if self.mode == "any" else pl.all_horizontal(exprs)


Cond = Condition | Group


def condition_columns(cond: Cond) -> set[str]:
    if isinstance(cond, Condition):
        return {cond.column}
    return {n for c in cond.conditions for n in condition_columns(c)}


def parse_condition(item: Any, key: str, fail: Any) -> Cond:
    if isinstance(item, dict) and len(item) == 1 and set(item) <= {"any", "all"}:
        mode, members = next(iter(item.items()))
        if not isinstance(members, list) or not members:
            raise fail(f"{key}.{mode}", "must be a non-empty list of conditions")
        return Group(
            mode,
            tuple(parse_condition(c, f"{key}.{mode}[{i}]", fail) for i, c in enumerate(members)),
        )
    if not isinstance(item, dict) or set(item) != {"column", "op", "value"}:
        raise fail(key, "must be {column, op, value}, {any = [...]} or {all = [...]}")
    column, op, value = item["column"], item["op"], item["value"]
    kind = WINDOW_COLUMNS.get(column)
    if kind is None:
        raise fail(f"{key}.column", f"unknown window column {column!r}")
    if op not in _OPS.get(kind, ()):
        allowed = ", ".join(_OPS.get(kind, ())) or "none: it cannot be tested"
        raise fail(f"{key}.op", f"{op!r} not valid for {kind} column {column!r} (valid: {allowed})")
    if op in ("in", "not in", "contains_any"):
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)
    elif op.startswith("len"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        expected = {"numeric": (int, float), "boolean": (bool,)}.get(kind, (str,))
        ok = isinstance(value, expected) and (kind == "boolean" or not isinstance(value, bool))
    if not ok:
        raise fail(f"{key}.value", f"{value!r} does not fit op {op!r} on {kind} column {column!r}")
    return Condition(column, op, value)
