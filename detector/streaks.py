"""Streaks of multi-day excess (low-and-slow): what a day adds to a user's running excess,
and the days held back from the baselines while the streak lives.

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
