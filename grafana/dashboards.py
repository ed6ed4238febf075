"""exfil-detector's Grafana dashboards, as code (grafana-foundation-sdk, Grafana 11.6).

    .venv/bin/python grafana/dashboards.py          # writes grafana/dashboards/*.json

The JSON files are committed; ``tests/detector/test_grafana_dashboards.py`` checks that they are
what this script writes, and checks every panel (grid, datasource, metrics that exist,
PromQL that a real Prometheus answers). Every query names the provisioned datasource
(uid :data:`DATASOURCE_UID`, ``provisioning/datasources/exfil-detector.yaml``).

Panels show what operators and SOC leads ask: is it keeping up (lines and statements per
second, consumer lag, event lag, batch time), is it healthy (rejects by reason, dead
letters, late events, checkpoint age and duration, memory), and what it raises (alerts by
severity and kind against the budget, anomaly scores, sensitive rows read).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.heatmap import Panel as Heatmap
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

HERE = Path(__file__).resolve().parent
#: The uid of the Prometheus datasource the provisioning file declares.
DATASOURCE_UID: Final = "exfil-prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"

Query = tuple[str, str]  # (PromQL, legend)


class _Layout:
    """Panel ids in order, so the JSON is stable from one run to the next."""

    def __init__(self) -> None:
        self.next_id = 1

    def take(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(panel: Any, queries: Sequence[Query]) -> Any:
    for k, (expr, legend) in enumerate(queries):
        query = Dataquery().expr(expr).ref_id(chr(ord("A") + k)).datasource(DATASOURCE)
        panel = panel.with_target(query.legend_format(legend) if legend else query)
    return panel


@dataclass(frozen=True)
class Spec:
    """One panel: its kind, what it shows, its queries (PromQL, legend), its unit, width."""

    kind: str  # "timeseries", "stat" or "heatmap"
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    span: int = 12


def _panel(ids: _Layout, spec: Spec) -> Any:
    builder: Any = {"timeseries": Timeseries, "stat": Stat, "heatmap": Heatmap}[spec.kind]()
    panel = (
        builder.id(ids.take())
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .span(spec.span)
        .height(4 if spec.kind == "stat" else 8)
    )
    if spec.kind != "heatmap":
        panel = panel.unit(spec.unit)
    if spec.kind == "timeseries":
        panel = panel.min(0)
    return _targets(panel, spec.queries)


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE}]))"


def _quantiles(metric: str, by: str = "") -> tuple[Query, ...]:
    group = f"le, {by}" if by else "le"
    legend = f"{{{{{by}}}}} " if by else ""
    return tuple(
        (f"histogram_quantile({q}, {_rate(metric + '_bucket', group)})", f"{legend}p{p}")
        for q, p in (("0.5", "50"), ("0.99", "99"))
    )


def _dashboard(
    title: str, uid: str, tags: list[str], window: str, rows: Sequence[tuple[str, list[Spec]]]
) -> Dashboard:
    ids = _Layout()
    board = Dashboard(title).uid(uid).tags(tags).refresh("30s").time(window, "now")
    for row, specs in rows:
        board = board.with_row(Row(row).id(ids.take()))
        for spec in specs:
            board = board.with_panel(_panel(ids, spec))
    return board


OPERATIONS: Final = [
    (
        "Throughput",
        [
            Spec(
                "timeseries",
                "Lines read",
                "Audit log lines (Kafka: records) read per second, by source format.",
                ((_rate("exfil_lines_total", "format"), "{{format}}"),),
                "ops",
            ),
            Spec(
                "timeseries",
                "Statements judged",
                "Statements (pgaudit lines merged per statement) judged per second, by format.",
                ((_rate("exfil_statements_total", "format"), "{{format}}"),),
                "ops",
            ),
            Spec(
                "timeseries",
                "Rejected lines",
                "Lines that are not usable audit records, by reason. A jump in one reason "
                "after a change of log_line_prefix or format: the parser no longer matches.",
                ((_rate("exfil_rejected_lines_total", "reason"), "{{reason}}"),),
                "ops",
            ),
            Spec(
                "timeseries",
                "Dead letters",
                "Rejected records written to the dead-letter file or topic, by reason.",
                ((_rate("exfil_dead_letters_total", "reason"), "{{reason}}"),),
                "ops",
            ),
        ],
    ),
    (
        "Lag and latency",
        [
            Spec(
                "timeseries",
                "Consumer lag",
                "Records of the audit topic not read yet, by partition (run on Kafka).",
                (("sum by (partition) (exfil_consumer_lag_records)", "partition {{partition}}"),),
            ),
            Spec(
                "timeseries",
                "Event lag",
                "From an event's time to the end of the batch that judged it: how far "
                "behind the audit log the detector is.",
                _quantiles("exfil_event_lag_seconds", "format"),
                "s",
            ),
            Spec(
                "timeseries",
                "Batch time",
                "Time to judge one micro-batch.",
                _quantiles("exfil_batch_seconds"),
                "s",
            ),
            Spec(
                "timeseries",
                "Late events",
                "Events that arrived after their window had closed (counted in the next "
                "open window, never dropped).",
                ((f"sum(rate(exfil_late_events_total[{RATE}]))", "late"),),
                "ops",
            ),
        ],
    ),
    (
        "Health",
        [
            Spec(
                "stat",
                "Checkpoint age",
                "Since the last checkpoint completed (state, alerts and offsets committed); "
                "the oldest of all processes.",
                (("max(time() - exfil_checkpoint_last_success_timestamp_seconds)", ""),),
                "s",
                6,
            ),
            Spec(
                "stat",
                "Checkpoint duration p99",
                "Time to save every owned partition's checkpoint and commit their offsets.",
                _quantiles("exfil_checkpoint_duration_seconds")[1:],
                "s",
                6,
            ),
            Spec(
                "stat",
                "Users tracked",
                "Users with a baseline, all processes.",
                (("sum(exfil_users_tracked)", ""),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "Processes",
                "Detector processes reporting, by version.",
                (("count by (version) (exfil_build_info)", "{{version}}"),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "Out of their group",
                "run processes that are not members of their consumer group now (evicted, "
                "rebalancing, heartbeats unanswered). The watchdog rejoins after the "
                "session timeout and exits (status 3) if that does not help.",
                (("count(exfil_group_member == 0) or vector(0)", ""),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "Since the last batch",
                "Since a batch was last judged, the longest of all processes. High while "
                "consumer lag is not zero: the detector is stalled.",
                (("max(time() - exfil_last_batch_timestamp_seconds)", ""),),
                "s",
                6,
            ),
            Spec(
                "stat",
                "Since the loop turned",
                "Since each run loop last turned, the longest: past five minutes /healthz fails.",
                (("max(time() - exfil_loop_turn_timestamp_seconds)", ""),),
                "s",
                6,
            ),
            Spec(
                "stat",
                "Watchdog actions, 24 h",
                "Rejoins (out of the group too long), fetcher reconnects (records waiting, "
                "none read) and exits to be restarted, last 24 hours.",
                (
                    (
                        "sum by (action) (increase(exfil_watchdog_actions_total[24h]))",
                        "{{action}}",
                    ),
                ),
                "short",
                6,
            ),
            Spec(
                "timeseries",
                "Memory",
                "Resident memory of each detector process.",
                (
                    (
                        "process_resident_memory_bytes and on (instance, job) exfil_build_info",
                        "{{instance}}",
                    ),
                ),
                "bytes",
                24,
            ),
        ],
    ),
]

SOC: Final = [
    (
        "Alerts",
        [
            Spec(
                "stat",
                "Alerts, last 24 h",
                "New alerts in the last 24 hours, all severities (the budget, "
                "alerts_per_day, is per window scale).",
                (("sum(increase(exfil_alerts_total[24h]))", ""),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "High and critical, last 24 h",
                "New high and critical alerts in the last 24 hours.",
                (('sum(increase(exfil_alerts_total{severity=~"high|critical"}[24h]))', ""),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "Alert updates, last 24 h",
                "More activity joining alerts already raised (their revisions).",
                (("sum(increase(exfil_alert_updates_total[24h]))", ""),),
                "short",
                6,
            ),
            Spec(
                "stat",
                "Sensitive rows, last hour",
                "Rows read that hold a sensitive column, all users.",
                (("sum(increase(exfil_sensitive_rows_total[1h]))", ""),),
                "short",
                6,
            ),
            Spec(
                "timeseries",
                "Alerts by severity",
                "New alerts per hour, by severity.",
                (("sum by (severity) (increase(exfil_alerts_total[1h]))", "{{severity}}"),),
            ),
            Spec(
                "timeseries",
                "Alerts by kind",
                "New alerts per hour, by threat kind (detector/rules/).",
                (("sum by (kind) (increase(exfil_alerts_total[1h]))", "{{kind}}"),),
            ),
        ],
    ),
    (
        "What is read",
        [
            Spec(
                "timeseries",
                "Sensitive rows read",
                "Rows holding a sensitive column read per minute, all users.",
                ((f"sum(rate(exfil_sensitive_rows_total[{RATE}])) * 60", "rows/min"),),
            ),
            Spec(
                "heatmap",
                "Anomaly scores",
                "Scores of every judged window and big statement (higher: more anomalous); "
                "an alert needs its scale's budget threshold, never below 3.",
                ((f"sum by (le) (increase(exfil_anomaly_score_bucket[{RATE}]))", "{{le}}"),),
            ),
            Spec(
                "timeseries",
                "Score p99 by scale",
                "The 99th percentile score per window scale: a rise across the board is a "
                "change of behaviour (or of logging), not one user.",
                (
                    (
                        "histogram_quantile(0.99, "
                        + _rate("exfil_anomaly_score_bucket", "le, scale")
                        + ")",
                        "{{scale}}",
                    ),
                ),
                "short",
                24,
            ),
        ],
    ),
]


def operations() -> Dashboard:
    """Is it keeping up, is it healthy."""
    return _dashboard(
        "exfil-detector / operations",
        "exfil-operations",
        ["exfil-detector", "operations"],
        "now-6h",
        OPERATIONS,
    )


def soc() -> Dashboard:
    """What it raises."""
    return _dashboard("exfil-detector / SOC", "exfil-soc", ["exfil-detector", "soc"], "now-7d", SOC)


DASHBOARDS: Final = {"operations": operations, "soc": soc}


def render(name: str) -> str:
    """Dashboard ``name`` as the JSON committed in ``dashboards/``."""
    text = JSONEncoder(sort_keys=True, indent=2).encode(DASHBOARDS[name]().build())
    data = json.loads(text)
    for panel in data["panels"]:  # heatmap queries are histograms: say so to Grafana
        if panel["type"] == "heatmap":
            for target in panel["targets"]:
                target["format"] = "heatmap"
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main() -> int:
    out = HERE / "dashboards"
    out.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        (out / f"{name}.json").write_text(render(name), encoding="utf-8")
        print(f"wrote {out / name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
