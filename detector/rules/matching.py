"""Matching threat rules against a window frame (vectorised: one polars mask per rule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from detector.exceptions import ThreatRuleError
from detector.rules.schema import ThreatRule, load_rules  # noqa: F401  (doctest)
from detector.rules.vocabulary import window_frame  # noqa: F401  (doctest)


def match_rules(
    rules: Sequence[ThreatRule], windows: pl.DataFrame, *, render: bool = True
) -> pl.DataFrame:
    """One row per (window row, matching rule): the window's columns plus ``rule_id``,
    ``kind``, ``severity`` (escalated) and ``reasons`` (List(String)), in window order.

    ``render=False`` leaves ``reasons`` empty: sentences are rendered one row at a time,
    so the pipeline renders them (:func:`render_reasons`) only for matches that alert.

    >>> rules = load_rules()
    >>> row = {"user": "u1", "scale": "statement", "max_statement_rows": 50_000.0,
    ...        "z_max_statement_rows": 9.0, "typical_max_statement_rows": 20.0,
    ...        "classes": ["national_id", "phone"], "table_names": ["public.citizens"]}
    >>> hits = match_rules(rules, window_frame([row, {"user": "u2"}]))
    >>> hits.select("user", "rule_id", "kind", "severity").rows()
    [('u1', 'EXF-001', 'smash_and_grab', 'critical')]
    >>> print(hits["reasons"][0][0])
    read 50,000 sensitive rows of national_id, phone from public.citizens in one statement; \
u1 typically reads 20 per statement (peers n/a), at most n/a before
    """
    needed = set().union(*(r.columns for r in rules)) if rules else set()
    missing = sorted(needed - set(windows.columns))
    if missing:
        raise ThreatRuleError(f"window frame lacks columns the rules need: {', '.join(missing)}")
    extra = {"rule_id": pl.String, "kind": pl.String, "severity": pl.String}
    schema = windows.schema | extra | {"reasons": pl.List(pl.String)}
    if not rules or windows.is_empty():
        return pl.DataFrame(schema=schema)
    masks = windows.select(
        ((pl.col("scale") == r.scale) & r.condition_).fill_null(False).alias(str(i))
        for i, r in enumerate(rules)
    )
    hits = masks.sum().row(0)  # most windows match nothing: filter only for rules that hit
    indexed = windows.with_row_index("_row")
    parts = []
    for i, rule in enumerate(rules):
        if not hits[i]:
            continue
        hit = indexed.filter(masks[str(i)])
        cols = sorted(rule.columns)
        reasons = (
            [rule.render(r) for r in hit.select(cols).iter_rows(named=True)]
            if render
            else [[]] * hit.height
        )
        labels = {"rule_id": pl.lit(rule.id), "kind": pl.lit(rule.kind), "_rule": pl.lit(i)}
        reasons_col = pl.Series(reasons, dtype=pl.List(pl.String))
        parts.append(hit.with_columns(severity=rule.severity_, reasons=reasons_col, **labels))
    if not parts:
        return pl.DataFrame(schema=schema)
    out = pl.concat(parts).sort("_row", "_rule")
    return out.select(*windows.columns, *extra, "reasons").cast(extra)


def render_reasons(matches: pl.DataFrame, rules: Mapping[str, ThreatRule]) -> pl.DataFrame:
    """``matches`` (of ``match_rules(..., render=False)``) with their ``reasons`` rendered."""
    if matches.is_empty():
        return matches
    reasons = [rules[row["rule_id"]].render(row) for row in matches.iter_rows(named=True)]
    return matches.with_columns(reasons=pl.Series(reasons, dtype=pl.List(pl.String)))
