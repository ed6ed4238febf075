"""A multivariate secondary signal: river's Half-Space Trees over squashed robust z-scores.

The per-feature baselines judge each feature alone; :class:`HalfSpaceScorer` looks at the
joint shape (many templates *and* many tables *and* few rows, say) with
``river.anomaly.HalfSpaceTrees``, an online isolation-forest variant.

Caveat (from river's documentation): Half-Space Trees work well when anomalies are spread
out, and poorly when anomalies come packed together in windows. We feed it window
*aggregates* already scored against per-user baselines (robust z, so users of very
different volume share one space), and use it only as a secondary signal next to the
per-feature z-scores, never as the sole reason for an alert.

HST assumes features in [0, 1], so each z is squashed by ``1 / (1 + exp(-z / 2))``: z = 0
maps to 0.5, z = 3 to 0.82, z = 10 to 0.99 (the /2 keeps the z range that matters, 0-8,
away from the saturated ends where the random splits could not separate it).

The scorer loops over rows in Python (river is per-row): the detector calls it only on a
small deterministic subsample to learn and on candidate windows to score.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> hst = HalfSpaceScorer(features=("rows", "tables"), window_size=64)
>>> hst.learn_many(rng.normal(0, 1, (256, 2)))
>>> normal = hst.score_one({"rows": 0.2, "tables": -0.1})
>>> bulk = hst.score_one({"rows": 9.0, "tables": 6.0})
>>> bool(bulk > normal), 0.0 <= normal <= 1.0
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from river.anomaly import HalfSpaceTrees

#: z is divided by this before the logistic squash (see the module docstring).
_Z_SCALE = 2.0


def _squash(z: float) -> float:
    if not math.isfinite(z):
        raise ValueError(f"z-scores must be finite, got {z}")
    # exp overflows beyond ~709; the squash is 0/1 long before.
    return 1.0 / (1.0 + math.exp(-max(min(z / _Z_SCALE, 700.0), -700.0)))


class HalfSpaceScorer:
    """Half-Space Trees over logistic-squashed robust z-scores; score in [0, 1].

    Parameters
    ----------
    features
        Names of the z-score features, in the column order of ``learn_many``'s ``Z``.
        A feature missing from a ``learn_one``/``score_one`` mapping counts as z = 0
        (typical); names not listed are ignored.
    n_trees, height, window_size
        As in ``river.anomaly.HalfSpaceTrees``; scores are 0 until the first
        ``window_size`` observations have been learned.
    seed
        Seed of the random trees: same seed and same inputs give the same scores.

    Attributes
    ----------
    hst_ : river.anomaly.HalfSpaceTrees
        The forest, built on the first learn.

    Examples
    --------
    >>> hst = HalfSpaceScorer(features=("a",), window_size=4)
    >>> hst.score_one({"a": 0.0})  # nothing learned yet
    0.0
    >>> for z in [0.1, -0.2, 0.0, 0.3]:
    ...     hst.learn_one({"a": z})
    >>> hst.score_one({"a": 0.0}) < hst.score_one({"a": 12.0})
    True
    """

    def __init__(
        self,
        features: tuple[str, ...],
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 128,
        seed: int = 42,
    ) -> None:
        if not features or len(set(features)) != len(features):
            raise ValueError("features must be a non-empty tuple of distinct names")
        self.features = tuple(features)
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed

    def _row(self, x: Mapping[str, float]) -> dict[str, float]:
        return {f: _squash(float(x.get(f, 0.0))) for f in self.features}

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Learn one row of z-scores (feature name -> z)."""
        if getattr(self, "hst_", None) is None:
            self.hst_ = HalfSpaceTrees(
                n_trees=self.n_trees,
                height=self.height,
                window_size=self.window_size,
                seed=self.seed,
            )
        self.hst_.learn_one(self._row(x))

    def score_one(self, x: Mapping[str, float]) -> float:
        """Anomaly score in [0, 1] of one row (higher = more anomalous). Pure."""
        if getattr(self, "hst_", None) is None:
            return 0.0
        return float(self.hst_.score_one(self._row(x)))

    def _rows(self, Z: np.ndarray) -> np.ndarray:
        z = np.asarray(Z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.features):
            raise ValueError(f"Z must have shape (n, {len(self.features)}), got {z.shape}")
        return z

    def learn_many(self, Z: np.ndarray) -> None:
        """Learn each row of ``Z`` ((n, F) z-scores, columns in ``features`` order), in order."""
        for row in self._rows(Z).tolist():
            self.learn_one(dict(zip(self.features, row, strict=True)))

    def score_many(self, Z: np.ndarray) -> np.ndarray:
        """(n,) scores in [0, 1] of the rows of ``Z``. Pure."""
        rows = self._rows(Z).tolist()
        return np.array(
            [self.score_one(dict(zip(self.features, r, strict=True))) for r in rows],
            dtype=np.float64,
        )
