"""Per-entity robust baselines of count features, vectorised over entities.

For each entity (a user, or a peer group) and each feature, :class:`RobustBaseline` keeps
an exponentially weighted centre and spread of ``log1p(x)``. Counts of rows, statements or
tables span orders of magnitude and vary multiplicatively ("twice the usual"), so the log
scale makes a doubling the same step for a user who reads 10 rows and one who reads 10^5.

Robustness: once an entity has 3 observations, each new value is clipped to
``centre ± clip·spread`` before it updates the baseline (a Huber-style step), so a single
outlier moves the centre by at most ``alpha·clip·spread`` instead of dragging it; a real
change of habit still moves the baseline, a bounded step per observation. The detector
also never learns windows that raised an alert.

The spread is the EW mean absolute deviation of ``log1p(x)`` from the centre, floored at
``min_spread`` when scoring, so an entity that always reads exactly 12 rows does not make
13 infinitely surprising. A ``min_spread`` of 0.35 makes one z unit ~ a 1.4x change.

Priors: a peer group is an entity of another ``RobustBaseline`` (or of the same one);
:meth:`RobustBaseline.score_many` blends the entity's own statistics with the group's by
``w = n / (n + prior_weight)``, so a new user is judged against peers from day one and
against themself as their history grows.

>>> import numpy as np
>>> model = RobustBaseline(n_features=1)
>>> for day in range(10):
...     model.learn_one(0, [100.0 + day])
>>> z_normal, z_bulk = model.score_one(0, [110.0])[0], model.score_one(0, [50_000.0])[0]
>>> bool(z_normal < 1.0), bool(z_bulk > 10.0)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.entity_index import EntityRows, as_index, gather, grown, put_rows, take_rows


@dataclass(frozen=True)
class BaselineStats:
    """Statistics of some entities, one row each (arrays of equal length).

    Attributes
    ----------
    center
        (n, F) EW centre of ``log1p(x)``; 0 for an entity never learned.
    spread
        (n, F) EW mean absolute deviation of ``log1p(x)``; ``min_spread`` when never learned.
    count
        (n,) observations learned.
    max
        (n, F) largest raw value learned; NaN when never learned.
    """

    center: np.ndarray
    spread: np.ndarray
    count: np.ndarray
    max: np.ndarray

    def __len__(self) -> int:
        return int(self.count.shape[0])


#: Per-entity arrays and the value of a row never learned.
_FILLS: dict[str, float] = {"center_": 0.0, "spread_": 0.0, "count_": 0, "max_": np.nan}


class RobustBaseline:
    """Per-entity EW robust centre/spread of ``log1p`` of each feature; scores robust z.

    Parameters
    ----------
    n_features
        Features per observation (columns of ``X``).
    half_life
        Observations after which an observation's weight has halved. The first
        observations are averaged plainly (weight ``1/n``) until ``1/n`` falls below the EW
        weight, so a new entity's baseline is not biased toward 0.
    clip
        Once an entity has 3 observations, a new value is clipped to
        ``centre ± clip·max(spread, min_spread)`` before it is learned.
    min_spread
        Floor of the spread in scores (and in clipping).

    Attributes
    ----------
    center_, spread_ : numpy.ndarray
        (n_entities, F) float32.
    count_ : numpy.ndarray
        (n_entities,) int32 observations learned.
    max_ : numpy.ndarray
        (n_entities, F) float32 largest raw value learned (NaN when none).

    Examples
    --------
    A new entity with no history is judged against its peer group's statistics:

    >>> import numpy as np
    >>> peers = RobustBaseline(n_features=1)
    >>> for members_day in ([10.0, 12.0, 9.0], [11.0, 10.0, 13.0], [12.0, 9.0, 10.0]):
    ...     for value in members_day:  # each member's window, learned into group row 0
    ...         peers.learn_one(0, [value])
    >>> users = RobustBaseline(n_features=1)
    >>> prior = peers.stats_many(np.array([0, 0]))  # the group of each scored row
    >>> users.typical_many(np.array([5, 5]), prior=prior)[0].round(1).tolist()
    [10.6]
    >>> z = users.score_many(np.array([5, 5]), np.array([[12.0], [5000.0]]), prior=None)
    >>> z.round(2).tolist()  # no history, no prior: centre 0, spread min_spread
    [[7.33], [24.34]]
    >>> z = users.score_many(np.array([5, 5]), np.array([[12.0], [5000.0]]), prior=prior)
    >>> bool(z[0, 0] < 1.0), bool(z[1, 0] > 10.0)
    (True, True)
    """

    def __init__(
        self,
        n_features: int,
        half_life: float = 20.0,
        clip: float = 3.0,
        min_spread: float = 0.35,
    ) -> None:
        if n_features < 1 or half_life <= 0 or clip <= 0 or min_spread <= 0:
            raise ValueError("n_features, half_life, clip and min_spread must be positive")
        self.n_features = n_features
        self.half_life = half_life
        self.clip = clip
        self.min_spread = min_spread

    # -- learning ------------------------------------------------------------------------

    def learn_many(self, idx: np.ndarray, X: np.ndarray) -> None:
        """Learn one observation for each of the (distinct) entities ``idx``.

        Parameters
        ----------
        idx
            (n,) distinct entity indices.
        X
            (n, F) raw non-negative values (not mutated).

        Raises
        ------
        ValueError
            On repeated indices, a wrong shape, or negative / non-finite values.
        """
        idx = as_index(idx, distinct=True)
        x = self._check_x(idx, X)
        if idx.size == 0:
            return
        self._grow(int(idx.max()) + 1)
        y = np.log1p(x)
        n_old = self.count_[idx].astype(np.float64)
        c = self.center_[idx].astype(np.float64)
        s = self.spread_[idx].astype(np.float64)
        width = self.clip * np.maximum(s, self.min_spread)
        robust = (n_old >= 3)[:, None]
        y = np.where(robust, np.clip(y, c - width, c + width), y)
        alpha = 1.0 - 2.0 ** (-1.0 / self.half_life)
        # Plain mean of the first observations, then EW: no start-up bias toward 0.
        a_c = np.maximum(alpha, 1.0 / (n_old + 1.0))[:, None]
        # The spread needs a previous centre: from the 2nd observation on.
        a_s = np.where(n_old >= 1, np.maximum(alpha, 1.0 / np.maximum(n_old, 1.0)), 0.0)[:, None]
        self.spread_[idx] = s + a_s * (np.abs(y - c) - s)
        self.center_[idx] = c + a_c * (y - c)
        self.count_[idx] = np.minimum(n_old + 1, np.iinfo(np.int32).max)
        self.max_[idx] = np.fmax(self.max_[idx], x)

    def learn_one(self, i: int, x) -> None:
        """Learn one observation ``x`` (F values) of entity ``i``."""
        self.learn_many(np.array([i]), np.asarray(x, dtype=np.float64).reshape(1, -1))

    # -- reading -------------------------------------------------------------------------

    def stats_many(self, idx: np.ndarray) -> BaselineStats:
        """Statistics of entities ``idx`` (repeats allowed); never-learned ones are empty.

        Examples
        --------
        >>> s = RobustBaseline(n_features=2).stats_many(np.array([3]))
        >>> s.count.tolist(), s.center.tolist(), s.spread.astype(float).round(2).tolist()
        ([0], [[0.0, 0.0]], [[0.35, 0.35]])
        """
        idx = as_index(idx, distinct=False)
        if getattr(self, "count_", None) is None:
            shape = (idx.size, self.n_features)
            return BaselineStats(
                center=np.zeros(shape, np.float32),
                spread=np.full(shape, self.min_spread, np.float32),
                count=np.zeros(idx.size, np.int32),
                max=np.full(shape, np.nan, np.float32),
            )
        count = gather(self.count_, idx, 0)
        spread = gather(self.spread_, idx, self.min_spread)
        spread[count == 0] = self.min_spread
        return BaselineStats(
            center=gather(self.center_, idx, 0.0),
            spread=spread,
            count=count,
            max=gather(self.max_, idx, np.nan),
        )

    def _blend(
        self, idx: np.ndarray, prior: BaselineStats | None, prior_weight: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        own = self.stats_many(idx)
        n = own.count.astype(np.float64)
        center = own.center.astype(np.float64)
        spread = own.spread.astype(np.float64)
        if prior is None:
            return center, spread, n > 0
        if len(prior) != idx.size:
            raise ValueError(f"prior has {len(prior)} rows for {idx.size} entities")
        has_prior = prior.count > 0
        # A prior with no history of its own is no prior at all.
        w = np.where(has_prior, n / (n + prior_weight), 1.0)[:, None]
        center = w * center + (1.0 - w) * prior.center
        spread = w * spread + (1.0 - w) * prior.spread
        return center, spread, (n > 0) | has_prior

    def score_many(
        self,
        idx: np.ndarray,
        X: np.ndarray,
        prior: BaselineStats | None = None,
        prior_weight: float = 5.0,
    ) -> np.ndarray:
        """Robust z of each value against the entity's baseline, shrunk to ``prior``.

        ``z = (log1p(x) - c) / max(s, min_spread)`` with ``c``, ``s`` the entity's centre
        and spread blended with ``prior``'s by ``w = n / (n + prior_weight)``. Pure.

        Parameters
        ----------
        idx
            (n,) entity indices (repeats allowed: scoring changes nothing).
        X
            (n, F) raw non-negative values.
        prior
            Statistics of each row's peer group (``n`` rows), e.g. from ``stats_many``.
        prior_weight
            Observations of its own an entity needs to weigh as much as its prior.

        Returns
        -------
        numpy.ndarray
            (n, F) float64 z; > 0 means above the entity's normal.
        """
        idx = as_index(idx, distinct=False)
        x = self._check_x(idx, X)
        center, spread, _ = self._blend(idx, prior, prior_weight)
        return (np.log1p(x) - center) / np.maximum(spread, self.min_spread)

    def score_one(self, i: int, x) -> np.ndarray:
        """(F,) robust z of observation ``x`` of entity ``i`` (no prior)."""
        return self.score_many(np.array([i]), np.asarray(x, dtype=np.float64).reshape(1, -1))[0]

    def typical_many(
        self, idx: np.ndarray, prior: BaselineStats | None = None, prior_weight: float = 5.0
    ) -> np.ndarray:
        """(n, F) typical raw value, ``expm1`` of the blended centre; NaN with no history."""
        idx = as_index(idx, distinct=False)
        center, _, known = self._blend(idx, prior, prior_weight)
        out = np.expm1(center)
        out[~known] = np.nan
        return out

    def take_rows(self, idx: np.ndarray) -> EntityRows:
        """Copies of the learned rows of entities ``idx`` (see :meth:`put_rows`)."""
        return take_rows(self, _FILLS, idx)

    def put_rows(self, idx: np.ndarray, rows: EntityRows) -> None:
        """Set entities ``idx`` to rows :meth:`take_rows` gave (another instance's, whose
        entities have other indices here): a user's baseline moving between processes."""
        put_rows(self, _FILLS, idx, rows)

    @property
    def nbytes(self) -> int:
        """Bytes of learned per-entity arrays (0 before the first learn)."""
        arrays = tuple(_FILLS)
        return sum(getattr(self, a).nbytes for a in arrays if hasattr(self, a))

    # -- internals -----------------------------------------------------------------------

    def _check_x(self, idx: np.ndarray, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.shape != (idx.size, self.n_features):
            raise ValueError(f"X must have shape ({idx.size}, {self.n_features}), got {x.shape}")
        if x.size and not (np.isfinite(x).all() and float(x.min()) >= 0.0):
            raise ValueError("X must hold finite values >= 0")
        return x

    def _grow(self, needed: int) -> None:
        f = (self.n_features,)
        self.center_ = grown(getattr(self, "center_", None), needed, f, 0.0, np.float32)
        self.spread_ = grown(getattr(self, "spread_", None), needed, f, 0.0, np.float32)
        self.count_ = grown(getattr(self, "count_", None), needed, (), 0, np.int32)
        self.max_ = grown(getattr(self, "max_", None), needed, f, np.nan, np.float32)
