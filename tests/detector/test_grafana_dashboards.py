"""The Grafana dashboards: what the generator writes, laid out on the grid, on the
provisioned datasource, using only metrics the detector declares, and every panel's
PromQL answered with data by a real Prometheus scraping real detectors (a ``run`` on
Kafka and a ``replay``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detector.metrics import Metrics
from detector.sample import bundled_sample, bundled_sample_config
from kafka_io import produce, sample_records, topic
from paths import ROOT
from realdb.kafka import KafkaBroker
from realdb.ports import free_port
from realdb.prometheus import Prometheus, binary

GRAFANA = ROOT / "grafana"
sys.path.insert(0, str(GRAFANA))

import dashboards  # noqa: E402  (grafana/ is not a package: its generator script)

#: Grafana's interval variables, as a test's short Prometheus history needs them.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def _boards() -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in _boards().items():
        for panel in board["panels"]:
            if panel["type"] != "row":
                yield f"{name}: {panel['title']}", panel


def _exprs() -> Iterator[tuple[str, str]]:
    for where, panel in _panels():
        for target in panel["targets"]:
            yield where, target["expr"]


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    assert sorted(_boards()) == sorted(dashboards.DASHBOARDS)
    stale = [n for n in dashboards.DASHBOARDS if (GRAFANA / "dashboards" / f"{n}.json").read_text()
             != dashboards.render(n)]  # fmt: skip
    assert not stale, f"run grafana/dashboards.py: {stale} differ from their generator"


def test_uids_are_unique_and_panels_sit_on_the_grid_without_overlapping() -> None:
    boards = _boards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    offenders = []
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        if len(set(ids)) != len(ids):
            offenders.append(f"{name}: panel ids repeat")
        cells: dict[tuple[int, int], str] = {}
        for panel in board["panels"]:
            g = panel["gridPos"]
            if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24 or g["h"] < 1:
                offenders.append(f"{name}: {panel['title']} outside the 24-column grid: {g}")
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    if other != panel["title"]:
                        offenders.append(f"{name}: {panel['title']} overlaps {other}")
    assert not offenders, sorted(set(offenders))


def test_every_panel_and_query_names_the_provisioned_datasource() -> None:
    provisioned = set()
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yaml"):
        provisioned |= set(re.findall(r"^\s*uid:\s*(\S+)", path.read_text(), re.M))
    assert dashboards.DATASOURCE_UID in provisioned
    offenders = []
    for where, panel in _panels():
        refs = [panel.get("datasource")] + [t.get("datasource") for t in panel["targets"]]
        for ref in refs:
            if not ref or ref.get("uid") not in provisioned or ref.get("type") != "prometheus":
                offenders.append(f"{where}: {ref}")
        if not panel["targets"]:
            offenders.append(f"{where}: no query")
    assert not offenders, offenders


def test_every_metric_a_panel_uses_is_declared_by_the_detector() -> None:
    declared = Metrics().names()
    offenders = [
        f"{where}: {name}"
        for where, expr in _exprs()
        for name in re.findall(r"\b((?:exfil|process)_[a-z_]+)\b", expr)
        if name not in declared
    ]
    assert not offenders, offenders


def test_the_example_scrape_config_passes_promtool() -> None:
    result = subprocess.run(
        [binary("promtool"), "check", "config", str(GRAFANA / "prometheus.example.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_alert_rules_fire_when_the_detector_stops_and_only_then() -> None:
    """promtool's unit tests of the alerting rules (out of the group, stalled)."""
    result = subprocess.run(
        [binary("promtool"), "test", "rules", "prometheus-alerts.test.yml"],
        capture_output=True,
        text=True,
        cwd=GRAFANA,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (GRAFANA / "prometheus-alerts.example.yml").read_text()
    declared = Metrics().names()
    used = set(re.findall(r"\b(exfil_[a-z_]+)\b", rules))
    assert used and used <= declared, used - declared


def _detector(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "detector", *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_every_panel_query_returns_data_from_real_detectors(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """A ``run`` consuming the shipped sample (and one garbage record) and a ``replay`` of
    the sample (and one garbage line), both serving /metrics, scraped every second."""
    name = topic(kafka_broker, partitions=2)
    records = [(k, r.encode()) for k, r in sample_records(bundled_sample())]
    produce(kafka_broker, name, [*records, ("nobody", b"\xff\xfe not an audit record")])
    log = tmp_path / "audit.csv"
    log.write_text(bundled_sample().read_text() + "not an audit record\n")
    run_port, replay_port = free_port(), free_port()
    config = str(bundled_sample_config())
    run = _detector(
        "run", "--bootstrap", kafka_broker.bootstrap, "--topic", name, "--group", f"g-{name}",
        "--alerts-topic", f"{name}-alerts", "--dlq-topic", f"{name}-dlq",
        "--state-dir", str(tmp_path / "state"), "--checkpoint-seconds", "1",
        "--config", config, "--metrics-port", str(run_port), "--metrics-addr", "127.0.0.1",
        log=tmp_path / "run.log",
    )  # fmt: skip
    replay = _detector(
        "replay", str(log), "--config", config, "--alerts-out", str(tmp_path / "alerts.jsonl"),
        "--quiet", "--metrics-port", str(replay_port), "--metrics-addr", "127.0.0.1",
        "--metrics-linger", "600",
        log=tmp_path / "replay.log",
    )  # fmt: skip
    targets = [f"127.0.0.1:{run_port}", f"127.0.0.1:{replay_port}"]
    try:
        with Prometheus(tmp_path / "prometheus", targets) as prometheus:
            missing: list[str] = []
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                missing = []
                for where, expr in _exprs():
                    for variable, value in VARIABLES.items():
                        expr = expr.replace(variable, value)
                    # a query Prometheus cannot parse raises here, naming the panel
                    series = prometheus.query(expr)
                    if not series:
                        missing.append(f"{where}: {expr}")
                health = prometheus.scraped()
                # both detectors alerting, not only the first done (a loaded machine: the
                # panels had their series from the replay while run was still judging)
                alerts = prometheus.query("sum by (instance) (exfil_alerts_total)")
                alerting = {s["metric"]["instance"] for s in alerts}
                if (
                    not missing
                    and all(health.get(t) == "up" for t in targets)
                    and alerting == set(targets)
                ):
                    break
                time.sleep(2)
            assert not missing, (missing, prometheus.scraped())
            for instance in targets:  # both detectors, not only one of them
                up = prometheus.query(f'exfil_build_info{{instance="{instance}"}}')
                assert up, instance
            assert alerting == set(targets), (alerting, prometheus.scraped())
            rejected = prometheus.query("sum(exfil_rejected_lines_total)")
            assert float(rejected[0]["value"][1]) >= 2  # the garbage of each
    finally:
        for process in (run, replay):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
