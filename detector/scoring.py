"""Scores closed windows against each user's and their peers' normal; learns from the rest.

:class:`Scorer` owns the online models of :mod:`models` (one set per window scale), the
user -> index map they are indexed by, the users' peer groups
(:class:`~detector.peer_groups.PeerGroups`) and the days held back while a streak of
excess lives (:class:`~detector.streaks.HeldBackDays`). It adds the model
columns of the window frame (``z_*``, ``typical_*``, ``peer_typical_*``, ``max_*``,
``history``, ``hour_surprise``, ``cusum_sensitive_rows``, ``excess_since`` (first day of
the running multi-day excess), ``excess_days`` (consecutive days adding to it),
``multivariate``,
``raw_score``; see ARCHITECTURE.md) and learns from windows that raised no alert.

Statement-scale rows (one big statement judged alone) are scored against the user's
*day* baseline (how many sensitive rows one statement of theirs returns at most, per
day) and never learned from: the day window that contains the statement is.

The raw score
-------------
``raw_score = max(max_f z_f, cusum) + novelty (+ 2 * multivariate)`` where ``z_f`` are the
robust z of the model features, ``cusum`` the multi-day excess of sensitive rows (day
scale), and ``novelty`` adds, for users with >= 3 windows of history, 2 for a client IP
new to the user, 2 for a sensitive class they never read before, and the hour's surprise
beyond 6 bits (24 equally likely hours are 4.6 bits). Service accounts are judged on their
hours of the day, and their surprise beyond 3 bits counts twice: a schedule is a firmer
promise than a person's habits (a job's usual hours score about 1 bit from its second run,
an hour it never ran at 7 bits or more from its fourth, while its volumes look normal).
``multivariate`` (river HalfSpaceTrees over the z-vector, in [0, 1]) is only computed for
windows a threat rule matched (:meth:`Scorer.refine`): it walks one row at a time in
Python. The alert budget
(:class:`models.calibration.AlertBudget`) sets the bar this score must clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import polars as pl

from detector.peer_groups import PEER_CLUSTERS, PeerGroups
from detector.streaks import ExcessStreaks, HeldBackDays, daily_excess
from features.windows import WINDOW_FEATURES
from models.baseline import RobustBaseline
from models.entity_index import distinct_rounds
from models.hour_profile import HourProfile
from models.multivariate import HalfSpaceScorer

#: Which baseline scores each scale.
BASELINE_OF: Final = {"statement": "1d", "5m": "5m", "1h": "1h", "1d": "1d"}
#: Active days in a row a streak of excess is held back from the baselines, at most.
MAX_HOLD_DAYS: Final = 7
#: Bits of hour surprise above which the hour adds to a window's score: people, service
#: accounts (scored on their hours of the day).
SURPRISE_BITS: Final = 6.0
SERVICE_SURPRISE_BITS: Final = 3.0
SERVICE_SURPRISE_WEIGHT: Final = 2.0
_SENSITIVE: Final = WINDOW_FEATURES.index("sensitive_rows")


def _week_hour(frame: pl.DataFrame) -> np.ndarray:
    """Hour of the day, plus 24 on Saturdays and Sundays (the 48 hours of HourProfile)."""
    hour = frame["hour"].to_numpy().astype(np.int64)
    return hour + 24 * (frame["weekday"].to_numpy() >= 5)


def _sample_order(frame: pl.DataFrame) -> np.ndarray:
    """A deterministic pseudo-random order of window rows (the same for the same windows,
    run to run; polars' hash is stable for one polars version, which the state records)."""
    key = pl.concat_str(
        pl.col("user"), pl.col("scale"), pl.col("window_end").dt.epoch("us").cast(pl.String)
    ).hash(0x5A3B1E)
    return np.argsort(frame.select(key).to_series().to_numpy(), kind="stable")


class Scorer:
    """Per-scale baselines, peer priors, hour profiles, CUSUM and HalfSpaceTrees.

    Parameters
    ----------
    service_roles
        Roles of service/batch accounts (the ``service`` column).
    prior_weight
        Windows of their own a user needs before their baseline weighs as much as
        their peers'.
    peer_sample
        Member windows each peer group learns per learning step (a deterministic sample,
        so a 10,000-member group costs what a 16-member group does).
    hst_sample
        Windows per scale the multivariate model learns per learning step.
    cusum_allowance
        Daily z of sensitive rows that does not accumulate (normal day-to-day variation).
    cusum_clip
        Most one day can add to the multi-day excess (``cusum_clip - cusum_allowance``):
        a single extreme day is another pattern's business, not a trickle.
    peer_clusters
        Learned peer groups (scikit-learn mini-batch k-means over users' daily
        baselines) for users whose role the config does not give; they are judged against
        everyone until they have :data:`CLUSTER_AFTER_DAYS` days of history (0: none,
        they stay with everyone).
    multivariate
        Whether river HalfSpaceTrees scores matched windows (:meth:`refine`).
    seed
        Seed of the multivariate model and the clustering.
    """

    #: a scorer saved before the switch existed has none: its forests were on
    multivariate: bool = True

    def __init__(
        self,
        service_roles: frozenset[str] = frozenset(),
        prior_weight: float = 5.0,
        peer_sample: int = 16,
        hst_sample: int = 32,
        cusum_allowance: float = 1.0,
        cusum_clip: float = 3.0,
        peer_clusters: int = PEER_CLUSTERS,
        seed: int = 42,
        multivariate: bool = True,
    ) -> None:
        self.service_roles = service_roles
        self.prior_weight = prior_weight
        self.peer_sample = peer_sample
        self.hst_sample = hst_sample
        self.cusum_allowance = cusum_allowance
        self.cusum_clip = cusum_clip
        self.peer_clusters = peer_clusters
        self.seed = seed
        self.multivariate = multivariate

    def _init(self) -> None:
        if hasattr(self, "user_table_"):
            return
        n = len(WINDOW_FEATURES)
        self.user_table_ = pl.DataFrame(schema={"user": pl.String, "idx": pl.Int64})
        self.peer_groups_ = PeerGroups(self.peer_sample, self.peer_clusters, self.seed)
        self.peer_groups_._init()  # the handover reads and replaces its parts directly
        # event time (s) up to which each user's activity is covered by an alert
        self.alerted_until_ = np.empty(0, dtype=np.float64)
        # each user's running multi-day excess and its streak
        self.streaks_ = ExcessStreaks(self.cusum_allowance)
        self.streaks_._init()  # the handover reads and replaces its parts directly
        # day windows held back from the baselines while their streak is alive
        self.held_ = HeldBackDays()
        self.baselines_ = {s: RobustBaseline(n) for s in ("5m", "1h", "1d")}
        # Hours of the week, folded to weekday and weekend hours (48): a weekday worker at
        # work on Sunday is unusual, while a week is too short to learn 168 slots. Few
        # pseudo-counts: a batch account seen at 02:00 on three nights should find 14:00
        # surprising already.
        self.hours_ = HourProfile(smoothing=0.125, bins=48)
        self.hst_ = {
            s: HalfSpaceScorer(WINDOW_FEATURES, seed=self.seed) for s in ("5m", "1h", "1d")
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        """Load a pickled scorer; one saved before the peer groups were a class of their
        own (``groups_``, ``user_group_``, ``peers_`` ... on the scorer) gets them moved
        into a :class:`PeerGroups`."""
        if "groups_" in state:
            state["peer_groups_"] = PeerGroups.from_scorer_state(state)
        if "cusum_" in state:  # the streaks before they were a class of their own
            state["streaks_"] = ExcessStreaks.from_scorer_state(state)
        if "deferred_" in state:  # held-back days before they were a class of their own
            state["held_"] = held = HeldBackDays()
            held.days_ = state.pop("deferred_")  # type: ignore[assignment]
        self.__dict__.update(state)

    def index(self, users: pl.Series, roles: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """User and peer-group indices of each row (new users and roles get new ones)."""
        self._init()
        frame = pl.DataFrame({"user": users, "role": roles})
        known = frame.join(self.user_table_, on="user", how="left", maintain_order="left")
        new = known.filter(pl.col("idx").is_null()).select("user", "role")
        if new.height:
            self._register(new.unique("user", keep="first", maintain_order=True))
            known = frame.join(self.user_table_, on="user", how="left", maintain_order="left")
        idx = known["idx"].to_numpy()
        return idx, self.peer_groups_.of_[idx].astype(np.int64)

    def _register(self, new: pl.DataFrame) -> None:
        """Give new users the next indices and their role's peer group."""
        first = self.user_table_.height
        size = first + new.height
        if size > self.alerted_until_.size:
            grown = max(16, 2 * self.alerted_until_.size, size)
            until = np.full(grown, -np.inf)
            until[: self.alerted_until_.size] = self.alerted_until_
            self.alerted_until_ = until
        self.streaks_.grow(size)
        self.peer_groups_.register(first, new["role"])
        added = new.select("user", idx=pl.int_range(first, size, dtype=pl.Int64))
        self.user_table_ = pl.concat([self.user_table_, added]).rechunk()

    def score(self, items: pl.DataFrame, roles: pl.Series) -> pl.DataFrame:
        """``items`` (closed windows / statements) with the model columns added. Pure
        except for registering new users."""
        self._init()
        n = items.height
        idx, gidx = self.index(items["user"], roles)
        X = items.select(WINDOW_FEATURES).to_numpy().astype(np.float64)
        F = len(WINDOW_FEATURES)
        z = np.zeros((n, F))
        typical = np.full((n, F), np.nan)
        peer_typical = np.full((n, F), np.nan)
        most = np.full((n, F), np.nan)
        history = np.zeros(n, dtype=np.int64)
        referenced = np.zeros(n, dtype=bool)
        cusum = np.zeros(n)
        since = np.full(n, np.nan)
        streak = np.zeros(n)
        base_scale = items["scale"].replace_strict(BASELINE_OF).to_numpy()
        for scale in ("5m", "1h", "1d"):
            rows = np.flatnonzero(base_scale == scale)
            if not rows.size:
                continue
            own, peers = self.baselines_[scale], self.peer_groups_.baselines_[scale]
            prior = peers.stats_many(gidx[rows])
            z[rows] = own.score_many(idx[rows], X[rows], prior, self.prior_weight)
            typical[rows] = own.typical_many(idx[rows], prior, self.prior_weight)
            peer_typical[rows] = peers.typical_many(gidx[rows])
            stats = own.stats_many(idx[rows])
            most[rows] = stats.max
            history[rows] = stats.count
            referenced[rows] = (stats.count > 0) | (prior.count > 0)
        # Nothing to compare with (first windows of the first users): no deviation.
        z = np.where(referenced[:, None], np.clip(z, -20.0, 50.0), 0.0)
        day = np.flatnonzero(items["scale"].to_numpy() == "1d")
        if day.size:
            days = items[day].with_columns(history=pl.Series(history[day]))
            excess = self._daily_excess(days, idx[day], z[day, _SENSITIVE])
            cusum[day], since[day], streak[day] = self.streaks_.score_many(idx[day], days, excess)
        hours = _week_hour(items)
        peer_hours = self.peer_groups_.hours_
        surprise = self.hours_.score_many(idx, hours, prior_idx=gidx, prior=peer_hours)
        # A service account runs by the clock, not by the day of the week: its hour is
        # judged against every day's runs (a nightly job's first weekend run is no news),
        # and an hour it never runs at counts from fewer bits than a person working late.
        service = roles.is_in(list(self.service_roles)).to_numpy()
        if service.any():
            rows = np.flatnonzero(service)
            surprise[rows] = self.hours_.score_many(
                idx[rows], hours[rows], prior_idx=gidx[rows], prior=peer_hours, fold=True
            )
        surprise[day] = 0.0  # a day window has no hour
        seasoned = history >= 3
        novelty = (
            np.maximum(surprise - np.where(service, SERVICE_SURPRISE_BITS, SURPRISE_BITS), 0.0)
            * np.where(service, SERVICE_SURPRISE_WEIGHT, 1.0)
            + 2.0 * ((items["new_ips"].to_numpy() > 0) & seasoned)
            + 2.0 * ((items["new_classes"].list.len().to_numpy() > 0) & seasoned)
        )
        raw = np.maximum(np.maximum(z, 0.0).max(axis=1), cusum) + novelty
        multivariate = np.zeros(n)  # filled by refine() for the few rows a rule matches
        columns: dict[str, np.ndarray | pl.Series] = {}
        for k, f in enumerate(WINDOW_FEATURES):
            columns[f"z_{f}"] = z[:, k]
            columns[f"typical_{f}"] = typical[:, k]
            columns[f"peer_typical_{f}"] = peer_typical[:, k]
            columns[f"max_{f}"] = most[:, k]
        columns |= {
            "history": history,
            "hour_surprise": surprise,
            "cusum_sensitive_rows": cusum,
            "excess_since": since,
            "excess_days": streak,
            "multivariate": multivariate,
            "raw_score": raw,
        }
        frame = (
            pl.DataFrame(columns)
            .with_columns(pl.selectors.float().fill_nan(None))
            .with_columns(
                excess_since=(pl.col("excess_since") * 1e6)
                .cast(pl.Int64)
                .cast(pl.Datetime("us", "UTC"))
            )
        )
        return items.with_columns(
            role=roles,
            service=pl.Series(service),
        ).hstack(frame)

    def refine(self, matches: pl.DataFrame) -> pl.DataFrame:
        """Add the multivariate (HalfSpaceTrees) score to rows a threat rule matched.

        The forest walks one row at a time in Python, so it only sees candidates; pure.
        """
        if matches.is_empty() or not self.multivariate:
            return matches
        z = np.nan_to_num(matches.select([f"z_{f}" for f in WINDOW_FEATURES]).to_numpy())
        base_scale = matches["scale"].replace_strict(BASELINE_OF).to_numpy()
        multivariate = np.zeros(matches.height)
        for scale in ("5m", "1h", "1d"):
            rows = np.flatnonzero(base_scale == scale)
            if rows.size:
                multivariate[rows] = self.hst_[scale].score_many(z[rows])
        return matches.with_columns(
            multivariate=pl.Series(multivariate),
            raw_score=pl.col("raw_score") + 2.0 * pl.Series(multivariate),
        )

    def _covered(self, frame: pl.DataFrame, idx: np.ndarray) -> np.ndarray:
        """Rows whose window overlaps activity an alert already reported."""
        start = frame["window_start"].dt.epoch("us").to_numpy() / 1e6
        return self.alerted_until_[idx] >= start

    def _daily_excess(self, days: pl.DataFrame, idx: np.ndarray, z: np.ndarray) -> np.ndarray:
        """What each day adds to the multi-day excess (:func:`detector.streaks.daily_excess`)."""
        peers = self.peer_groups_
        return daily_excess(
            days, z, peers.of_[idx], peers.unroled_[idx], self.cusum_allowance, self.cusum_clip
        )

    def note_alerts(self, users: pl.Series, roles: pl.Series, until: pl.Series) -> None:
        """Record that alerts reported these users' activity up to ``until``."""
        idx = self.index(users, roles)[0]
        np.maximum.at(self.alerted_until_, idx, until.dt.epoch("us").to_numpy() / 1e6)

    def learn(self, scored: pl.DataFrame, alerted: np.ndarray) -> None:
        """Learn from scored rows that raised no alert (statement rows never teach).

        Rows are learned in their order (event time), each user's in sequence, so the
        result does not depend on how they were batched.
        """
        self._init()
        z_cols = [f"z_{f}" for f in WINDOW_FEATURES]
        frame = scored.select(
            "user", "role", "scale", "window_start", "window_end", "hour", "weekday", "history",
            "cusum_sensitive_rows", "excess_days", *WINDOW_FEATURES, *z_cols,
        )  # fmt: skip
        idx, gidx = self.index(frame["user"], frame["role"])
        scale = frame["scale"].to_numpy()
        day, quiet = scale == "1d", ~np.asarray(alerted, dtype=bool)
        reset = np.flatnonzero(~quiet & day)
        if reset.size:
            self.streaks_.reset_many(idx[reset])
        # The multi-day excess learns from every day not alerted on, including the days
        # held back from the baselines (below).
        days = np.flatnonzero(quiet & day)
        if days.size:
            zs = frame["z_sensitive_rows"].fill_null(0.0).to_numpy()[days]
            excess = self._daily_excess(frame[days], idx[days], zs)
            self.streaks_.learn_many(idx[days], frame[days], excess)
        keep = quiet & (scale != "statement") & ~self._covered(frame, idx)
        # A day that extends a streak of excess is held back from the baselines (a
        # trickle must not become the normal while it is measured) until the streak
        # breaks without an alert: then it was the user's normal after all, and is
        # learned. An alert on the streak drops the held-back days. A streak that lasts
        # MAX_HOLD_DAYS without an alert is a new level, not a trickle: it is learned.
        run = frame["excess_days"].fill_null(0.0).to_numpy()
        streak = day & (run >= 1) & (run < MAX_HOLD_DAYS)
        current = frame
        frame = self.held_.release(current, reset=~quiet & day, broken=keep & day & ~streak)
        self.held_.hold(current, keep & streak)
        keep &= ~streak
        released = frame.height - current.height
        if released:  # held-back days come first, in their order
            idx, gidx = self.index(frame["user"], frame["role"])
            scale = frame["scale"].to_numpy()
            day = scale == "1d"
            head = ~self._covered(frame[:released], idx[:released])
            keep = np.r_[head, keep]
        if not keep.any():
            return
        X = frame.select(WINDOW_FEATURES).to_numpy().astype(np.float64)
        Z = np.nan_to_num(frame.select(z_cols).to_numpy())
        for s in ("5m", "1h", "1d"):
            rows = np.flatnonzero(keep & (scale == s))
            if not rows.size:
                continue
            for r in distinct_rounds(idx[rows]):
                self.baselines_[s].learn_many(idx[rows][r], X[rows][r])
            order = _sample_order(frame[rows])
            self.peer_groups_.learn(s, order, gidx[rows], X[rows])
            if self.multivariate:
                self.hst_[s].learn_many(Z[rows][order[: self.hst_sample]])
        if (keep & day).any():
            self.peer_groups_.regroup(self.baselines_["1d"], self.user_table_.height)
        hourly = np.flatnonzero(keep & (scale == "1h"))
        if hourly.size:
            hours = _week_hour(frame)[hourly]
            self.hours_.learn_many(idx[hourly], hours)
            self.peer_groups_.hours_.learn_many(gidx[hourly], hours)

    def peer_group(self, user: str) -> str:
        """The peer group ``user`` is judged against (a role, a learned cluster, or ``*``)."""
        self._init()
        (idx,) = self.user_table_.filter(pl.col("user") == user)["idx"].to_list()
        return self.peer_groups_.name(idx)

    def users(self) -> int:
        """Users tracked."""
        return self.user_table_.height if hasattr(self, "user_table_") else 0

    def nbytes(self) -> Mapping[str, int]:
        """Bytes of model state by part: everything kept per user (arrays, the user-name
        index, days held back) and the peer groups' models. The HalfSpaceTrees forests
        (a few hundred kB in all, whatever the number of users) are not counted."""
        self._init()
        per_user = sum(b.nbytes for b in self.baselines_.values())
        per_user += self.hours_.nbytes + self.streaks_.nbytes + self.alerted_until_.nbytes
        per_user += self.peer_groups_.per_user_nbytes()
        per_user += int(self.user_table_.estimated_size())
        per_user += self.held_.nbytes()
        shared = self.peer_groups_.shared_nbytes()
        return {"per_user": per_user, "shared": shared}
