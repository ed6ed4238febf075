"""What ``run`` is asked to do (:class:`StreamOptions`), how it is stopped
(:class:`StopSignal`) and what it reports (:class:`RunSummary`); light to import."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from detector.alerts import Alert
from detector.streaming.health import READY_LAG, HealthBounds
from streams.kafka.records import MAX_RECORD_BYTES


@dataclass
class RunSummary:
    """What a run consumed and raised."""

    records: int = 0
    events: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    alerts_sent: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    alerts: list[Alert] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: with ``StreamOptions.measure``: per record, ms from its Kafka timestamp to the end
    #: of the loop turn that judged what it made judgeable; (s since start, records behind)
    latency_ms: list[float] = field(default_factory=list)
    lag: list[tuple[float, int]] = field(default_factory=list)
    #: with ``measure``: seconds from the start to the start of the first turn that read
    #: and to the end of the last
    busy: tuple[float, float] | None = None

    def render(self) -> str:
        rate = self.records / self.seconds if self.seconds > 0 else 0.0
        rejected = sum(self.dead_letters.values())
        return "\n".join(
            [
                f"records consumed  {self.records:>12,}",
                f"statements        {self.counts.get('statements', 0):>12,}",
                f"dead letters      {rejected:>12,}",
                *(f"  {r:<16}{n:>12,}" for r, n in sorted(self.dead_letters.items())),
                f"late events       {self.counts.get('late_events', 0):>12,}",
                f"alerts            {len(self.alerts):>12,}",
                f"alert messages    {self.alerts_sent:>12,}",
                f"checkpoints       {self.checkpoints:>12,}",
                f"wall time         {self.seconds:>12.2f} s",
                f"throughput        {rate:>12,.0f} records/s",
            ]
        )


class StopSignal:
    """SIGTERM/SIGINT ask the loop to stop after the batch in hand."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.event.set())


@dataclass
class StreamOptions:
    """The ``run`` flags."""

    topic: str
    group: str = "exfil-detector"
    alerts_topic: str | None = "exfil-alerts"
    dlq_topic: str | None = "db-audit-dlq"
    state_dir: Path | None = None
    alerts_out: Path | None = None
    until_idle: float | None = None
    checkpoint_seconds: float = 30.0
    idle_flush_seconds: float = 5.0
    #: most records one loop turn reads: behind, the turns grow to this and the pipeline's
    #: per-batch cost is shared by more records (a backlog drains at ~2x the rate of
    #: 20,000-record turns); caught up, a turn takes what has arrived
    poll_records: int = 200_000
    max_record_bytes: int = MAX_RECORD_BYTES
    measure: bool = False
    #: at ``until_idle``, close every window like replay (default: without a state dir)
    close_at_end: bool | None = None
    #: a process silent this long is dead to the group: its partitions go to the others
    session_timeout: float = 45.0
    #: static group membership (Kafka's ``group.instance.id``): a process restarted
    #: under the same id within the session timeout gets its partitions back without
    #: a rebalance of the others
    instance_id: str | None = None
    #: partition checkpoints in this compacted topic (processes without a shared
    #: ``state_dir``; needs the group's ID-hash key file)
    checkpoint_topic: str | None = None
    #: records waiting in an owned partition and none read this long: the fetcher
    #: reconnects, and the process gives up if that does not help (``None``: two
    #: minutes, or two session timeouts if longer)
    stall_seconds: float | None = None
    #: ``/readyz`` fails beyond this many records behind
    ready_lag: int = READY_LAG

    def health_bounds(self) -> HealthBounds:
        """The watchdog's bounds (:mod:`detector.streaming.health`)."""
        return HealthBounds.for_session(
            self.session_timeout, stall_after=self.stall_seconds, ready_lag=self.ready_lag
        )
