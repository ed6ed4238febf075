"""``exfil-detector parse``: audit logs to the canonical event table (Parquet)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import polars as pl

from detector.config import Config
from streams.deadletter import DeadLetterWriter
from streams.file_source import iter_file_batches
from streams.schema import empty_events


@dataclass
class ParseSummary:
    """What a parse run read, produced and rejected."""

    lines: int = 0
    statements: int = 0
    session_events: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    first_event: object = None
    last_event: object = None
    seconds: float = 0.0
    formats: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        rate = self.lines / self.seconds if self.seconds > 0 else 0.0
        span = (
            f"{self.first_event:%Y-%m-%d %H:%M:%S%z} .. {self.last_event:%Y-%m-%d %H:%M:%S%z}"
            if self.first_event is not None
            else "no events"
        )
        out = [
            f"lines read        {self.lines:>12,}",
            f"statements        {self.statements:>12,}",
            f"session events    {self.session_events:>12,}",
            f"rejected          {sum(self.rejects.values()):>12,}",
        ]
        out += [f"  {reason:<16}{n:>12,}" for reason, n in sorted(self.rejects.items())]
        out += [
            f"formats           {', '.join(f'{k} ({v:,} lines)' for k, v in self.formats.items())}",
            f"time span         {span}",
            f"wall time         {self.seconds:>12.2f} s",
            f"throughput        {rate:>12,.0f} lines/s",
        ]
        return "\n".join(out)


def parse_files(
    paths: Sequence[Path],
    config: Config,
    *,
    out: Path | None,
    dead_letter: Path | None,
) -> tuple[pl.DataFrame, ParseSummary]:
    """Parse ``paths`` into one canonical frame, writing rejects to ``dead_letter``."""
    started = time.perf_counter()
    summary = ParseSummary()
    writer = DeadLetterWriter(dead_letter)
    frames: list[pl.DataFrame] = []
    try:
        for batch in iter_file_batches(paths, config.source_options()):
            result = batch.result
            summary.lines += result.lines
            summary.formats[batch.format] = summary.formats.get(batch.format, 0) + result.lines
            writer.write(result.rejects)
            if not result.events.is_empty():
                frames.append(result.events)
    finally:
        writer.close()
    events = pl.concat(frames) if frames else empty_events()
    # Parsers emit in time order per batch; held-back statements come one batch later.
    events = events.sort("event_time", "raw_ref", maintain_order=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        events.write_parquet(out)
    summary.seconds = time.perf_counter() - started
    kinds = events["event_kind"]
    summary.statements = int((kinds == "statement").sum())
    summary.session_events = events.height - summary.statements
    summary.rejects = dict(writer.counts)
    if events.height:
        summary.first_event = events["event_time"].min()
        summary.last_event = events["event_time"].max()
    return events, summary


def run_parse(
    paths: Sequence[Path],
    config: Config,
    *,
    out: Path,
    dead_letter: Path | None,
    stream: TextIO = sys.stdout,
) -> int:
    dlq = dead_letter if dead_letter is not None else out.with_suffix(".deadletter.jsonl")
    if dlq.exists():
        dlq.unlink()
    _, summary = parse_files(paths, config, out=out, dead_letter=dlq)
    print(summary.render(), file=stream)
    print(f"wrote             {out}", file=stream)
    if summary.rejects:
        print(f"dead letters      {dlq}", file=stream)
    return 0
