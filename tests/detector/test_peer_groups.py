"""Learned peer groups of users without a role (detector/peer_groups.py): clusters of
users who read alike become groups; a cluster too small to stand for peers does not."""

from __future__ import annotations

import numpy as np
import polars as pl

from detector.peer_groups import DEFAULT_GROUP, MIN_CLUSTER_MEMBERS, PeerGroups
from features.windows import WINDOW_FEATURES
from models.baseline import RobustBaseline

F = len(WINDOW_FEATURES)


def _days(levels: list[float], days: int = 5) -> RobustBaseline:
    """Day baselines of users reading ``levels`` (one per user) every day, with noise."""
    rng = np.random.default_rng(7)
    baseline = RobustBaseline(F)
    idx = np.arange(len(levels))
    for _ in range(days):
        X = np.outer(levels, np.ones(F)) * rng.uniform(0.9, 1.1, (len(levels), F))
        baseline.learn_many(idx, X)
    return baseline


def test_users_who_read_alike_share_a_group_and_a_lone_user_stays_with_everyone() -> None:
    clerks, analysts = [10.0] * 8, [5000.0] * 8
    loner = [1e7]  # reads like no one else: a cluster of one is no peer group
    levels = clerks + analysts + loner
    groups = PeerGroups(clusters=3, seed=1)
    groups.register(0, pl.Series([""] * len(levels)))
    groups.regroup(_days(levels), len(levels))
    names = [groups.name(u) for u in range(len(levels))]
    assert len(set(names[:8])) == 1 and names[0].startswith("~cluster-")
    assert len(set(names[8:16])) == 1 and names[8].startswith("~cluster-")
    assert names[0] != names[8]
    assert names[16] == DEFAULT_GROUP


def test_a_cluster_needs_enough_members() -> None:
    levels = [10.0] * (MIN_CLUSTER_MEMBERS - 1) + [5000.0] * MIN_CLUSTER_MEMBERS
    groups = PeerGroups(clusters=2, seed=1)
    groups.register(0, pl.Series([""] * len(levels)))
    groups.regroup(_days(levels), len(levels))
    names = [groups.name(u) for u in range(len(levels))]
    assert set(names[: MIN_CLUSTER_MEMBERS - 1]) == {DEFAULT_GROUP}
    assert names[-1].startswith("~cluster-")


def test_users_with_a_role_and_users_without_history_are_not_clustered() -> None:
    levels = [10.0] * 6 + [5000.0] * 6
    roles = ["desk"] * 6 + [""] * 6
    groups = PeerGroups(clusters=2, seed=1)
    groups.register(0, pl.Series(roles))
    groups.regroup(_days(levels), len(levels))
    assert {groups.name(u) for u in range(6)} == {"desk"}
    assert "desk" not in {groups.name(u) for u in range(6, 12)}
    young = PeerGroups(clusters=2, seed=1)
    young.register(0, pl.Series([""] * len(levels)))
    young.regroup(_days(levels, days=2), len(levels))  # fewer days than CLUSTER_AFTER_DAYS
    assert {young.name(u) for u in range(len(levels))} == {DEFAULT_GROUP}
