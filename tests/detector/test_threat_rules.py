"""Threat rules: the bundled rule files, their validation and matching on window frames."""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.exceptions import ThreatRuleError
from detector.rules.cases import NO_MATCH, case_failures
from detector.rules.conditions import Condition, Group
from detector.rules.matching import match_rules
from detector.rules.schema import (
    KINDS,
    MODEL_FEATURES,
    SEVERITIES,
    WINDOW_COLUMNS,
    ThreatRule,
    dummy_row,
    load_rules,
    loads_rule,
    window_frame,
)

BUNDLED = resources.files("detector") / "rules"
TACTIC = re.compile(r"TA\d{4}")
TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
COMPARATIVE = ("typical_", "peer_typical_", "max_")


def _columns(cond: Condition | Group) -> list[str]:
    if isinstance(cond, Condition):
        return [cond.column]
    return [c for member in cond.conditions for c in _columns(member)]


def _hit(rule_id: str) -> dict[str, Any]:
    """The first row that rule's file says it matches, with the rule's scale."""
    rule = next(r for r in load_rules() if r.id == rule_id)
    return {"scale": rule.scale} | dict(next(c for c in rule.cases if c.expect != NO_MATCH).row)


def _null_row() -> dict[str, Any]:
    """A row where everything that may be null or empty is: templates must still render."""
    nullable = {f"{p}{f}" for p in COMPARATIVE for f in MODEL_FEATURES}
    row = dummy_row()
    for name, kind in WINDOW_COLUMNS.items():
        if name in nullable:
            row[name] = None
        elif kind == "list":
            row[name] = []
    return row


