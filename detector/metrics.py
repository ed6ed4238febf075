"""Every Prometheus metric exfil-detector exports, declared here and nowhere else.

``replay`` and ``run`` serve them on ``/metrics`` (``--metrics-port``; see
:func:`serve_metrics`). Names follow Prometheus conventions: the ``exfil_`` prefix, ``_total``
counters, base units (seconds, records). Labels are bounded, closed sets: source formats,
reject reasons, severities, threat kinds, window scales, partition numbers, the ``run``
watchdog's actions. A label never
holds a user name, an address, a table or anything from a statement: those are unbounded
(the time series database's cardinality) and are exactly what the detector protects.

Hot-path discipline (see ``DESIGN-NOTES.md``): counters are incremented once per batch
with the batch's total, labelled children are kept, and distributions of whole batches
(anomaly scores, event lag) are binned with numpy in one call
(:class:`BatchHistogram`), not observed value by value.

>>> m = Metrics()
>>> m.parsed("pgaudit-csv", 120, {"bad_csv": 2})
>>> m.sample("exfil_lines_total", {"format": "pgaudit-csv"})
120.0
>>> m.sample("exfil_rejected_lines_total", {"reason": "bad_csv"})
2.0
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import HistogramMetricFamily, Metric

if TYPE_CHECKING:
    from detector.alerts import Alert

#: Anomaly score buckets: the budget's floor is 3, alerts mostly score 4-20.
SCORE_BUCKETS: Final = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0)
#: Event time to processing, seconds: live streams (seconds to minutes) up to replays of
#: last week's logs.
LAG_BUCKETS: Final = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0)
#: One micro-batch through the pipeline, seconds.
BATCH_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: One checkpoint (every partition saved, offsets committed), seconds.
CHECKPOINT_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BatchHistogram:
    """A histogram fed whole arrays at once, one series per value of one label.

    prometheus-client's ``Histogram.observe`` takes one value per call; a batch's
    thousands of scores are binned here with numpy instead, and exported as the same
    ``_bucket``/``_sum``/``_count`` series.

    >>> h = BatchHistogram("demo_seconds", "Demo.", "scale", (1.0, 5.0))
    >>> h.observe("5m", np.array([0.5, 1.0, 3.0, 9.0, np.nan]))
    >>> [(s.name, s.labels.get("le"), s.value) for s in next(h.collect()).samples][:4]
    [('demo_seconds_bucket', '1.0', 2.0), ('demo_seconds_bucket', '5.0', 3.0), \
('demo_seconds_bucket', '+Inf', 4.0), ('demo_seconds_count', None, 4.0)]
    """

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]):
        self.name = name
        self.documentation = documentation
        self.label = label
        self.buckets = tuple(float(b) for b in buckets)
        self._bounds = np.array(self.buckets)
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}

    def observe(self, value: str, values: np.ndarray) -> None:
        """Count ``values`` (NaN ignored) in the series of label value ``value``."""
        values = values[~np.isnan(values)]
        if not values.size:
            return
        # le buckets: a value on a bound counts in that bound's bucket
        index = np.searchsorted(self._bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self.buckets) + 1)
        with self._lock:
            if value in self._counts:
                self._counts[value] += counts
            else:
                self._counts[value] = counts
            self._sums[value] = self._sums.get(value, 0.0) + float(values.sum())

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=[self.label])

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            series = [(v, c.cumsum(), self._sums[v]) for v, c in sorted(self._counts.items())]
        for value, cumulative, total in series:
            bounds = [str(b) for b in self.buckets] + ["+Inf"]
            buckets = [(b, float(c)) for b, c in zip(bounds, cumulative, strict=True)]
            family.add_metric([value], buckets, total)
        yield family


def _version() -> str:
    try:
        return metadata.version("exfil-detector")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The detector's metrics, in their own registry (tests make as many as they like).

    Parameters
    ----------
    registry
        Where they are registered (a new one by default, with the process and platform
        collectors).
    """

    def __init__(self, registry: CollectorRegistry | None = None, run: bool = True) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self.registry = registry
        r = registry
        Info("exfil_build", "exfil-detector's version.", registry=r).info(
            {"version": _version(), "python": platform.python_version()}
        )
        self._declare_input(r)
        self._declare_judging(r)
        # run's alone: a replay is in no group and has no loop (``run=False``: declared,
        # not exported)
        self._declare_run(r, r if run else None)
        self._late_seen = 0
        self._lag_partitions: set[str] = set()

    def _declare_input(self, r: CollectorRegistry) -> None:
        """What was read: lines, rejects, dead letters, statements, sensitive rows, alerts."""
        self.lines = Counter(
            "exfil_lines_total",
            "Audit log lines read (a Kafka message is one record), by source format.",
            ["format"],
            registry=r,
        )
        self.rejected = Counter(
            "exfil_rejected_lines_total",
            "Lines or records that are not usable audit records, by reason.",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "exfil_dead_letters_total",
            "Rejected records written to the dead-letter file or topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.statements = Counter(
            "exfil_statements_total",
            "Statements judged (pgaudit lines merged per statement), by source format.",
            ["format"],
            registry=r,
        )
        self.sensitive_rows = Counter(
            "exfil_sensitive_rows_total",
            "Rows read that hold a sensitive column (catalog or column-name classes).",
            registry=r,
        )
        self.alerts = Counter(
            "exfil_alerts_total",
            "Alerts raised (new alerts, not their updates), by severity and threat kind.",
            ["severity", "kind"],
            registry=r,
        )
        self.alert_updates = Counter(
            "exfil_alert_updates_total",
            "Revisions of raised alerts (more activity joined them), by severity and kind.",
            ["severity", "kind"],
            registry=r,
        )

    def _declare_judging(self, r: CollectorRegistry) -> None:
        """How judging goes: scores, event lag, batch time, late events, users."""
        self.scores = BatchHistogram(
            "exfil_anomaly_score",
            "Anomaly scores of judged windows and statements, by window scale.",
            "scale",
            SCORE_BUCKETS,
        )
        r.register(self.scores)  # type: ignore[arg-type]
        self.event_lag = BatchHistogram(
            "exfil_event_lag_seconds",
            "From an event's time to the end of the batch that judged it, by source format.",
            "format",
            LAG_BUCKETS,
        )
        r.register(self.event_lag)  # type: ignore[arg-type]
        self.batch_seconds = Histogram(
            "exfil_batch_seconds",
            "Time to judge one micro-batch of events.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.late_events = Counter(
            "exfil_late_events_total",
            "Events that arrived after their window closed (counted in the next one).",
            registry=r,
        )
        self.users = Gauge("exfil_users_tracked", "Users with a baseline.", registry=r)

    def _declare_run(self, r: CollectorRegistry, rr: CollectorRegistry | None) -> None:
        """The Kafka job's: lag, checkpoints, membership, the loop, the watchdog (``rr``:
        the registry of those only ``run`` exports, ``None`` for a replay)."""
        self.consumer_lag = Gauge(
            "exfil_consumer_lag_records",
            "Records of the audit topic not read yet, by partition this process owns.",
            ["partition"],
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "exfil_checkpoint_duration_seconds",
            "Time to save every owned partition's checkpoint and commit their offsets.",
            buckets=CHECKPOINT_BUCKETS,
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "exfil_checkpoint_last_success_timestamp_seconds",
            "When the last checkpoint (or replay --state save) completed, Unix time.",
            registry=r,
        )
        self.group_member = Gauge(
            "exfil_group_member",
            "1 while this run process is a member of its consumer group (heartbeats "
            "answered), else 0.",
            registry=rr,
        )
        self.last_batch = Gauge(
            "exfil_last_batch_timestamp_seconds",
            "When the pipeline last finished judging a batch, Unix time.",
            registry=r,
        )
        self.loop_turn = Gauge(
            "exfil_loop_turn_timestamp_seconds",
            "When the run loop last turned (polled its group, read, judged), Unix time.",
            registry=rr,
        )
        self.watchdog = Counter(
            "exfil_watchdog_actions_total",
            "What the run watchdog did: rejoin (out of the group too long), reconnect "
            "(records waiting, none read), give_up (exited non-zero to be restarted).",
            ["action"],
            registry=rr,
        )
        for action in ("rejoin", "reconnect", "give_up"):  # zeros, before anything happened
            self.watchdog.labels(action)

    # -- what the pipeline and the jobs report ---------------------------------------------

    def parsed(self, format_: str, lines: int, rejects: Mapping[str, int]) -> None:
        """A batch of lines (or records) read, and those rejected, by reason."""
        if lines:
            self.lines.labels(format_).inc(lines)
        for reason, n in rejects.items():
            self.rejected.labels(reason).inc(n)

    def dead_lettered(self, rejects: Mapping[str, int]) -> None:
        """Rejected records written to the dead letters, by reason."""
        for reason, n in rejects.items():
            self.dead_letters.labels(reason).inc(n)

    def judged(
        self,
        events: pl.DataFrame,
        signals: pl.DataFrame,
        seconds: float,
        users: int,
        late_events: int,
    ) -> None:
        """One batch judged: its canonical events, their statements' signals
        (``event_features`` rows), how long it took, and the detector's totals after it."""
        self.batch_seconds.observe(seconds)
        self.last_batch.set(time.time())
        statements = (
            events.filter((pl.col("event_kind") == "statement") & pl.col("user").is_not_null())
            if events.height
            else events
        )
        if statements.height:
            formats = statements["source_format"]
            stamps = statements["event_time"].dt.epoch("ms").to_numpy()
            lag = time.time() - stamps.astype(np.float64) / 1000.0
            for fmt, n in formats.value_counts().iter_rows():
                self.statements.labels(fmt).inc(n)
                self.event_lag.observe(fmt, lag if n == len(lag) else lag[formats == fmt])
        if signals.height:
            self.sensitive_rows.inc(float(signals["sensitive_rows"].sum() or 0.0))
        self.users.set(users)
        if late_events > self._late_seen:
            self.late_events.inc(late_events - self._late_seen)
        self._late_seen = late_events

    def alerted(self, alerts: Sequence[Alert], before: Mapping[str, int]) -> None:
        """Alerts created or updated (at their latest revision), given each known alert's
        revision before: an alert not known before was raised, the others updated."""
        for alert in alerts:
            old = before.get(alert.id)
            if old is None:
                self.alerts.labels(alert.severity, alert.kind).inc()
                old = 1
            if alert.revision > old:
                self.alert_updates.labels(alert.severity, alert.kind).inc(alert.revision - old)

    def scored(self, scales: pl.Series, scores: pl.Series) -> None:
        """Anomaly scores of judged items, with their window scales."""
        frame = pl.DataFrame({"scale": scales, "score": scores.cast(pl.Float64)})
        for (scale,), part in frame.group_by("scale"):
            self.scores.observe(str(scale), part["score"].to_numpy())

    def checkpointed(self, seconds: float) -> None:
        self.checkpoint_seconds.observe(seconds)
        self.checkpoint_time.set(time.time())

    def checkpoint_current(self) -> None:
        """A checkpoint was due and nothing had changed since the last: the saved state
        is current as of now (its age stays low), no checkpoint was written."""
        self.checkpoint_time.set(time.time())

    def turned(self, member: bool) -> None:
        """The run loop turned; whether the process is in its group."""
        self.loop_turn.set(time.time())
        self.group_member.set(1 if member else 0)

    def partition_lag(self, behind: Mapping[int, int]) -> None:
        """Records behind per partition owned (the series of partitions no longer owned
        are removed: a stale lag would page someone)."""
        now = {str(p) for p in behind}
        for gone in self._lag_partitions - now:
            self.consumer_lag.remove(gone)
        for partition, n in behind.items():
            self.consumer_lag.labels(str(partition)).set(n)
        self._lag_partitions = now

    # -- reading back (tests, benchmarks) ---------------------------------------------------

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of sample ``name`` with ``labels`` in the registry, if present."""
        return self.registry.get_sample_value(name, dict(labels or {}))

    def names(self) -> set[str]:
        """Every sample name the registry declares (``_total``, ``_bucket`` ... included),
        whether or not a labelled series has a value yet."""
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "info": ("_info",),
        }
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        return names
