"""The evaluation campaign: every threat kind every week, variants rotating, fresh users."""

from __future__ import annotations

import collections

import pytest

from detector.lab.simulation.campaign import WARMUP_DAYS, campaign_scenarios
from detector.lab.simulation.org import build_org
from detector.lab.simulation.plan import build_plan
from detector.lab.simulation.scenario_builders import VARIANTS


@pytest.fixture(scope="module")
def org():
    return build_org(users=50, days=21, seed=11, weekly=True)


def test_every_kind_every_week_after_the_warm_up(org) -> None:
    threats = [s for s in campaign_scenarios(org) if not s.negative]
    weeks = collections.defaultdict(set)
    for s in threats:
        assert s.day >= WARMUP_DAYS, s.name
        weeks[s.day // 7].add(s.kind)
    assert sorted(weeks) == [0, 1, 2]
    assert all(kinds == set(VARIANTS) for kinds in weeks.values())


def test_variants_rotate_and_every_variant_is_built_somewhere() -> None:
    seen = collections.defaultdict(set)
    for seed in range(6):
        org = build_org(users=50, days=21, seed=seed, weekly=True)
        for s in campaign_scenarios(org):
            if not s.negative:
                seen[s.kind].add(s.variant)
    assert {k: set(v) for k, v in VARIANTS.items()} == dict(seen)
    one = [s for s in campaign_scenarios(build_org(50, 21, 3, weekly=True)) if not s.negative]
    for kind in VARIANTS:  # three weeks, three different variants of each kind
        assert len({s.variant for s in one if s.kind == kind}) == 3, kind


def test_people_carry_one_scenario_each_and_have_worked_there_before(org) -> None:
    scenarios = campaign_scenarios(org)
    people = [s.who for s in scenarios if s.who[0] not in ("etl", "backup")]
    assert len(people) == len(set(people))
    for role, index, _ in people:
        assert org.by_role(role)[index].joins_day == 0


def test_weekly_busy_days_and_new_employees(org) -> None:
    assert org.busy_days == (3, 10, 17)  # Thursdays
    joining = sorted(u.joins_day for u in org.users if u.joins_day)
    assert joining == [2, 7, 14]
    assert build_org(users=20, days=7, seed=1) == build_org(users=20, days=7, seed=1, weekly=False)


def test_the_campaign_plan_is_deterministic_and_labels_every_threat(org) -> None:
    scenarios = campaign_scenarios(org)
    plan = build_plan(org, scenarios)
    assert plan == build_plan(org, campaign_scenarios(org))
    labelled = {lab["scenario"] for lab in plan.labels()}
    assert {s.name for s in scenarios} <= labelled


def test_small_offices_reuse_people_rather_than_fail() -> None:
    small = build_org(users=6, days=10, seed=3, weekly=True)
    kinds = {s.kind for s in campaign_scenarios(small) if not s.negative}
    assert kinds == set(VARIANTS)