def test_every_bundled_rule_file_is_sound() -> None:
    problems: list[str] = []
    rules: list[ThreatRule] = []
    files = sorted((f for f in BUNDLED.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    if not files:
        problems.append("no rule files in detector/rules")
    for f in files:
        try:
            rule = loads_rule(f.read_text(encoding="utf-8"), source=f.name)
        except ThreatRuleError as exc:
            problems.append(f"invalid: {exc}")
            continue
        rules.append(rule)
        name = f.name
        stem = f"{rule.id}-{rule.kind.replace('_', '-')}"
        if not (name == f"{stem}.toml" or name.startswith(f"{stem}-")):
            problems.append(f"{name}: file name should start with its id and kind {stem!r}")
        problems += [f"{name}: {line}" for line in case_failures(rule)]
        if rule.kind not in KINDS:
            problems.append(f"{name}: unknown kind {rule.kind!r}")
        if "\n" in rule.triage or "\n" in rule.description:
            problems.append(f"{name}: triage/description not folded into one paragraph")
        if len(rule.triage.split()) < 8:
            problems.append(f"{name}: triage too thin to act on")
        for ref in rule.attack:
            if not TACTIC.fullmatch(ref.tactic) or not TECHNIQUE.fullmatch(ref.technique):
                problems.append(f"{name}: malformed ATT&CK ids {ref.tactic}/{ref.technique}")
        conds = [*rule.when, *(c for _, cs in rule.escalate for c in cs)]
        for column in (c for cond in conds for c in _columns(cond)):
            if column not in WINDOW_COLUMNS:
                problems.append(f"{name}: unknown column {column!r}")
        fields = {
            f for t in rule.reasons for _, f, _, _ in string.Formatter().parse(t) if f is not None
        }
        if not any(f.startswith(COMPARATIVE) for f in fields):
            problems.append(
                f"{name}: no reason states a typical/peer/max value (actual vs typical)"
            )
        for label, row in (("dummy", dummy_row()), ("null", _null_row())):
            for scale in ("statement", "5m", "1h", "1d"):
                try:
                    rendered = rule.render(row | {"scale": scale, "estimated_rows": 5.0})
                except (KeyError, ValueError, TypeError) as exc:
                    problems.append(f"{name}: reasons do not render on a {label} row: {exc!r}")
                    break
                if len(rendered) != len(rule.reasons) + 1:
                    problems.append(f"{name}: estimated note missing from rendered reasons")
    ids = [r.id for r in rules]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"duplicate id {dup}: {[r.source for r in rules if r.id == dup]}")
    for kind in sorted(set(KINDS) - {r.kind for r in rules}):
        problems.append(f"kind {kind!r} of issue 3 has no rule")
    assert not problems, "threat rule problems:\n" + "\n".join(problems)


def test_load_rules_returns_the_bundled_rules_by_id() -> None:
    rules = load_rules()
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    assert {r.kind for r in rules} == set(KINDS)
    assert all(r.source.endswith(".toml") for r in rules)


def test_model_features_mirror_the_window_aggregator() -> None:
    windows = pytest.importorskip("features.windows")
    features = getattr(windows, "WINDOW_FEATURES", None)
    if features is None:
        pytest.skip("features.windows has no WINDOW_FEATURES yet")
    assert tuple(features) == MODEL_FEATURES


# -- matching: every rule's own cases (its file's [[cases]]), through the full matcher ----


def test_every_rule_carries_a_hit_and_a_near_miss() -> None:
    thin = [r.source for r in load_rules() if {c.expect == NO_MATCH for c in r.cases} != {1, 0}]
    assert not thin, f"rules without both a hit and a near miss: {thin}"


@pytest.mark.parametrize("rule", load_rules(), ids=lambda r: r.id)
def test_rule_matches_its_own_cases_and_renders_its_reasons(rule: ThreatRule) -> None:
    cases = rule.cases
    rows = [{"scale": rule.scale} | dict(c.row) | {"user": f"case{i}"} for i, c in enumerate(cases)]
    matches = match_rules(load_rules(), window_frame(rows)).filter(pl.col("rule_id") == rule.id)
    severity = dict(zip(matches["user"], matches["severity"], strict=True))
    got = [severity.get(f"case{i}", NO_MATCH) for i in range(len(cases))]
    wrong = [
        f"{rule.source} cases[{i}] ({c.note}): expected {c.expect}, got {g}"
        for i, (c, g) in enumerate(zip(cases, got, strict=True))
        if g != c.expect
    ]
    assert not wrong, "\n".join(wrong)
    assert set(matches["kind"]) == {rule.kind}
    for reasons in matches["reasons"].to_list():
        assert len(reasons) == len(rule.reasons) and all("{" not in r for r in reasons)


def test_a_rule_that_fails_its_own_case_is_refused_on_load() -> None:
    path = next(f for f in BUNDLED.iterdir() if f.name.startswith("EXF-003-"))
    text = path.read_text(encoding="utf-8").replace("value = 20\n", "value = 90\n", 1)
    with pytest.raises(ThreatRuleError, match=r"EXF-003.*cases\[0\].*expected high, got none"):
        loads_rule(text, source=path.name)


def test_rules_apply_only_to_their_scale() -> None:
    hit = _hit("EXF-003") | {"scale": "1d"}
    assert "EXF-003" not in match_rules(load_rules(), window_frame([hit]))["rule_id"].to_list()


def test_escalation_picks_the_highest_severity_that_holds() -> None:
    rows = [
        {"scale": "1h", "subjects": s, "z_subjects": 9.0, "user": str(s)}
        for s in (150.0, 700.0, 2500.0)
    ]
    matches = match_rules(load_rules(), window_frame(rows))
    assert matches.select("user", "severity").rows() == [
        ("150.0", "medium"),
        ("700.0", "high"),
        ("2500.0", "critical"),
    ]


def test_match_output_keeps_window_order_and_columns() -> None:
    rows = [
        _hit("EXF-010") | {"user": "b", "new_ips": 1.0},  # EXF-010 and EXF-011
        _hit("EXF-001") | {"user": "a"},
    ]
    frame = window_frame(rows)
    matches = match_rules(load_rules(), frame)
    assert matches.select("user", "rule_id").rows() == [
        ("b", "EXF-010"),
        ("b", "EXF-011"),
        ("a", "EXF-001"),
    ]
    assert matches.columns == [*frame.columns, "rule_id", "kind", "severity", "reasons"]
    assert matches.schema["reasons"] == pl.List(pl.String)


def test_no_match_and_empty_frames_keep_the_schema() -> None:
    frame = window_frame([{"user": "quiet"}])
    for windows in (frame, frame.clear()):
        out = match_rules(load_rules(), windows)
        assert out.is_empty()
        assert out.columns[-4:] == ["rule_id", "kind", "severity", "reasons"]


def test_missing_window_column_is_named() -> None:
    frame = window_frame([{"user": "u"}]).drop("z_pages")
    with pytest.raises(ThreatRuleError, match="z_pages"):
        match_rules(load_rules(), frame)


def test_reasons_render_nulls_lists_scale_names_and_estimates() -> None:
    row = _hit("EXF-003") | {
        "user": "d07",
        "classes": ["national_id", "phone"],
        "table_names": ["public.citizens"],
        "typical_pages": 2.0,
        "estimated_rows": 3000.0,
    }
    reasons = match_rules(load_rules(), window_frame([row]))["reasons"].item().to_list()
    assert reasons[0] == (
        "ran 60 pagination statements returning 6,000 sensitive rows of national_id, phone "
        "from public.citizens in 5 minutes; d07 typically runs 2 per 5 minutes (peers n/a), "
        "at most n/a"
    )
    assert reasons[-1].startswith("row counts are estimated")


def test_rule_level_estimated_note_is_a_template() -> None:
    row = _hit("EXF-007") | {"estimated_rows": 1234.0}
    reasons = match_rules(load_rules(), window_frame([row]))["reasons"].item().to_list()
    assert "(1,234 rows today)" in reasons[-1]
    no_estimate = match_rules(load_rules(), window_frame([_hit("EXF-007")]))
    assert len(no_estimate["reasons"].item()) == 2


# -- validation ------------------------------------------------------------------------

GOOD_HEAD = """
id = "TST-001"
name = "test"
kind = "enumeration"
scale = "1h"
severity = "medium"
description = "d"
triage = "t"
reasons = ["{subjects:,.0f} vs {typical_subjects:,.0f} per {scale_name}"]

[[attack]]
tactic = "TA0009"
technique = "T1119"
name = "Automated Collection"

[[when]]
column = "subjects"
op = ">="
value = 100
"""


def _cases(hit: str, miss: str) -> str:
    """A rule's [[cases]]: one medium hit and one near miss (TOML inline tables)."""
    return f"""
[[cases]]
expect = "medium"
note = "a hit"
row = {hit}

[[cases]]
expect = "none"
note = "a near miss"
row = {miss}
"""


GOOD = GOOD_HEAD + _cases("{ subjects = 150.0 }", "{ subjects = 50.0 }")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('column = "subjects"', 'column = "subjectz"'), "when[0].column: unknown window"),
        (('op = ">="', 'op = "contains"'), "when[0].op: 'contains' not valid for numeric"),
        (("value = 100", 'value = "100"'), "when[0].value"),
        (("TA0009", "TA009"), "attack[0].tactic"),
        (("T1119", "T1119.1"), "attack[0].technique"),
        (('kind = "enumeration"', 'kind = "dump"'), "kind: 'dump' is not one of"),
        (('scale = "1h"', 'scale = "2h"'), "scale"),
        (('severity = "medium"', 'severity = "urgent"'), "severity"),
        (("{subjects:,.0f}", "{subject:,.0f}"), "reasons[0]: unknown field {subject}"),
        (("{scale_name}", "{scale_name:,.0f}"), "reasons[0]: does not render"),
        (("{scale_name}", "{scale_name!r}"), "conversions"),
        (('triage = "t"', 'triage = "  "'), "triage: must be a non-empty string"),
        (('id = "TST-001"', 'id = "tst1"'), "id: 'tst1'"),
        (('name = "test"', 'name = "test"\ncolour = 1'), "colour: unknown key"),
        (('expect = "none"', 'expect = "medium"'), "cases: needs a near miss"),
        (('expect = "medium"', 'expect = "none"'), "cases: needs a case the rule matches"),
        (('expect = "medium"', 'expect = "urgent"'), "cases[0].expect: 'urgent'"),
        (('note = "a hit"', 'note = " "'), "cases[0].note: must say why"),
        (("{ subjects = 50.0 }", "{ subjectz = 50.0 }"), "cases[1].row.subjectz: unknown"),
        (("{ subjects = 50.0 }", "{ subjects = 500.0 }"), "cases[1] (a near miss): expected none"),
    ],
)
def test_invalid_rules_name_file_and_key(edit: tuple[str, str], message: str) -> None:
    loads_rule(GOOD, source="good.toml")
    with pytest.raises(ThreatRuleError, match=f"^bad\\.toml: .*{re.escape(message)}"):
        loads_rule(GOOD.replace(*edit), source="bad.toml")


