"""The detector's Prometheus metrics: they count what the run did, exactly; they never
carry a user name, an address, a table or a literal; the endpoint serves them."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector.config import load_config
from detector.exceptions import ConfigError, MetricsError
from detector.metrics import Metrics
from detector.metrics_server import RUN_PORT, MetricsServer, serve_metrics
from detector.replay import ReplaySummary, replay_files
from detector.rules.schema import load_rules
from detector.sample import bundled_sample, bundled_sample_config

#: Every label name a metric of ours may carry (the process/platform collectors' too).
ALLOWED_LABELS = {"format", "reason", "severity", "kind", "scale", "partition", "action", "le"}
ALLOWED_LABELS |= {"version", "python", "implementation", "major", "minor", "patchlevel"}


@pytest.fixture(scope="module")
def replayed() -> tuple[Metrics, ReplaySummary]:
    metrics = Metrics()
    config = load_config(bundled_sample_config())
    summary = replay_files([bundled_sample()], config, progress=None, metrics=metrics)
    return metrics, summary


def _total(metrics: Metrics, name: str) -> float:
    """The sum of every series of sample ``name``."""
    return sum(s.value for f in metrics.registry.collect() for s in f.samples if s.name == name)


def test_the_counters_say_what_the_replay_did(replayed: tuple[Metrics, ReplaySummary]) -> None:
    metrics, summary = replayed
    assert metrics.sample("exfil_lines_total", {"format": "pgaudit-csv"}) == summary.lines
    assert _total(metrics, "exfil_lines_total") == summary.lines
    assert _total(metrics, "exfil_statements_total") == summary.counts["statements"]
    assert _total(metrics, "exfil_rejected_lines_total") == sum(summary.rejects.values())
    # every alert raised once (its first revision); the later revisions are updates
    assert _total(metrics, "exfil_alerts_total") == len(summary.alerts)
    revisions = sum(a.revision for a in summary.alerts)
    assert _total(metrics, "exfil_alert_updates_total") == revisions - len(summary.alerts)
    # labelled as raised (an alert may escalate or change kind later)
    kinds = {r.kind for r in load_rules()}
    for family in metrics.registry.collect():
        if family.name in ("exfil_alerts", "exfil_alert_updates"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    assert sample.labels["kind"] in kinds
                    assert sample.labels["severity"] in {"low", "medium", "high", "critical"}
    assert metrics.sample("exfil_users_tracked") == summary.users
    assert _total(metrics, "exfil_sensitive_rows_total") > 0
    judged = summary.counts["windows"] + summary.counts["so_far"]
    statements_judged = _total(metrics, "exfil_anomaly_score_count") - judged
    assert statements_judged >= 0  # big statements are judged on their own too
    for scale in ("5m", "1h", "1d"):
        assert metrics.sample("exfil_anomaly_score_count", {"scale": scale}), scale
    assert metrics.sample("exfil_batch_seconds_count")
    # the sample is from 2024: its events are judged long after they happened
    lag = metrics.sample("exfil_event_lag_seconds_count", {"format": "pgaudit-csv"})
    assert lag == summary.counts["statements"]
    assert (
        metrics.sample(
            "exfil_event_lag_seconds_bucket", {"format": "pgaudit-csv", "le": "604800.0"}
        )
        == 0
    )


def test_no_label_carries_a_user_an_address_a_table_or_a_literal(
    replayed: tuple[Metrics, ReplaySummary],
) -> None:
    metrics, _ = replayed
    users = json.loads((bundled_sample().parent / "users.json").read_text())
    names = {u["name"] if isinstance(u, dict) else u for u in users}
    server = MetricsServer(metrics, 0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as response:
            text = response.read().decode()
    finally:
        server.close()
    families = list(text_string_to_metric_families(text))
    ours = [f for f in families if f.name.startswith("exfil_")]
    assert {f.name for f in ours} >= {"exfil_lines", "exfil_alerts", "exfil_anomaly_score"}
    values = set()
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
            values.update(sample.labels.values())
    assert not values & names
    assert not [v for v in values if re.search(r"\d{1,3}(\.\d{1,3}){3}|\d{7,}", v)]
    assert not [v for v in values if "." in v and not re.fullmatch(r"[\d.+Inf]+|\d+\.\d+\.\d+", v)]


def test_the_metrics_settings_come_from_file_env_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[metrics]\nport = 9108\naddr = "127.0.0.1"\nlinger_seconds = 5\n')
    config = load_config(path, env={})
    assert (config.metrics_port, config.metrics_addr, config.metrics_linger_seconds) == (
        9108,
        "127.0.0.1",
        5.0,
    )
    assert load_config(path, env={"EXFIL_METRICS_PORT": "9200"}).metrics_port == 9200
    assert load_config(path, {"metrics_port": 0}, env={}).metrics_port == 0
    assert load_config(env={}).metrics_port is None  # off by default
    with pytest.raises(ConfigError, match="0-65535"):
        load_config(env={"EXFIL_METRICS_PORT": "70000"})
    # run serves them unless told not to; replay only when told to
    assert load_config(env={}).metrics_port_for(RUN_PORT) == RUN_PORT
    assert load_config(env={"EXFIL_METRICS_PORT": "off"}).metrics_port_for(RUN_PORT) is None
    assert load_config(path, {"metrics_port": "off"}, env={}).metrics_port_for(None) is None
    path.write_text("[metrics]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) in \[metrics\]"):
        load_config(path, env={})


def test_a_port_in_use_is_a_clear_error() -> None:
    first = MetricsServer(Metrics(), 0, "127.0.0.1")
    try:
        with pytest.raises(MetricsError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            MetricsServer(Metrics(), first.port, "127.0.0.1")
    finally:
        first.close()


def test_the_default_port_taken_is_a_warning_a_chosen_one_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    taken = MetricsServer(Metrics(), 0, "127.0.0.1")
    try:
        config = load_config(env={"EXFIL_METRICS_ADDR": "127.0.0.1"})
        assert serve_metrics(config, taken.port) == (None, None)
        assert "metrics not served" in capsys.readouterr().err
        chosen = load_config(
            env={"EXFIL_METRICS_ADDR": "127.0.0.1"}, flags={"metrics_port": taken.port}
        )
        with pytest.raises(MetricsError):
            serve_metrics(chosen, None)
    finally:
        taken.close()


def test_every_declared_metric_is_listed_even_before_it_has_a_value() -> None:
    names = Metrics().names()
    assert {
        "exfil_lines_total",
        "exfil_alerts_total",
        "exfil_anomaly_score_bucket",
        "exfil_consumer_lag_records",
        "exfil_checkpoint_last_success_timestamp_seconds",
        "exfil_build_info",
    } <= names
