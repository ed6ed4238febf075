"""Per-entity one-sided CUSUM over z-scores: sustained small excesses add up.

A low-and-slow exfiltration reads a few hundred extra rows every day: each day's z is
modest (2x the usual is z ~ 2 with the default ``min_spread``), well within what one busy
day does. Page's CUSUM accumulates the excess over an allowance,

    S <- max(0, decay·S + z - allowance)

so a single busy day leaves a small ``S`` that normal days wash out, while the same excess
sustained for several days climbs past a decision level. The detector resets an entity
after it alerts (:meth:`Cusum.reset_many`) so the next alert needs fresh evidence.

>>> import numpy as np
>>> cusum = Cusum(n_features=1)
>>> for z in [0.1, -0.3, 2.0, -0.5, -0.4]:  # one busy day, washed out
...     cusum.learn_one(0, [z])
>>> cusum.score_one(0, [0.0]).tolist()
[0.0]
>>> for z in [2.5, 2.6, 2.4]:  # three days at ~2.5x the usual
...     cusum.learn_one(1, [z])
>>> cusum.score_one(1, [2.5]).round(1).tolist()
[8.0]
"""

from __future__ import annotations

import numpy as np

from models.entity_index import EntityRows, as_index, gather, grown, put_rows, take_rows


class Cusum:
    """Per-entity one-sided CUSUM statistic for each of ``n_features`` z-score series.

    Parameters
    ----------
    n_features
        Series per entity (columns of ``Z``).
    allowance
        z excess each observation may have for free (``k`` in Page's CUSUM).
    decay
        Multiplier of the previous statistic (1 = classic CUSUM; < 1 forgets slowly).

    Attributes
    ----------
    S_ : numpy.ndarray
        (n_entities, F) float32 current statistic.

    Examples
    --------
    >>> import numpy as np
    >>> cusum = Cusum(n_features=2)
    >>> cusum.learn_many(np.array([0, 1]), np.array([[3.0, 0.0], [1.0, 1.0]]))
    >>> cusum.score_many(np.array([0, 1]), np.array([[3.0, 0.0], [0.0, 0.0]])).tolist()
    [[5.0, 0.0], [0.0, 0.0]]
    >>> cusum.reset_many(np.array([0]))
    >>> cusum.score_many(np.array([0]), np.array([[3.0, 0.0]])).tolist()
    [[2.5, 0.0]]
    """

    def __init__(self, n_features: int, allowance: float = 0.5, decay: float = 1.0) -> None:
        if n_features < 1 or allowance < 0 or not 0 < decay <= 1:
            raise ValueError("need n_features >= 1, allowance >= 0, 0 < decay <= 1")
        self.n_features = n_features
        self.allowance = allowance
        self.decay = decay

    def score_many(self, idx: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """(n, F) statistic each (distinct) entity would have after ``Z``. Pure."""
        idx = as_index(idx, distinct=True)
        z = self._check_z(idx, Z)
        if getattr(self, "S_", None) is None:
            s = np.zeros(z.shape)
        else:
            s = gather(self.S_, idx, 0.0).astype(np.float64)
        return np.maximum(0.0, self.decay * s + z - self.allowance)

    def learn_many(self, idx: np.ndarray, Z: np.ndarray) -> None:
        """Apply ``Z`` to the (distinct) entities ``idx`` (inputs not mutated)."""
        new = self.score_many(idx, Z)
        idx = as_index(idx, distinct=True)
        if idx.size == 0:
            return
        self.S_ = grown(
            getattr(self, "S_", None), int(idx.max()) + 1, (self.n_features,), 0.0, np.float32
        )
        self.S_[idx] = new

    def reset_many(self, idx: np.ndarray) -> None:
        """Zero the statistic of entities ``idx`` (after they raised an alert)."""
        idx = as_index(idx, distinct=False)
        if getattr(self, "S_", None) is not None:
            self.S_[idx[idx < self.S_.shape[0]]] = 0.0

    def learn_one(self, i: int, z) -> None:
        """Apply the z-scores ``z`` (F values) to entity ``i``."""
        self.learn_many(np.array([i]), np.asarray(z, dtype=np.float64).reshape(1, -1))

    def score_one(self, i: int, z) -> np.ndarray:
        """(F,) statistic entity ``i`` would have after ``z``."""
        return self.score_many(np.array([i]), np.asarray(z, dtype=np.float64).reshape(1, -1))[0]

    def take_rows(self, idx: np.ndarray) -> EntityRows:
        """Copies of the statistic of entities ``idx`` (see :meth:`put_rows`)."""
        return take_rows(self, {"S_": 0.0}, idx)

    def put_rows(self, idx: np.ndarray, rows: EntityRows) -> None:
        """Set entities ``idx`` to rows :meth:`take_rows` gave (another instance's)."""
        put_rows(self, {"S_": 0.0}, idx, rows)

    @property
    def nbytes(self) -> int:
        """Bytes of learned per-entity arrays (0 before the first learn)."""
        return self.S_.nbytes if hasattr(self, "S_") else 0

    def _check_z(self, idx: np.ndarray, Z: np.ndarray) -> np.ndarray:
        z = np.asarray(Z, dtype=np.float64)
        if z.shape != (idx.size, self.n_features):
            raise ValueError(f"Z must have shape ({idx.size}, {self.n_features}), got {z.shape}")
        if not np.isfinite(z).all():
            raise ValueError("Z must be finite")
        return z
