"""Streaks of multi-day excess (low-and-slow): what a day adds to a user's running excess
(:func:`daily_excess`), each user's running excess and streak (:class:`ExcessStreaks`), and
the days held back from the baselines while the streak lives (:class:`HeldBackDays`).

A trickle must not become the user's normal while it is being measured, so a day that
extends a streak of excess is held back from the baselines (:class:`HeldBackDays`) until
the streak breaks without an alert: then it was the user's normal after all, and is
learned. An alert on the streak drops the held-back days. The
:class:`~detector.scoring.Scorer` owns one and decides which days to hold and release.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detector.peer_groups import CLUSTER_AFTER_DAYS
from models.cusum import Cusum
from models.entity_index import distinct_rounds, gather


def daily_excess(
    days: pl.DataFrame,
    z: np.ndarray,
    group: np.ndarray,
    unroled: np.ndarray,
    allowance: float,
    clip: float,
) -> np.ndarray:
    """What each day window adds to the multi-day excess, as an (n, 1) column: its ``z`` of
    sensitive rows less the peer ``group``'s common excess that day, at most ``clip``.

    A day an alert already reported counts too: a trickle that a shorter-scale rule caught
    on its first day is still a trickle. All of a day's windows are judged, and learned,
    together: the group median is the same however the input was batched. ``unroled``:
    users the config gave no role, whose drift only counts once they have their own normal
    (``allowance``, which adds nothing, until then).
    """
    z = np.nan_to_num(z)
    # A day everyone in the group had above normal (a busy day) is no one's trickle: take
    # the group's median excess of that day off (groups of 5 or more: in a smaller one
    # the trickler's own day moves the median).
    day_key = days["window_start"].dt.epoch("s").to_numpy()
    keyed = pl.DataFrame({"g": group.astype(np.int64), "d": day_key, "z": z})
    common = keyed.select(
        pl.when(pl.len().over("g", "d") >= 5)
        .then(pl.col("z").median().over("g", "d").clip(lower_bound=0.0))
        .otherwise(0.0)
    ).to_series()
    step = np.minimum(z - common.to_numpy(), clip)
    # Drift is measured from an established normal: the user's own (a few days), or a
    # configured role's from day one. Against "everyone" it would only measure how unlike
    # the others a new account is.
    own = days["history"].to_numpy() >= CLUSTER_AFTER_DAYS
    step[~own & unroled] = allowance
    return step.reshape(-1, 1)


class ExcessStreaks:
    """Each user's running multi-day excess (a CUSUM of what each day adds), the first day
    of its current streak and how many active days in a row added to it.

    Parameters
    ----------
    allowance
        What a day must add to extend a streak (the CUSUM's allowance).

    >>> import datetime as dt
    >>> streaks = ExcessStreaks(allowance=1.0)
    >>> streaks.grow(2)
    >>> days = pl.DataFrame({"window_start": [dt.datetime(2024, 3, d) for d in (4, 5)]})
    >>> user = np.array([1])
    >>> streaks.learn_many(user, days[:1], np.array([[3.0]]))
    >>> cusum, since, run = streaks.score_many(user, days[1:], np.array([[3.0]]))
    >>> float(cusum[0]), dt.datetime.fromtimestamp(since[0], dt.UTC).day, int(run[0])
    (4.0, 4, 2)
    """

    def __init__(self, allowance: float = 1.0) -> None:
        self.allowance = allowance

    def _init(self) -> None:
        if hasattr(self, "cusum_"):
            return
        self.cusum_ = Cusum(1, allowance=self.allowance)
        #: start (s) of the day each user's current excess began; NaN when there is none
        self.since_ = np.empty(0, dtype=np.float64)
        #: consecutive active days each adding to the excess (a trickle is sustained)
        self.days_ = np.empty(0, dtype=np.int16)

    def grow(self, size: int) -> None:
        """Room for ``size`` users."""
        self._init()
        if size <= self.since_.size:
            return
        grown = max(16, 2 * self.since_.size, size)
        since = np.full(grown, np.nan)
        since[: self.since_.size] = self.since_
        run = np.zeros(grown, dtype=np.int16)
        run[: self.days_.size] = self.days_
        self.since_, self.days_ = since, run

    def score_many(
        self, idx: np.ndarray, days: pl.DataFrame, excess: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The running excess after each day window of ``days`` (users ``idx``, what
        each adds: ``excess``, shape (n, 1)), the start (s) of its streak (NaN: none) and
        the streak's length in days (0: the day does not extend one). Pure."""
        self._init()
        after = self.cusum_.score_many(idx, excess)[:, 0]
        return after, self._since(idx, days, after), self._streak(idx, excess[:, 0])

    def learn_many(self, idx: np.ndarray, days: pl.DataFrame, excess: np.ndarray) -> None:
        """Learn the day windows ``days`` in their order (each user's in sequence)."""
        self._init()
        for r in distinct_rounds(idx):
            users, rows = idx[r], days[r]
            after = self.cusum_.score_many(users, excess[r])[:, 0]
            self.since_[users] = self._since(users, rows, after)
            self.days_[users] = self._streak(users, excess[r][:, 0])
            self.cusum_.learn_many(users, excess[r])

    def reset_many(self, idx: np.ndarray) -> None:
        """Users ``idx`` start afresh (an alert reported their streak)."""
        self._init()
        self.cusum_.reset_many(np.unique(idx))
        self.since_[idx] = np.nan
        self.days_[idx] = 0

    def _since(self, idx: np.ndarray, days: pl.DataFrame, after: np.ndarray) -> np.ndarray:
        """Start (s) of the first day of each user's running multi-day excess, given the
        excess ``after`` this day; NaN when there is none."""
        start = days["window_start"].dt.epoch("us").to_numpy() / 1e6
        state = getattr(self.cusum_, "S_", None)
        before = np.zeros(idx.size) if state is None else gather(state, idx, 0.0)[:, 0]
        known = self.since_[idx]
        since = np.where((before > 0) & ~np.isnan(known), known, start)
        return np.where(after > 0, since, np.nan)

    def _streak(self, idx: np.ndarray, excess: np.ndarray) -> np.ndarray:
        """Consecutive active days adding to the excess, this one included (0 if it
        does not)."""
        return np.where(excess > self.allowance, self.days_[idx] + 1, 0)

    @property
    def nbytes(self) -> int:
        """Bytes kept (all per user)."""
        self._init()
        return int(self.cusum_.nbytes + self.since_.nbytes + self.days_.nbytes)

    @classmethod
    def from_scorer_state(cls, state: dict[str, object]) -> ExcessStreaks:
        """The streaks of a scorer pickled before they were a class of their own (its
        ``cusum_``, ``excess_since_`` and ``excess_days_``), taken out of ``state``."""
        made = cls(allowance=float(state.get("cusum_allowance", 1.0)))  # type: ignore[arg-type]
        made.cusum_ = state.pop("cusum_")  # type: ignore[assignment]
        made.since_ = state.pop("excess_since_")  # type: ignore[assignment]
        made.days_ = state.pop("excess_days_")  # type: ignore[assignment]
        return made


class HeldBackDays:
    """Day windows held back from the baselines while their user's streak lives.

    >>> import datetime as dt
    >>> day = lambda u, d: {"user": u, "window_start": dt.datetime(2024, 3, d)}
    >>> held = HeldBackDays()
    >>> frame = pl.DataFrame([day("ann", 4), day("bob", 4)])
    >>> held.hold(frame, np.array([True, True]))
    >>> today = pl.DataFrame([day("ann", 5), day("bob", 5)])
    >>> out = held.release(today, reset=np.array([False, True]), broken=np.array([True, False]))
    >>> out["user"].to_list(), held.days_ is not None and held.days_.height
    (['ann', 'ann', 'bob'], 0)
    """

    def __init__(self) -> None:
        #: the held-back day windows (``None``: none yet)
        self.days_: pl.DataFrame | None = None

    def hold(self, frame: pl.DataFrame, rows: np.ndarray) -> None:
        """Hold back the ``rows`` of ``frame``."""
        if not rows.any():
            return
        held = frame.filter(pl.Series(rows))
        self.days_ = held if self.days_ is None else pl.concat([self.days_, held])

    def release(self, frame: pl.DataFrame, reset: np.ndarray, broken: np.ndarray) -> pl.DataFrame:
        """``frame`` with the held-back days of users whose streak ``broken`` put in front
        (in their order); held-back days of users alerted on (``reset``) are dropped."""
        if self.days_ is None or self.days_.is_empty():
            return frame
        dropped = frame["user"].filter(pl.Series(reset)).unique()
        released = frame["user"].filter(pl.Series(broken)).unique()
        held = self.days_.filter(~pl.col("user").is_in(dropped.implode()))
        out = held.filter(pl.col("user").is_in(released.implode()))
        self.days_ = held.filter(~pl.col("user").is_in(released.implode()))
        if out.is_empty():
            return frame
        return pl.concat([out.sort("window_start", "user"), frame])

    def of(self, users: pl.Series) -> pl.DataFrame | None:
        """The held-back days of ``users`` (a copy, for another process)."""
        if self.days_ is None:
            return None
        return self.days_.filter(pl.col("user").is_in(users.implode()))

    def replace(self, users: pl.Series, days: pl.DataFrame | None) -> None:
        """``users``' held-back days are ``days`` (another process's) from now on."""
        held = self.days_
        if held is not None:
            held = held.filter(~pl.col("user").is_in(users.implode()))
        parts = [f for f in (held, days) if f is not None and f.height]
        self.days_ = pl.concat(parts) if parts else None

    def nbytes(self) -> int:
        """Bytes held."""
        return 0 if self.days_ is None else int(self.days_.estimated_size())
