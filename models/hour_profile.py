"""Per-entity hour-of-day activity profiles and the surprise of an hour, in bits.

:class:`HourProfile` keeps, for each entity, exponentially weighted counts of activity in
each of the 24 hours of the day (24 float32). The surprise of activity at hour ``h`` is
``-log2 P(h | entity)`` with a Dirichlet-smoothed estimate

    P(h) = (count_h + m·P_prior(h)) / (total + m),   m = smoothing·24

where ``P_prior`` is the peer group's profile (itself smoothed toward uniform the same
way) or uniform. An entity with no history therefore scores exactly as its peers do, and
its own habits take over as its counts grow past ``m``. A user active only 9-17 who shows
up at 03:00 scores ~7 bits after 200 observations; uniform is log2(24) = 4.58 bits.
``bins`` other than 24 give other calendars, e.g. 48 for weekday and weekend hours.

>>> import numpy as np
>>> prof = HourProfile()
>>> prof.learn_many(np.zeros(200, dtype=int), np.tile(np.arange(9, 17), 25))
>>> prof.score_many(np.array([0, 0]), np.array([10, 3])).round(1).tolist()
[3.2, 7.4]
"""

from __future__ import annotations

import numpy as np

from models.entity_index import EntityRows, as_index, grown, occurrence_rank, put_rows, take_rows


