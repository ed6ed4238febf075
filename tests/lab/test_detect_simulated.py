"""Detection on a fresh simulation, not the bundled sample the thresholds were tuned on.

The records-office simulator drives a real PostgreSQL 15 + pgaudit (another seed, more
users and days than the sample: seed 7, 30 users, 10 days); its log is replayed with the
users' roles. Every injected threat must raise a medium-or-higher alert of its kind for
its user near its time, and no alert may point elsewhere. About 40 s.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from detector.alerts import Alert
from detector.config import load_config
from detector.replay import replay_files
from paths import ROOT

pytestmark = pytest.mark.postgres

CATALOG = ROOT / "detector" / "data" / "sample" / "catalog.toml"
SEVERE = {"medium", "high", "critical"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Alert], list[dict]]:
    from detector.lab.simulation.org import build_org
    from detector.lab.simulation.pg_server import PgNotInstalledError, find_bindir
    from detector.lab.simulation.plan import build_plan
    from detector.lab.simulation.scenarios import default_scenarios
    from detector.lab.simulation.simulate import simulate

    try:
        find_bindir()
    except PgNotInstalledError as e:
        pytest.fail(str(e), pytrace=False)
    out = tmp_path_factory.mktemp("sim-detect")
    org = build_org(users=30, days=10, seed=7)
    result = simulate(build_plan(org, default_scenarios(org)), out)
    users = json.loads((out / "users.json").read_text(encoding="utf-8"))["users"]
    config = out / "config.toml"
    config.write_text(
        f'[catalog]\npath = "{CATALOG}"\n[peers]\nservice_roles = ["etl", "backup"]\n'
        "[peers.users]\n" + "".join(f'"{u["user"]}" = "{u["role"]}"\n' for u in users),
        encoding="utf-8",
    )
    summary = replay_files([result.csv], load_config(config), progress=None)
    assert not summary.rejects
    return summary.alerts, result.labels


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _overlaps(a: Alert, start: dt.datetime, end: dt.datetime) -> bool:
    return a.start <= end and a.end >= start


def test_every_injected_threat_is_caught(simulated: tuple[list[Alert], list[dict]]) -> None:
    alerts, labels = simulated
    missed = []
    for label in (x for x in labels if not x["negative"]):
        start, end = _t(label["start"]), _t(label["end"])
        latency = dt.timedelta(days=1 if label["kind"] == "low_and_slow" else 0, hours=1)
        if not any(
            a.user == label["user"]
            and label["kind"] in a.kinds
            and a.severity in SEVERE
            and _overlaps(a, start, end)
            and start <= a.detected_at <= end + latency
            for a in alerts
        ):
            missed.append(label["scenario"])
    assert not missed
    kinds = {x["kind"] for x in labels if not x["negative"]}
    assert len(kinds) == 7


def test_no_alert_points_elsewhere(simulated: tuple[list[Alert], list[dict]]) -> None:
    alerts, labels = simulated
    positives = [x for x in labels if not x["negative"]]
    stray = [
        (a.user, a.kind, a.start.isoformat())
        for a in alerts
        if not any(
            p["user"] == a.user
            and _overlaps(
                a, _t(p["start"]) - dt.timedelta(minutes=5), _t(p["end"]) + dt.timedelta(days=1)
            )
            for p in positives
        )
    ]
    assert not stray
