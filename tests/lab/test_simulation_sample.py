"""The bundled sample (detector/data/sample) matches the simulator that produced it.

No server needed: the plan is rebuilt from the configuration in ``users.json`` and every
labelled statement is looked up in the bundled csvlog.  Regenerate the sample with
``.venv/bin/python scripts/make_sample.py`` when the simulator changes.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from detector.commands.parse import parse_files
from detector.config import Config
from detector.lab.simulation.org import build_org
from detector.lab.simulation.plan import build_plan
from detector.lab.simulation.scenarios import default_scenarios
from detector.lab.simulation.sessions import NEGATIVE_KINDS, THREAT_KINDS
from detector.lab.simulation.verify import label_coverage, mismatches
from paths import ROOT

SAMPLE = ROOT / "detector" / "data" / "sample"


@pytest.fixture(scope="module")
def sample():
    users = json.loads((SAMPLE / "users.json").read_text())
    labels = json.loads((SAMPLE / "labels.json").read_text())
    period = users["period"]
    org = build_org(
        len(users["users"]),
        period["days"],
        users["seed"],
        dt.date.fromisoformat(period["start"]),
        users["citizens"],
    )
    plan = build_plan(org, default_scenarios(org))
    events, summary = parse_files([SAMPLE / "postgresql.csv"], Config(), out=None, dead_letter=None)
    return plan, labels, events, summary


def test_sample_is_small_and_parses_cleanly(sample) -> None:
    plan, _, events, summary = sample
    assert (SAMPLE / "postgresql.csv").stat().st_size <= 4 * 1024 * 1024
    assert summary.rejects == {}
    assert events.filter(pl.col("event_kind") == "statement").height == plan.statements


def test_sample_labels_are_the_plan_and_match_the_log(sample) -> None:
    plan, labels, events, _ = sample
    planned = plan.labels()
    assert [(lab["scenario"], lab["user"]) for lab in labels] == [
        (lab["scenario"], lab["user"]) for lab in planned
    ]
    assert mismatches(label_coverage(plan.sessions, events, labels)) == []
    kinds = {lab["kind"] for lab in labels}
    assert kinds == set(THREAT_KINDS) | set(NEGATIVE_KINDS)


def test_sample_users_connect_from_their_addresses(sample) -> None:
    plan, _, events, _ = sample
    connects = events.filter(pl.col("event_kind") == "connect")
    got = set(connects.select("user", "client_ip").iter_rows())
    assert got == {(s.user, s.client_ip) for s in plan.sessions}
