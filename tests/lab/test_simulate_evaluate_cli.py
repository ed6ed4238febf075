"""CI's small end-to-end run: ``exfil-detector simulate`` on a real server, then ``evaluate``.

A few simulated days of a small office with the evaluation campaign (every threat kind
after the 3-day warm-up, sizes scaled down), on PostgreSQL 15 + pgaudit and on MariaDB +
server_audit; the evaluation replays the server's logs through the detector and scores it
and the five baselines on the same logs. The large runs are bench/detection_quality.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.commands.cli import main
from detector.lab.evaluation.report import read_json
from detector.lab.simulation.scenario_builders import VARIANTS

BASELINES = ("dam_statement", "dam_hourly", "daily_sigma", "isolation_forest", "sentinel")


def _simulate_and_evaluate(db: str, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    sim = ["simulate", "--db", db, "--users", "10", "--days", "6", "--seed", "3"]
    assert main([*sim, "--scale", "0.05", "--citizens", "3000", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--logs", str(out), "--json", str(out / "eval.json"), "--quiet"]) == 0
    return capsys.readouterr().out


def _check(out: Path, table: str, db: str) -> None:
    labels = json.loads((out / "labels.json").read_text(encoding="utf-8"))
    threats = [x for x in labels if not x["negative"]]
    assert {x["kind"] for x in threats} == set(VARIANTS)
    result = read_json(out / "eval.json")
    assert result.db == db and result.statements > 1000
    names = [d.name for d in result.detectors]
    assert names == ["ours", *BASELINES]
    for d in result.detectors:
        assert d.overall.total == len(threats), d.name
        assert 0 <= d.overall.caught <= d.overall.total
        assert d.active_user_days > 0
        assert sum(k.total for k in d.kinds) == len(threats)
        assert d.name in table
    ours = result.detectors[0]
    # the bulk reads of a whole table are caught at any size, on any server
    assert ours.kind("smash_and_grab").caught == ours.kind("smash_and_grab").total  # type: ignore[union-attr]
    assert "targets (ours)" in table


@pytest.mark.postgres
def test_simulate_and_evaluate_on_postgres(tmp_path: Path, capsys) -> None:
    out = tmp_path / "pg"
    table = _simulate_and_evaluate("postgres", out, capsys)
    _check(out, table, "postgres")


@pytest.mark.mariadb
def test_simulate_and_evaluate_on_mariadb(tmp_path: Path, capsys) -> None:
    out = tmp_path / "maria"
    table = _simulate_and_evaluate("mariadb", out, capsys)
    _check(out, table, "mariadb")
