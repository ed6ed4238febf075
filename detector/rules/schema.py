"""Threat patterns as data: ``detector/rules/EXF-nnn-<kind>.toml`` matched against window frames.

Each rule file describes one way of exfiltrating data (a *kind*) at one scale, in the
manner of Elastic detection-rules: the file says what to test, how bad it is, which
MITRE ATT&CK techniques it maps to, how to explain a hit and what the analyst checks next.
Files are validated on load (every error names the file and the key) and each rule's
condition is compiled once into a polars expression.

File format
-----------
.. code-block:: toml

    id = "EXF-001"                       # unique, "ABC-123"
    name = "Whole table read in one statement"
    kind = "smash_and_grab"              # one of KINDS
    scale = "statement"                  # statement | 5m | 1h | 1d
    severity = "high"                    # base: low | medium | high | critical
    description = "..."
    triage = "..."                       # what to check next
    reasons = ["read {max_statement_rows:,.0f} rows; typically {typical_max_statement_rows:,.0f}"]
    estimated_note = "..."               # optional; appended when estimated_rows > 0

    [[attack]]
    tactic = "TA0009"                    # TAnnnn
    technique = "T1213"                  # Tnnnn or Tnnnn.nnn
    name = "Data from Information Repositories"

    [[when]]                             # conditions, all must hold
    column = "max_statement_rows"
    op = ">="
    value = 1000
    [[when]]
    any = [{ column = "exports", op = ">=", value = 1 }, { column = "pages", op = ">=", value = 9 }]

    [escalate]                           # optional: severity -> conditions (all must hold)
    critical = [{ column = "max_statement_rows", op = ">=", value = 10000 }]

    [[cases]]                            # its own tests: >= 1 hit and >= 1 near miss
    expect = "high"                      # severity it must raise, or "none"
    note = "why this row is a hit"
    row = { max_statement_rows = 2000.0, z_max_statement_rows = 6.0 }

Conditions
----------
A condition is ``{column, op, value}``, ``{any = [...]}`` (one must hold) or
``{all = [...]}`` (all must hold). The operators allowed depend on the column's kind in
:data:`WINDOW_COLUMNS`:

=========  ============================================================================
numeric    ``>= > <= < == !=`` with a number
boolean    ``== !=`` with ``true``/``false``
string     ``== !=`` with a string; ``in``/``not in`` with a list of strings
list       ``len>= len> len<= len< len==`` with an integer; ``contains`` with a string;
           ``contains_any`` with a list of strings (true when the list shares one)
=========  ============================================================================

A condition on a null value is false (``!=`` included): ``typical_f`` is null for a user
without history, and "unknown" must not trigger a rule. ``time`` and ``evidence`` columns
cannot be tested. ``escalate`` levels must be above the base; the most severe level whose
conditions all hold wins. ``name``, ``description`` and ``triage`` are folded into one line.

Reasons
-------
``reasons`` and ``estimated_note`` are :meth:`str.format` templates over the window row
(any :data:`WINDOW_COLUMNS` name, plus ``scale_name``: "statement", "5 minutes", "hour",
"day"). Nulls render as ``n/a`` whatever the format spec, lists comma-joined (``none``
when empty), booleans ``yes``/``no``. Templates are rendered against a dummy row on load,
so an unknown field or a bad format spec fails there, naming the rule.

Cases
-----
``[[cases]]`` are the rule's own hit and near-miss window rows (:mod:`detector.rules.cases`);
a rule that fails one of them is refused on load.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.exceptions import ThreatRuleError
from detector.rules.cases import RuleCase, case_failures, parse_cases
from detector.rules.conditions import Cond, condition_columns, parse_condition
from detector.rules.reasons import FORMATTER, Value, check_template, template_fields
from detector.rules.vocabulary import (
    DEFAULT_ESTIMATED_NOTE,
    KINDS,
    MODEL_FEATURES,
    SCALE_NAMES,
    SCALES,
    SEVERITIES,
    WINDOW_COLUMNS,
    ColumnKind,
    dummy_row,
    window_frame,
)

__all__ = [
    "DEFAULT_ESTIMATED_NOTE",
    "KINDS",
    "MODEL_FEATURES",
    "SCALES",
    "SCALE_NAMES",
    "SEVERITIES",
    "WINDOW_COLUMNS",
    "ColumnKind",
    "ThreatRule",
    "dummy_row",
    "load_rules",
    "window_frame",
]

_RULE_KEYS: Final = frozenset(
    {"id", "name", "kind", "scale", "severity", "description", "triage", "attack", "when"}
    | {"escalate", "reasons", "estimated_note", "cases"}
)
_RULE_ID: Final = re.compile(r"[A-Z]{2,5}-\d{3}")
_TACTIC: Final = re.compile(r"TA\d{4}")
_TECHNIQUE: Final = re.compile(r"T\d{4}(\.\d{3})?")


@dataclass(frozen=True)
class AttackRef:
    """One MITRE ATT&CK mapping: tactic ``TAnnnn``, technique ``Tnnnn[.nnn]`` and its name."""

    tactic: str
    technique: str
    name: str


@dataclass(frozen=True)
class ThreatRule:
    """One validated threat rule (one TOML file); build with :func:`parse_rule`.

    ``escalate`` holds ``(severity, conditions)`` pairs, most severe first.
    ``condition_`` and ``severity_`` are the compiled polars expressions.
    """

    id: str
    name: str
    kind: str
    scale: str
    severity: str
    description: str
    triage: str
    attack: tuple[AttackRef, ...]
    when: tuple[Cond, ...]
    escalate: tuple[tuple[str, tuple[Cond, ...]], ...]
    reasons: tuple[str, ...]
    estimated_note: str = DEFAULT_ESTIMATED_NOTE
    source: str = "<rule>"
    #: its own hit and near-miss rows (:mod:`detector.rules.cases`)
    cases: tuple[RuleCase, ...] = ()
    condition_: pl.Expr = field(init=False, repr=False, compare=False)
    severity_: pl.Expr = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "condition_", pl.all_horizontal([c.expr() for c in self.when]))
        sev: Any = pl
        for level, conds in self.escalate:
            sev = sev.when(pl.all_horizontal([c.expr() for c in conds])).then(pl.lit(level))
        sev = sev.otherwise(pl.lit(self.severity)) if self.escalate else pl.lit(self.severity)
        object.__setattr__(self, "severity_", sev)

    @cached_property
    def columns(self) -> frozenset[str]:
        """Window columns the rule reads (conditions, escalations, templates)."""
        conds = list(self.when) + [c for _, cs in self.escalate for c in cs]
        names = {n for c in conds for n in condition_columns(c)}
        for template in (*self.reasons, self.estimated_note):
            names |= template_fields(template)
        return frozenset(names - {"scale_name"} | {"scale", "estimated_rows"})

    def render(self, row: Mapping[str, Any]) -> list[str]:
        """The reasons for one matched window row (a ``{column: value}`` mapping).

        >>> rule = load_rules()[0]
        >>> rule.render(dummy_row())[0][:40]
        'read 12,346 sensitive rows of name, nati'
        """
        values = {k: Value(v) for k, v in row.items()}
        values["scale_name"] = Value(SCALE_NAMES.get(row.get("scale") or "", row.get("scale")))
        out = [FORMATTER.vformat(t, (), values) for t in self.reasons]
        if (row.get("estimated_rows") or 0) > 0:
            out.append(FORMATTER.vformat(self.estimated_note, (), values))
        return out


# -- loading ---------------------------------------------------------------------------


def load_rules(directory: str | Path | None = None) -> tuple[ThreatRule, ...]:
    """Load every ``*.toml`` rule of ``directory`` (default: the bundled rules), by id.

    >>> rules = load_rules()
    >>> len({r.kind for r in rules}) == len(KINDS)
    True
    """
    base = resources.files("detector") / "rules" if directory is None else Path(directory)
    try:
        files = sorted(
            (f for f in base.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name
        )
    except OSError as exc:
        raise ThreatRuleError(f"{base}: cannot list threat rules: {exc}") from exc
    if not files:
        raise ThreatRuleError(f"{base}: no *.toml threat rules")
    rules: dict[str, ThreatRule] = {}
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            raise ThreatRuleError(f"{f}: cannot read threat rule: {exc}") from exc
        rule = loads_rule(text, source=f.name)
        if rule.id in rules:
            raise ThreatRuleError(
                f"{f.name}: id: {rule.id!r} already used by {rules[rule.id].source}"
            )
        rules[rule.id] = rule
    return tuple(rules[k] for k in sorted(rules))


def loads_rule(text: str, *, source: str = "<rule>") -> ThreatRule:
    """Parse and validate one rule's TOML text; errors start with ``source: key:``.

    >>> loads_rule('id = "EXF-1"', source="x.toml")
    Traceback (most recent call last):
    ...
    detector.exceptions.ThreatRuleError: x.toml: id: 'EXF-1' is not like 'EXF-001'
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThreatRuleError(f"{source}: invalid TOML: {exc}") from exc
    return parse_rule(data, source=source)


