"""The replay engine: audit log files through the detection pipeline, alerts out.

The files are cut into the same micro-batches the parser produces for any source and fed
to :class:`detector.pipeline.Pipeline`, the code path Kafka uses. The ``replay`` and
``demo`` commands (:mod:`detector.commands.replay`) and the evaluation run it.

With ``--state FILE`` the run continues from the state saved there (if the file exists)
and saves its state at the end *without* closing the windows still open: the next run
on the following log continues exactly where this one stopped. Without it, every window
is closed at the end of the input and decided.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from detector.alerts import Alert
from detector.config import Config
from detector.detector_state import DetectorState
from detector.metrics import Metrics
from detector.moved import MOVED
from detector.pipeline import Pipeline
from detector.rules.schema import load_rules
from models.state import load_state, save_state
from streams.deadletter import DeadLetterWriter
from streams.file_source import iter_file_batches

#: ``quiet_until`` while history is replayed: it teaches, it never alerts.
_NEVER: Final = dt.datetime.max.replace(tzinfo=dt.UTC)

#: Kind and version of the state file this code reads and writes (2: sweep and unsized-read
#: features, open windows in features.window_parts, hour/day-so-far windows).
STATE_KIND = "exfil-detector/pipeline"
STATE_VERSION = 3


@dataclass
class ReplaySummary:
    """What a replay read and raised."""

    lines: int = 0
    events: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    alerts: list[Alert] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    users: int = 0

    def render(self) -> str:
        rate = self.counts.get("statements", 0) / self.seconds if self.seconds > 0 else 0.0
        by_severity: dict[str, int] = {}
        for alert in self.alerts:
            by_severity[alert.severity] = by_severity.get(alert.severity, 0) + 1
        severities = ", ".join(
            f"{s} {by_severity[s]}"
            for s in ("critical", "high", "medium", "low")
            if s in by_severity
        )
        lines = [
            f"lines read        {self.lines:>12,}",
            f"statements        {self.counts.get('statements', 0):>12,}",
            f"rejected          {sum(self.rejects.values()):>12,}",
            *(f"  {r:<16}{n:>12,}" for r, n in sorted(self.rejects.items())),
            f"users tracked     {self.users:>12,}",
            f"windows decided   {self.counts.get('windows', 0):>12,}",
            f"alerts            {len(self.alerts):>12,}"
            + (f"  ({severities})" if severities else ""),
            f"wall time         {self.seconds:>12.2f} s",
            f"throughput        {rate:>12,.0f} statements/s",
        ]
        return "\n".join(lines)


def load_pipeline(config: Config, state_path: Path | None) -> Pipeline:
    """A pipeline from the config, continuing from ``state_path`` when it exists."""
    state = None
    if state_path is not None and state_path.exists():
        state = load_state(state_path, kind=STATE_KIND, version=STATE_VERSION, moved=MOVED)
        if not isinstance(state, DetectorState):
            from detector.exceptions import ConfigError

            raise ConfigError(f"{state_path} does not hold detector state")
    return Pipeline(config, config.load_catalog(), load_rules(), state)


def replay_files(
    paths: Sequence[Path],
    config: Config,
    *,
    state_path: Path | None = None,
    dead_letter: Path | None = None,
    progress: TextIO | None = sys.stderr,
    history: Sequence[Path] = (),
    metrics: Metrics | None = None,
) -> ReplaySummary:
    """Replay ``paths`` through the pipeline; return the summary with the final alerts.

    ``history`` files are replayed first with alerting off: the models learn from them
    (a warm start from past logs) and the alerts begin with ``paths``. ``metrics``: where
    lines, rejects, batches and alerts are counted as they go.
    """
    started = time.perf_counter()
    summary = ReplaySummary()
    pipeline = load_pipeline(config, state_path)
    pipeline.metrics = metrics
    writer = DeadLetterWriter(dead_letter)
    try:
        for files in (history, paths):
            if history:
                # no alert from the history itself; then none for windows it already ended
                pipeline.quiet_until = pipeline.state.max_time if files is paths else _NEVER
            for batch in iter_file_batches(files, config.source_options()):
                result = batch.result
                summary.lines += result.lines
                summary.events += result.events.height
                writer.write(result.rejects)
                if metrics is not None:
                    reasons = result.rejects["reason"].to_list() if result.rejects.height else []
                    rejects = Counter(reasons)
                    metrics.parsed(batch.format, result.lines, rejects)
                    if dead_letter is not None:
                        metrics.dead_lettered(rejects)
                pipeline.process(result.events)
                if progress is not None:
                    elapsed = time.perf_counter() - started
                    print(
                        f"\r{summary.lines:,} lines, {len(pipeline.alerts())} alerts, "
                        f"{elapsed:.1f} s",
                        end="",
                        file=progress,
                        flush=True,
                    )
        if state_path is None:
            pipeline.finish()
        else:
            saving = time.perf_counter()
            save_state(state_path, pipeline.state, kind=STATE_KIND, version=STATE_VERSION)
            if metrics is not None:
                metrics.checkpointed(time.perf_counter() - saving)
    finally:
        writer.close()
    if progress is not None:
        print(file=progress)
    summary.seconds = time.perf_counter() - started
    summary.rejects = dict(writer.counts)
    summary.alerts = pipeline.alerts()
    summary.counts = dict(pipeline.state.counts)
    summary.users = pipeline.state.scorer.users()
    return summary
