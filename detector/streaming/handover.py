"""Some users' model state out of one :class:`~detector.scoring.Scorer` and into another.

On a Kafka rebalance a partition, and with it every user keyed to it, moves to another
detector process. The users' own models go with them: each baseline's rows, their hours of
the day, their multi-day excess, when an alert last covered them, the days held back from
their baselines, their peer group (by name: group indices differ between processes).
What the process learned from all its users (the peer groups' models, the multivariate
forests, the learned clusters) stays: those are the receiver's own, except in a process
that has learned nothing yet, which starts from a copy of the sender's
(:class:`SharedModels`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from detector.scoring import Scorer
from models.entity_index import EntityRows

#: Per-user arrays of the Scorer and its parts, with the value of a user it never saw.
#: The names are those checkpoints carry (from when all were the Scorer's own).
_OWN: dict[str, float] = {
    "alerted_until_": -np.inf,
    "excess_since_": np.nan,
    "excess_days_": 0,
    "unroled_": False,
}


def _own(scorer: Scorer, name: str) -> np.ndarray:
    """The per-user array ``name`` of :data:`_OWN`."""
    holder, attr = {
        "unroled_": (scorer.peer_groups_, "unroled_"),
        "excess_since_": (scorer.streaks_, "since_"),
        "excess_days_": (scorer.streaks_, "days_"),
    }.get(name, (scorer, name))
    return getattr(holder, attr)  # type: ignore[no-any-return]


@dataclass
class UserRows:
    """The model state of some users (picklable), in the order of ``users``."""

    users: list[str]
    groups: list[str]
    own: dict[str, np.ndarray]
    baselines: dict[str, EntityRows]
    hours: EntityRows
    cusum: EntityRows
    deferred: pl.DataFrame | None


@dataclass
class SharedModels:
    """What a process learned from all its users: a fresh process starts from a copy."""

    groups: dict[str, int]
    peers: dict[str, object]
    peer_hours: object
    hst: dict[str, object]
    clusters: object


def take_users(scorer: Scorer, users: Iterable[str]) -> UserRows:
    """Copies of the model state of ``users`` (those the scorer knows)."""
    scorer._init()
    wanted = pl.DataFrame({"user": list(dict.fromkeys(users))}, schema={"user": pl.String})
    known = wanted.join(scorer.user_table_, on="user", how="inner", maintain_order="left")
    idx = known["idx"].to_numpy()
    peers = scorer.peer_groups_
    names = {v: k for k, v in peers.names_.items()}
    deferred = scorer.held_.of(known["user"])
    return UserRows(
        users=known["user"].to_list(),
        groups=[names[int(g)] for g in peers.of_[idx]],
        own={name: _own(scorer, name)[idx].copy() for name in _OWN},
        baselines={s: b.take_rows(idx) for s, b in scorer.baselines_.items()},
        hours=scorer.hours_.take_rows(idx),
        cusum=scorer.streaks_.cusum_.take_rows(idx),
        deferred=deferred,
    )


def put_users(scorer: Scorer, rows: UserRows) -> None:
    """Take over the users of ``rows``: a stale copy of one of them (it was judged here
    before) is replaced."""
    scorer._init()
    if not rows.users:
        return
    users = pl.Series("user", rows.users, dtype=pl.String)
    # registered under their group's name; unroled_ and the group index are set below
    idx, _ = scorer.index(users, pl.Series("role", rows.groups, dtype=pl.String))
    for name, values in rows.own.items():
        _own(scorer, name)[idx] = values
    peers = scorer.peer_groups_
    peers.of_[idx] = [peers.index(g) for g in rows.groups]
    for s, baseline in scorer.baselines_.items():
        baseline.put_rows(idx, rows.baselines[s])
    scorer.hours_.put_rows(idx, rows.hours)
    scorer.streaks_.cusum_.put_rows(idx, rows.cusum)
    scorer.held_.replace(users, rows.deferred)


def shared_models(scorer: Scorer) -> SharedModels:
    """A copy of what ``scorer`` learned from all its users."""
    scorer._init()
    peers = scorer.peer_groups_
    return copy.deepcopy(
        SharedModels(
            groups=peers.names_,
            peers=peers.baselines_,  # type: ignore[arg-type]
            peer_hours=peers.hours_,
            hst=scorer.hst_,  # type: ignore[arg-type]
            clusters=peers.kmeans_,
        )
    )


def adopt_shared(scorer: Scorer, shared: SharedModels) -> bool:
    """Start from another process's shared models if ``scorer`` has no users yet; whether
    it did."""
    scorer._init()
    if scorer.users():
        return False
    shared = copy.deepcopy(shared)  # shards of one checkpoint round share one copy
    peers = scorer.peer_groups_
    peers.names_ = dict(shared.groups)
    peers.baselines_ = shared.peers  # type: ignore[assignment]
    peers.hours_ = shared.peer_hours  # type: ignore[assignment]
    peers.kmeans_ = shared.clusters  # type: ignore[assignment]
    scorer.hst_ = shared.hst  # type: ignore[assignment]
    return True
