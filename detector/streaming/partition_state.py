"""One input partition's share of a detector's state, out of one process and into another.

Audit records are keyed by database user, so every user belongs to one partition of the
audit topic. When a Kafka rebalance moves a partition to another ``run`` process, the new
owner must judge its users as the old one would have: their open windows and first-seen
sets (:class:`~detector.pipeline.PartState`, moved whole), their own models
(:mod:`detector.streaming.handover`), their alerts (a match joins the user's newest alert:
the same id, not a new one), and their windows judged but not learned yet. What the
process learned from all its users stays, except that a process that has learned
nothing yet starts from a copy of the sender's (peer groups, forests, alert budgets).

A :class:`PartShard` is also what a checkpoint saves per partition: a process killed
with SIGKILL hands over its partitions through their last checkpoint.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass

import polars as pl

from detector.alerts import Alert
from detector.detector_state import DetectorState, PartState
from detector.exceptions import DetectorError
from detector.streaming.handover import (
    SharedModels,
    UserRows,
    adopt_shared,
    put_users,
    shared_models,
    take_users,
)
from models.calibration import AlertBudget


@dataclass
class ProcessModels:
    """A copy of what a process learned from all its users (the same for every shard a
    checkpoint round writes: made once per round)."""

    shared: SharedModels
    budgets: dict[str, AlertBudget]


def process_models(state: DetectorState) -> ProcessModels:
    """A copy of ``state``'s process-wide models and budgets."""
    return ProcessModels(shared_models(state.scorer), copy.deepcopy(state.budgets))


@dataclass
class PartShard:
    """What a partition's users hold in a detector (picklable)."""

    key: int
    part: PartState
    users: UserRows
    alerts: list[Alert]
    to_learn: list[pl.DataFrame]
    started: dt.datetime | None
    learn_epoch: dt.datetime | None
    models: ProcessModels


def export_part(
    state: DetectorState, key: int, *, drop: bool, models: ProcessModels | None = None
) -> PartShard:
    """Partition ``key``'s share of ``state``: a copy (a checkpoint), or taken out
    (``drop``: the partition is leaving this process); ``models``: the process-wide
    models' copy, when the caller made it already."""
    part = state.parts.get(key)
    if part is None:
        raise DetectorError(f"partition {key} has no state here")
    users = sorted(part.users)
    wanted = pl.Series(users, dtype=pl.String).implode()
    mine = [f.filter(pl.col("user").is_in(wanted)) for f in state.to_learn]
    if part.windows is state.windows:  # in step: the partition's users' share of them
        windows = part.windows.take_users(part.users, drop=drop)
    else:
        windows = part.windows if drop else copy.deepcopy(part.windows)
    seen = part.seen if drop else copy.deepcopy(part.seen)
    shard = PartShard(
        key=key,
        part=PartState(seen, windows, part.pending, set(part.users)),
        users=take_users(state.scorer, users),
        alerts=state.book.take_users(users, drop=drop),
        to_learn=[f for f in mine if f.height],
        started=state.started,
        learn_epoch=state.learn_epoch,
        models=process_models(state) if models is None else models,
    )
    if drop:
        del state.parts[key]
        state.out_of_step.pop(key, None)
        state.to_learn = [f.filter(~pl.col("user").is_in(wanted)) for f in state.to_learn]
    return shard


def import_part(state: DetectorState, shard: PartShard) -> None:
    """Take over a partition's users from ``shard``; its clock is the partition's own
    until it meets this process's (see :class:`~detector.pipeline.DetectorState`)."""
    if shard.key in state.parts:
        raise DetectorError(f"partition {shard.key} already has state here")
    if adopt_shared(state.scorer, shard.models.shared):
        # nothing learned here yet: the sender's budgets and epoch clock too
        state.budgets = copy.deepcopy(shard.models.budgets)
        state.learn_epoch = shard.learn_epoch
    if shard.started is not None:
        state.started = (
            shard.started if state.started is None else min(state.started, shard.started)
        )
    part = shard.part
    in_step = [k for k in state.parts if k not in state.out_of_step]
    now = None if state.windows is None or not in_step else state.windows.max_time_
    clock = part.windows.max_time_
    if not in_step:  # the first partition here (or all others are out of step): it leads
        state.lead(part.windows)  # the old one holds no partition's windows
    elif now is None or clock is None or clock == now:
        state.windows.put(part.windows)  # type: ignore[union-attr]
        part.windows = state.windows  # type: ignore[assignment]
    else:
        state.out_of_step[shard.key] = clock < now
    state.parts[shard.key] = part
    put_users(state.scorer, shard.users)
    state.book.put(shard.alerts)
    state.to_learn += shard.to_learn