def test_escalation_must_raise_the_severity() -> None:
    text = GOOD + '[escalate]\nlow = [{ column = "subjects", op = ">=", value = 1 }]\n'
    with pytest.raises(ThreatRuleError, match=r"escalate\.low: must be more severe"):
        loads_rule(text, source="bad.toml")


def test_list_string_and_group_operators() -> None:
    text = (
        GOOD_HEAD
        + _cases('{ subjects = 150.0, new_classes = ["email"] }', "{ subjects = 150.0 }")
        + """
[[when]]
any = [
    { column = "new_classes", op = "contains_any", value = ["phone", "email"] },
    { all = [
        { column = "table_names", op = "len>=", value = 2 },
        { column = "classes", op = "contains", value = "national_id" },
    ] },
]
[[when]]
column = "role"
op = "not in"
value = ["dba", "etl"]
"""
    )
    rule = loads_rule(text, source="ops.toml")
    base = {"subjects": 500.0, "role": "desk"}
    rows = [
        base | {"user": "email", "new_classes": ["email"]},
        base | {"user": "two_tables", "table_names": ["a", "b"], "classes": ["national_id"]},
        base | {"user": "one_table", "table_names": ["a"], "classes": ["national_id"]},
        base | {"user": "dba", "role": "dba", "new_classes": ["phone"]},
        base | {"user": "nothing"},
    ]
    matched = match_rules([rule], window_frame(rows))["user"].to_list()
    assert matched == ["email", "two_tables"]


