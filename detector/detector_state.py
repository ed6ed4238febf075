"""What the detector has learned and holds open: the state ``replay --state`` saves and a
``run`` process checkpoints per partition (:mod:`detector.streaming.partition_state`).

:class:`DetectorState` is the process's (models, budgets, alerts, windows in step);
:class:`PartState` is one input partition's open part of it (first-seen sets, queued
big statements, its users). :mod:`detector.pipeline` changes them batch by batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from detector.alert_book import AlertBook
from detector.scoring import Scorer
from features.novelty import SeenSets
from features.windows import WindowAggregator
from models.calibration import AlertBudget


@dataclass
class PartState:
    """What one input partition's users hold open: first-seen sets, windows, big
    statements waiting for the watermark. Users are keyed to one partition (``ship`` and
    production shippers key records by user), so a partition's part moves to the process
    that owns the partition next (:mod:`detector.streaming.partition_state`): whole, except its
    windows, which are its users' share of the aggregator it uses."""

    seen: SeenSets
    #: the partition's windows: the process's (``DetectorState.windows``, shared by every
    #: partition in step, so a batch is windowed once) or, out of step, its own
    windows: WindowAggregator
    pending: pl.DataFrame | None = None
    users: set[str] = field(default_factory=set)


@dataclass
class DetectorState:
    """Everything the detector has learned and holds open; saved with ``--state``.

    ``parts`` holds each input partition's open state (replay has one, ``0``); the models,
    budgets and alerts are the process's. A partition taken over from another process
    whose clock differs from this one's is *out of step* (``True``: behind): its windows
    close by its own clock until the clocks meet, so its users' events are not late here
    because the partition came late, and this process's are not late because it came
    early.
    """

    id_key: bytes
    parts: dict[int, PartState] = field(default_factory=dict)
    windows: WindowAggregator | None = None
    out_of_step: dict[int, bool] = field(default_factory=dict)
    scorer: Scorer = field(default_factory=Scorer)
    budgets: dict[str, AlertBudget] = field(default_factory=dict)
    book: AlertBook = field(default_factory=AlertBook)
    to_learn: list[pl.DataFrame] = field(default_factory=list)
    learn_epoch: dt.datetime | None = None
    started: dt.datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def aggregators(self) -> list[WindowAggregator]:
        """The window aggregators in use: the process's, and those of partitions out of
        step."""
        found = {} if self.windows is None else {id(self.windows): self.windows}
        for part in self.parts.values():
            found.setdefault(id(part.windows), part.windows)
        return list(found.values())

    def lead(self, windows: WindowAggregator) -> None:
        """Make ``windows`` the process's (no partition in step is left on the old one);
        the partitions out of step are then behind or ahead of its clock."""
        self.windows = windows
        now = window_clock(windows)
        for key in self.out_of_step:
            clock = window_clock(self.parts[key].windows)
            self.out_of_step[key] = now is not None and clock is not None and clock < now

    @property
    def late_events(self) -> int:
        """Events that arrived after their window had closed (counted, never dropped)."""
        return sum(getattr(w, "late_events_", 0) for w in self.aggregators())

    @property
    def max_time(self) -> dt.datetime | None:
        """The latest event time seen in any partition."""
        times = [c for w in self.aggregators() if (c := window_clock(w)) is not None]
        return max(times) if times else None


def window_clock(windows: WindowAggregator) -> dt.datetime | None:
    """The latest event time ``windows`` has seen (``None``: none yet)."""
    windows._state()
    return windows.max_time_
