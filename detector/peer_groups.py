"""Who each user is compared with: a configured role, a learned cluster, or everyone.

:class:`PeerGroups` keeps, per user index, the peer group the user belongs to and whether
the config gave the user no role; per group, the models the group's members teach (a
robust baseline per window scale and an hour-of-the-week profile), each group learning a
deterministic sample of its members' windows so that a 10,000-member group costs what a
16-member group does. Users without a role join a learned cluster (scikit-learn mini-batch
k-means over users' daily baselines) once they have a few days of history; until then, and
while their cluster has fewer than :data:`MIN_CLUSTER_MEMBERS` members, they are judged
against everyone (:data:`DEFAULT_GROUP`).

The :class:`~detector.scoring.Scorer` owns one; a user's group travels with the user on a
Kafka rebalance by its *name* (group indices differ between processes).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import polars as pl

from features.windows import WINDOW_FEATURES
from models.baseline import RobustBaseline
from models.entity_index import distinct_rounds
from models.hour_profile import HourProfile
from models.peer_clusters import PeerClusters

#: Peer group of users whose role is not configured, until they are clustered.
DEFAULT_GROUP: Final = "*"
#: Days of history a user without a role needs before joining a learned peer group.
CLUSTER_AFTER_DAYS: Final = 3
#: Learned peer groups for users without a role (0: none).
PEER_CLUSTERS: Final = 8
#: Fewest members a learned cluster needs to be a peer group. k-means always makes its
#: ``clusters``, and a cluster of one (a DBA, an odd analyst) is the user themself: its
#: prior is the user's own history. Two who read alike (the nightly ETL and backup
#: accounts) are peers. Measured without roles against 1, 3 and 5 (bench/RESULTS.md).
MIN_CLUSTER_MEMBERS: Final = 2
#: The window scales whose baselines groups keep.
SCALES: Final = ("5m", "1h", "1d")


class PeerGroups:
    """Peer groups of users and the models each group learns.

    Parameters
    ----------
    sample
        Member windows each group learns per learning step (a deterministic sample).
    clusters
        Learned peer groups for users without a role (0: none, they stay with everyone).
    seed
        Seed of the clustering.
    """

    def __init__(self, sample: int = 16, clusters: int = PEER_CLUSTERS, seed: int = 42) -> None:
        self.sample = sample
        self.clusters = clusters
        self.seed = seed

    def _init(self) -> None:
        if hasattr(self, "names_"):
            return
        #: group name -> group index (roles, ``~cluster-k``, ``*``)
        self.names_: dict[str, int] = {}
        #: per user index: its group index, and whether the config gave it no role
        self.of_ = np.empty(0, dtype=np.int32)
        self.unroled_ = np.empty(0, dtype=bool)
        self.baselines_ = {s: RobustBaseline(len(WINDOW_FEATURES)) for s in SCALES}
        self.hours_ = HourProfile(smoothing=0.125, bins=48)
        self.kmeans_ = PeerClusters(max(1, self.clusters), seed=self.seed)

    def grow(self, size: int) -> None:
        """Room for ``size`` users (their group and role flag)."""
        self._init()
        if size <= self.of_.size:
            return
        grown = max(16, 2 * self.of_.size, size)
        of = np.empty(grown, dtype=np.int32)
        of[: self.of_.size] = self.of_
        unroled = np.zeros(grown, dtype=bool)
        unroled[: self.unroled_.size] = self.unroled_
        self.of_, self.unroled_ = of, unroled

    def register(self, first: int, roles: pl.Series) -> None:
        """Users ``first ..`` join the groups of their ``roles`` (``""``: no role)."""
        self._init()
        roles = roles.fill_null("")
        size = first + roles.len()
        self.grow(size)
        for role in roles.unique(maintain_order=True).to_list():
            self.index(role)
        named = {r: self.names_[r or DEFAULT_GROUP] for r in roles.unique().to_list()}
        self.of_[first:size] = roles.replace_strict(named, return_dtype=pl.Int32)
        self.unroled_[first:size] = (roles == "").to_numpy()

    def index(self, name: str) -> int:
        """The index of group ``name`` (``""``: everyone), made on first sight."""
        self._init()
        return self.names_.setdefault(name or DEFAULT_GROUP, len(self.names_))

    def name(self, user: int) -> str:
        """The name of the group of user index ``user``."""
        names = {v: k for k, v in self.names_.items()}
        return names[int(self.of_[user])]

    def learn(self, scale: str, order: np.ndarray, gidx: np.ndarray, X: np.ndarray) -> None:
        """Each group learns up to ``sample`` of its members' windows, taken in the
        deterministic pseudo-random ``order``."""
        g = gidx[order]
        rank = np.empty_like(order)
        # rank of each row within its group, in the pseudo-random order
        sort = np.argsort(g, kind="stable")
        gs = g[sort]
        starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        sizes = np.diff(np.r_[starts, gs.size])
        rank[sort] = np.arange(gs.size) - np.repeat(starts, sizes)
        chosen = np.sort(order[rank < self.sample])
        for r in distinct_rounds(gidx[chosen]):
            self.baselines_[scale].learn_many(gidx[chosen][r], X[chosen][r])

    def regroup(self, days: RobustBaseline, users: int) -> None:
        """Learned peer groups for users without a role, once they have a few days of
        history in ``days`` (their day baselines; ``users``: how many there are)."""
        if self.clusters <= 0:
            return
        counts = np.zeros(users, dtype=np.int64)
        if getattr(days, "count_", None) is not None:
            k = min(users, days.count_.size)
            counts[:k] = days.count_[:k]
        ready = np.flatnonzero(self.unroled_[:users] & (counts >= CLUSTER_AFTER_DAYS))
        if not ready.size:
            return
        profiles = days.stats_many(ready).center.astype(np.float64)
        self.kmeans_.learn_many(profiles)
        assigned = self.kmeans_.assign_many(profiles)
        for cluster in np.unique(assigned[assigned >= 0]):
            members = ready[assigned == cluster]
            big = members.size >= MIN_CLUSTER_MEMBERS
            self.of_[members] = self.index(f"~cluster-{cluster}" if big else DEFAULT_GROUP)

    def per_user_nbytes(self) -> int:
        """Bytes kept per user (group and role flag)."""
        self._init()
        return int(self.of_.nbytes + self.unroled_.nbytes)

    def shared_nbytes(self) -> int:
        """Bytes of the groups' models."""
        self._init()
        return int(sum(b.nbytes for b in self.baselines_.values()) + self.hours_.nbytes)

    @classmethod
    def from_scorer_state(cls, state: dict[str, object]) -> PeerGroups:
        """The peer groups of a scorer pickled before they were a class of their own
        (its ``groups_``, ``user_group_``, ``unroled_``, ``peers_``, ``peer_hours_``,
        ``clusters_`` and parameters), taken out of ``state``."""
        made = cls(
            sample=int(state.get("peer_sample", 16)),  # type: ignore[call-overload]
            clusters=int(state.get("peer_clusters", PEER_CLUSTERS)),  # type: ignore[call-overload]
            seed=int(state.get("seed", 42)),  # type: ignore[call-overload]
        )
        if "groups_" in state:
            made.names_ = state.pop("groups_")  # type: ignore[assignment]
            made.of_ = state.pop("user_group_")  # type: ignore[assignment]
            made.unroled_ = state.pop("unroled_")  # type: ignore[assignment]
            made.baselines_ = state.pop("peers_")  # type: ignore[assignment]
            made.hours_ = state.pop("peer_hours_")  # type: ignore[assignment]
            made.kmeans_ = state.pop("clusters_")  # type: ignore[assignment]
        return made