class HourProfile:
    """Per-entity EW counts of activity per hour of day; surprise of an hour in bits.

    Parameters
    ----------
    half_life
        Observations (of that entity) after which an observation's weight has halved.
    smoothing
        Pseudo-observations per hour of the prior (``smoothing·bins`` in all).
    bins
        Hours in the calendar: 24 (hours of the day) or, e.g., 48 (weekday hours, then
        weekend hours).

    Attributes
    ----------
    counts_ : numpy.ndarray
        (n_entities, bins) float32 decayed counts per hour.

    Examples
    --------
    A new user with no history is scored exactly as their peer group (here entity 100 of
    the same model) would be:

    >>> import numpy as np
    >>> prof = HourProfile()
    >>> prof.learn_many(np.full(100, 100), np.tile([8, 9, 10, 11], 25))
    >>> new = prof.score_many(np.array([7, 7]), np.array([9, 2]), prior_idx=np.array([100, 100]))
    >>> peers = prof.score_many(np.array([100, 100]), np.array([9, 2]))
    >>> bool(np.allclose(new, peers)), new.round(1).tolist()
    (True, [2.3, 6.8])

    A nightly job seen on weekdays only (bins 0-23 of a 48-hour week): its first weekend
    run at the same hour (bin 25) surprises by the day, not by the hour of the day.

    >>> week = HourProfile(bins=48)
    >>> week.learn_many(np.zeros(20, dtype=int), np.ones(20, dtype=int))
    >>> week.score_many(np.array([0, 0]), np.array([25, 11])).round(1).tolist()
    [6.1, 6.1]
    >>> week.score_many(np.array([0, 0]), np.array([25, 11]), fold=True).round(1).tolist()
    [1.1, 5.4]
    """

    def __init__(self, half_life: float = 200.0, smoothing: float = 1.0, bins: int = 24) -> None:
        if half_life <= 0 or smoothing <= 0 or bins < 1:
            raise ValueError("half_life, smoothing and bins must be positive")
        self.half_life = half_life
        self.smoothing = smoothing
        self.bins = bins

    def learn_many(self, idx: np.ndarray, hours: np.ndarray) -> None:
        """Learn activity of entity ``idx[k]`` at hour ``hours[k]`` (entities may repeat).

        Rows of one entity are learned in order: a later row is decayed less. Inputs are
        not mutated.
        """
        idx = as_index(idx, distinct=False)
        h = _check_hours(hours, idx.size, self.bins)
        if idx.size == 0:
            return
        self.counts_ = grown(
            getattr(self, "counts_", None), int(idx.max()) + 1, (self.bins,), 0.0, np.float32
        )
        keep = 2.0 ** (-1.0 / self.half_life)
        rank, count = occurrence_rank(idx)
        first = rank == 0
        # Decay each entity once by keep**(its rows), then add row k with keep**(rows after k).
        self.counts_[idx[first]] *= (keep ** count[first]).astype(np.float32)[:, None]
        np.add.at(self.counts_, (idx, h), (keep ** (count - 1 - rank)).astype(np.float32))

    def learn_one(self, i: int, hour: int) -> None:
        """Learn activity of entity ``i`` at ``hour``."""
        self.learn_many(np.array([i]), np.array([hour]))

    def take_rows(self, idx: np.ndarray) -> EntityRows:
        """Copies of the learned rows of entities ``idx`` (see :meth:`put_rows`)."""
        return take_rows(self, {"counts_": 0.0}, idx)

    def put_rows(self, idx: np.ndarray, rows: EntityRows) -> None:
        """Set entities ``idx`` to rows :meth:`take_rows` gave (another instance's)."""
        put_rows(self, {"counts_": 0.0}, idx, rows)

    def _probability(
        self, idx: np.ndarray, h: np.ndarray, prior_p: np.ndarray | float, fold: bool = False
    ) -> np.ndarray:
        m = self.smoothing * (24 if fold else self.bins)
        counts = getattr(self, "counts_", None)
        if counts is None:
            return np.broadcast_to(np.asarray(prior_p, dtype=np.float64), h.shape).copy()
        if fold:  # the hours of the day, whatever the day: sum the calendar's days
            known = idx < counts.shape[0]
            # only the rows asked about: folding the whole table would cost every entity
            rows = counts[np.where(known, idx, 0)].astype(np.float64)
            folded = rows.reshape(idx.size, -1, 24).sum(axis=1)[np.arange(idx.size), h % 24]
            c_h = np.where(known, folded, 0.0)
            total = np.where(known, rows.sum(axis=1), 0.0)
            return (c_h + m * prior_p) / (total + m)
        known = idx < counts.shape[0]
        c_h, total = np.zeros(idx.size), np.zeros(idx.size)
        if bool(known.all()):
            c_h[:], total[:] = counts[idx, h], counts[idx].sum(axis=1, dtype=np.float64)
        else:
            k = idx[known]
            c_h[known], total[known] = counts[k, h[known]], counts[k].sum(axis=1, dtype=np.float64)
        return (c_h + m * prior_p) / (total + m)

    def score_many(
        self,
        idx: np.ndarray,
        hours: np.ndarray,
        prior_idx: np.ndarray | None = None,
        prior: HourProfile | None = None,
        fold: bool = False,
    ) -> np.ndarray:
        """``-log2 P(hour | entity)`` in bits, smoothed toward the prior's profile. Pure.

        Parameters
        ----------
        idx
            (n,) entity indices (repeats allowed).
        hours
            (n,) hours of day, 0-23.
        prior_idx
            (n,) peer-group entity of each row (in ``prior``); a negative index means "no
            group" (uniform prior for that row). ``None``: uniform prior for all rows.
        prior
            The model holding the groups; ``None`` means this model (groups as entities).
        fold
            Score the hour of the day only, every day of a multi-day calendar (``bins`` a
            multiple of 24) counted together: for entities whose hours do not depend on
            the day, like a job that runs every night.

        Returns
        -------
        numpy.ndarray
            (n,) float64 bits; an entity with no history scores as its peers do.
        """
        idx = as_index(idx, distinct=False)
        h = _check_hours(hours, idx.size, self.bins)
        if fold and self.bins % 24:
            raise ValueError(f"cannot fold {self.bins} bins into hours of the day")
        uniform = 1.0 / (24 if fold else self.bins)
        if prior_idx is None:
            p_prior: np.ndarray | float = uniform
        else:
            pidx = np.asarray(prior_idx)
            if pidx.shape != idx.shape:
                raise ValueError(f"prior_idx must have shape {idx.shape}, got {pidx.shape}")
            has = pidx >= 0
            model = self if prior is None else prior
            p_prior = np.full(idx.size, uniform)
            p_prior[has] = model._probability(
                as_index(pidx[has], distinct=False), h[has], uniform, fold
            )
        return -np.log2(self._probability(idx, h, p_prior, fold))

    def score_one(self, i: int, hour: int) -> float:
        """Surprise (bits) of activity of entity ``i`` at ``hour`` (uniform prior)."""
        return float(self.score_many(np.array([i]), np.array([hour]))[0])

    @property
    def nbytes(self) -> int:
        """Bytes of learned per-entity arrays (0 before the first learn)."""
        return self.counts_.nbytes if hasattr(self, "counts_") else 0


def _check_hours(hours: np.ndarray, n: int, bins: int) -> np.ndarray:
    h = np.asarray(hours)
    if h.shape != (n,) or not (h.dtype.kind in "iu" or h.size == 0):
        raise ValueError(f"hours must be {n} integers, got {h.dtype}{h.shape}")
    h = h.astype(np.intp, copy=False)
    if h.size and (int(h.min()) < 0 or int(h.max()) >= bins):
        raise ValueError(f"hours must be in 0..{bins - 1}")
    return h