def test_null_values_never_satisfy_a_condition() -> None:
    head = GOOD_HEAD.replace('column = "subjects"', 'column = "typical_subjects"')
    text = head.replace('op = ">="', 'op = "!="') + _cases(
        "{ typical_subjects = 3.0 }", "{ subjects = 150.0 }"
    )
    rule = loads_rule(text, source="null.toml")
    frame = window_frame([{"user": "no_history"}, {"user": "history", "typical_subjects": 3.0}])
    assert match_rules([rule], frame)["user"].to_list() == ["history"]


def test_load_rules_from_a_directory_rejects_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD, encoding="utf-8")
    assert [r.id for r in load_rules(tmp_path)] == ["TST-001"]
    (tmp_path / "b.toml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(
        ThreatRuleError, match=re.escape("b.toml: id: 'TST-001' already used by a.toml")
    ):
        load_rules(tmp_path)


def test_load_rules_rejects_an_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ThreatRuleError, match=r"no \*\.toml"):
        load_rules(tmp_path)
    with pytest.raises(ThreatRuleError, match="cannot list"):
        load_rules(tmp_path / "missing")


def test_severities_are_ordered() -> None:
    assert SEVERITIES == ("low", "medium", "high", "critical")


def test_low_and_slow_needs_rows_and_a_sustained_streak() -> None:
    hit = _hit("EXF-007")
    few_rows = hit | {"sensitive_rows": 50.0}
    short = hit | {"excess_days": 2.0}
    ids = match_rules(load_rules(), window_frame([hit, few_rows, short]))
    assert ids.filter(pl.col("rule_id") == "EXF-007")["sensitive_rows"].to_list() == [400.0]
