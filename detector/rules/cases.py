"""A rule's own test cases: window rows it must match (at a severity) and near misses.

Every rule file carries at least one hit and one near miss, in the manner of Elastic
detection-rules' per-rule tests, so that a rule and the evidence that it works travel
together and an edited threshold that breaks its own example is refused on load:

.. code-block:: toml

    [[cases]]
    expect = "high"                      # the severity it must raise, or "none"
    note = "a scripted walk: 60 pages of 6,000 sensitive rows in five minutes"
    row = { pages = 60.0, z_pages = 5.0, sensitive_rows = 6000.0 }

``row`` names window columns (:data:`~detector.rules.vocabulary.WINDOW_COLUMNS`); the ones
it leaves out take :func:`~detector.rules.vocabulary.window_frame`'s defaults, and ``scale``
defaults to the rule's own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from detector.exceptions import ThreatRuleError
from detector.rules.vocabulary import SEVERITIES, WINDOW_COLUMNS, window_frame

if TYPE_CHECKING:
    from detector.rules.schema import ThreatRule

NO_MATCH: Final = "none"
_CASE_KEYS: Final = frozenset({"expect", "note", "row"})

Fail = Callable[[str, str], ThreatRuleError]


@dataclass(frozen=True)
class RuleCase:
    """One example window row and what the rule must do with it."""

    #: the severity the rule must raise on ``row``, or ``"none"``: it must not match
    expect: str
    #: why the row is a hit or a near miss, for the reader of the rule
    note: str
    row: Mapping[str, Any]


def parse_cases(items: Any, fail: Fail) -> tuple[RuleCase, ...]:
    """The ``[[cases]]`` of a rule document: at least one hit and one near miss."""
    if not isinstance(items, list) or not items:
        raise fail("cases", "must be a non-empty list of {expect, note, row} tables")
    cases = tuple(_case(item, f"cases[{i}]", fail) for i, item in enumerate(items))
    if all(c.expect == NO_MATCH for c in cases):
        raise fail("cases", "needs a case the rule matches (expect = a severity)")
    if all(c.expect != NO_MATCH for c in cases):
        raise fail("cases", f"needs a near miss the rule must not match (expect = {NO_MATCH!r})")
    return cases


def _case(item: Any, key: str, fail: Fail) -> RuleCase:
    if not isinstance(item, dict) or set(item) != _CASE_KEYS:
        raise fail(key, "must be a table with exactly expect, note, row")
    expect, note, row = item["expect"], item["note"], item["row"]
    if expect not in (*SEVERITIES, NO_MATCH):
        raise fail(f"{key}.expect", f"{expect!r} is not a severity or {NO_MATCH!r}")
    if not isinstance(note, str) or not note.strip():
        raise fail(f"{key}.note", "must say why the row is a hit or a near miss")
    if not isinstance(row, dict) or not row:
        raise fail(f"{key}.row", "must be a non-empty table of window columns")
    unknown = sorted(set(row) - set(WINDOW_COLUMNS))
    if unknown:
        raise fail(f"{key}.row.{unknown[0]}", "unknown window column")
    return RuleCase(expect, " ".join(note.split()), dict(row))


def case_outcomes(rule: ThreatRule, cases: Sequence[RuleCase] | None = None) -> list[str]:
    """What the rule does with each case row: its severity, or ``"none"``.

    >>> from detector.rules.schema import load_rules
    >>> rule = load_rules()[0]
    >>> case_outcomes(rule) == [c.expect for c in rule.cases]
    True
    """
    cases = rule.cases if cases is None else cases
    rows = [{"scale": rule.scale, "user": f"case{i}"} | dict(c.row) for i, c in enumerate(cases)]
    try:
        frame = window_frame(rows)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ThreatRuleError(
            f"{rule.source}: cases: a row does not fit its columns: {exc}"
        ) from exc
    judged = frame.select(
        hit=((pl.col("scale") == rule.scale) & rule.condition_).fill_null(False),
        severity=rule.severity_,
    )
    return [sev if hit else NO_MATCH for hit, sev in judged.iter_rows()]


def case_failures(rule: ThreatRule) -> list[str]:
    """One line per case the rule gets wrong (empty: every case holds)."""
    return [
        f"{rule.source}: cases[{i}] ({case.note}): expected {case.expect}, got {got}"
        for i, (case, got) in enumerate(zip(rule.cases, case_outcomes(rule), strict=True))
        if got != case.expect
    ]