def parse_rule(data: Mapping[str, Any], *, source: str = "<rule>") -> ThreatRule:
    """Validate an already-parsed rule mapping (the TOML document's structure)."""

    def fail(key: str, msg: str) -> ThreatRuleError:
        return ThreatRuleError(f"{source}: {key}: {msg}")

    def text(key: str, pattern: re.Pattern[str] | None = None, like: str = "") -> str:
        if key not in data:
            raise fail(key, "missing")
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise fail(key, "must be a non-empty string")
        if pattern is not None and not pattern.fullmatch(value):
            raise fail(key, f"{value!r} is not like {like!r}")
        return " ".join(value.split())  # TOML multi-line strings: one paragraph

    def choice(key: str, allowed: Sequence[str]) -> str:
        value = text(key)
        if value not in allowed:
            raise fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    unknown = sorted(set(data) - _RULE_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_RULE_KEYS))})")
    rule_id = text("id", _RULE_ID, "EXF-001")
    fields = {k: text(k) for k in ("name", "description", "triage")}
    kind, scale = choice("kind", KINDS), choice("scale", SCALES)
    severity = choice("severity", SEVERITIES)
    attack = tuple(
        _attack(a, f"attack[{i}]", fail) for i, a in enumerate(_list(data, "attack", fail))
    )
    when = tuple(
        parse_condition(c, f"when[{i}]", fail) for i, c in enumerate(_list(data, "when", fail))
    )
    escalate = _escalate(data.get("escalate", {}), severity, fail)
    reasons = tuple(_list(data, "reasons", fail))
    note = text("estimated_note") if "estimated_note" in data else DEFAULT_ESTIMATED_NOTE
    row = dummy_row()
    for key, template in [
        *((f"reasons[{i}]", r) for i, r in enumerate(reasons)),
        ("estimated_note", note),
    ]:
        check_template(template, key, row, fail)
    rule = ThreatRule(
        rule_id, fields["name"], kind, scale, severity, fields["description"], fields["triage"],
        attack, when, escalate, reasons, note, source, parse_cases(data.get("cases"), fail),
    )  # fmt: skip
    wrong = case_failures(rule)
    if wrong:
        raise ThreatRuleError(f"{wrong[0]} (the rule fails its own test case)")
    return rule


