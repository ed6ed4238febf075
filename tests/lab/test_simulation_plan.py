"""The simulator's organisation, scenarios and plan (no server needed)."""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys

import pytest

from detector.lab.simulation.org import build_org
from detector.lab.simulation.plan import build_plan
from detector.lab.simulation.routine import day_start_ms
from detector.lab.simulation.scenarios import ATTACKER_IPS, default_scenarios
from detector.lab.simulation.sessions import NEGATIVE_KINDS, THREAT_KINDS, from_ms
from paths import ROOT


@pytest.fixture(scope="module")
def sample_plan():
    """The bundled sample's configuration (planning only: about half a second)."""
    org = build_org(users=20, days=7, seed=1)
    return build_plan(org, default_scenarios(org))


def small(seed: int):
    org = build_org(users=6, days=2, seed=seed, citizens=2000)
    return build_plan(org, default_scenarios(org, scale=0.05))


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    assert small(5) == small(5)
    assert small(5).sessions != small(6).sessions


def test_every_kind_is_labelled(sample_plan) -> None:
    labels = sample_plan.labels()
    threats = {lab["kind"] for lab in labels if not lab["negative"]}
    negatives = {lab["kind"] for lab in labels if lab["negative"]}
    assert threats == set(THREAT_KINDS)
    assert negatives == set(NEGATIVE_KINDS)
    for lab in labels:
        assert lab["start"] <= lab["end"]
        assert lab["start"].endswith("+00:00")


def test_users_have_their_own_client_addresses(sample_plan) -> None:
    org = sample_plan.org
    ips = [u.client_ip for u in org.users]
    assert len(set(ips)) == len(ips) == 20
    assert all(ip.startswith("127.") for ip in ips)
    unusual = {
        (s.user, s.client_ip)
        for s in sample_plan.sessions
        if s.client_ip != org.user(s.user).client_ip
    }
    assert {ip for _, ip in unusual} <= set(ATTACKER_IPS)
    assert all(set(s.labels) & {sc.name for sc in sample_plan.scenarios}
               for s in sample_plan.sessions if (s.user, s.client_ip) in unusual)  # fmt: skip


def test_working_hours_weekends_and_joining(sample_plan) -> None:
    org = sample_plan.org
    per_day: dict[int, int] = collections.Counter()
    for s in sample_plan.sessions:
        user = org.user(s.user)
        day = (s.connect_ms - day_start_ms(org, 0)) // 86_400_000
        assert day >= user.joins_day
        if s.labels or user.role in ("etl", "backup"):
            continue
        hour = from_ms(s.connect_ms).hour
        assert 8 <= hour < 19, (s.user, from_ms(s.connect_ms))
        if user.role == "desk_officer":
            per_day[day] += len(s.statements)
    workdays = [per_day[d] for d in range(7) if org.is_workday(d) and d != org.busy_day]
    weekend = [per_day[d] for d in range(7) if not org.is_workday(d)]
    assert max(weekend) < min(workdays) / 3
    assert org.busy_day is not None


def test_busy_day_has_about_twice_the_volume(sample_plan) -> None:
    org = sample_plan.org
    volume: dict[int, int] = collections.Counter()
    for s in sample_plan.sessions:
        if org.user(s.user).role == "desk_officer" and all(
            not lab.startswith(("enumeration", "paginated", "smash", "compromised"))
            for lab in s.labels
        ):
            volume[(s.connect_ms - day_start_ms(org, 0)) // 86_400_000] += len(s.statements)
    normal = [volume[d] for d in range(7) if org.is_workday(d) and d != org.busy_day]
    ratio = volume[org.busy_day] / (sum(normal) / len(normal))
    assert 1.6 < ratio < 2.6


def test_scheduled_jobs_run_at_their_hour_from_their_host(sample_plan) -> None:
    org = sample_plan.org
    etl = org.by_role("etl")[0]
    runs = [s for s in sample_plan.sessions if s.user == etl.name and not s.labels[0].startswith(
        "service_account_misuse")]  # fmt: skip
    assert len(runs) == org.days
    assert {s.client_ip for s in runs} == {etl.client_ip}
    assert {from_ms(s.connect_ms).hour for s in runs} == {2}
    assert all(any(st.copy == "in" for st in s.statements) for s in runs)


def test_enumeration_variants_literal_and_bound(sample_plan) -> None:
    by_name = collections.defaultdict(list)
    for s in sample_plan.sessions:
        for lab in s.labels:
            by_name[lab].extend(s.statements)
    literal, param = by_name["enumeration-literal"], by_name["enumeration-param"]
    assert len(literal) >= 1000 and len(param) >= 1000
    assert all(st.params is None and "national_id = '" in st.sql for st in literal)
    assert all(st.params is not None and st.logged_sql.endswith("= $1") for st in param)
    ids = [st.params[0] for st in param if st.params]
    assert len(set(ids)) > 0.95 * len(ids)


def test_compromised_account_at_night_from_a_new_address(sample_plan) -> None:
    (s,) = [s for s in sample_plan.sessions if "compromised_account-night" in s.labels]
    assert from_ms(s.connect_ms).time() < dt.time(5)
    assert s.client_ip not in {u.client_ip for u in sample_plan.org.users}


def test_plan_does_not_depend_on_the_hash_seed() -> None:
    """Same seed -> same plan in another process, whatever PYTHONHASHSEED is."""
    code = (
        "import hashlib\n"
        "from detector.lab.simulation.org import build_org\n"
        "from detector.lab.simulation.plan import build_plan\n"
        "from detector.lab.simulation.scenarios import default_scenarios\n"
        "org = build_org(users=8, days=3, seed=2, citizens=1000)\n"
        "p = build_plan(org, default_scenarios(org, 0.05))\n"
        "print(hashlib.sha256(repr((p.sessions, p.labels())).encode()).hexdigest())\n"
    )
    root = ROOT
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(h)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for h in (1, 2)
    }
    assert len(digests) == 1