def _list(data: Mapping[str, Any], key: str, fail: Any) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise fail(key, "must be a non-empty list")
    return value


def _attack(item: Any, key: str, fail: Any) -> AttackRef:
    if not isinstance(item, dict) or set(item) != {"tactic", "technique", "name"}:
        raise fail(key, "must be a table with exactly tactic, technique, name")
    for sub, pattern in (("tactic", _TACTIC), ("technique", _TECHNIQUE)):
        if not isinstance(item[sub], str) or not pattern.fullmatch(item[sub]):
            raise fail(f"{key}.{sub}", f"{item[sub]!r} is not an ATT&CK {sub} id")
    if not isinstance(item["name"], str) or not item["name"].strip():
        raise fail(f"{key}.name", "must be a non-empty string")
    return AttackRef(item["tactic"], item["technique"], item["name"].strip())


def _escalate(data: Any, base: str, fail: Any) -> tuple[tuple[str, tuple[Cond, ...]], ...]:
    if not isinstance(data, dict):
        raise fail("escalate", "must be a table of severity = [conditions]")
    out = []
    for level in reversed(SEVERITIES):
        if level not in data:
            continue
        if SEVERITIES.index(level) <= SEVERITIES.index(base):
            raise fail(f"escalate.{level}", f"must be more severe than the base {base!r}")
        conds = _list(data, level, lambda k, m: fail(f"escalate.{k}", m))
        out.append(
            (
                level,
                tuple(
                    parse_condition(c, f"escalate.{level}[{i}]", fail) for i, c in enumerate(conds)
                ),
            )
        )
    unknown = sorted(set(data) - set(SEVERITIES))
    if unknown:
        raise fail(f"escalate.{unknown[0]}", f"not a severity ({', '.join(SEVERITIES)})")
    return tuple(out)
