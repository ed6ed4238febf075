"""Learned peer groups for users without a configured role (scikit-learn mini-batch k-means).

A new user is judged against their peer group's baselines from day one. When the
configuration names a role, the role is the group; otherwise :class:`PeerClusters` groups
users by a profile vector (for example the centres of their baselines, ``log1p`` scale)
with ``sklearn.cluster.MiniBatchKMeans`` updated online by ``partial_fit``.

Rows are buffered until there are at least ``n_clusters`` of them (k-means needs that many
to initialise); ``assign_many`` returns -1 until then.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> desk = rng.normal([2.0, 1.0], 0.1, (20, 2))
>>> analysts = rng.normal([8.0, 0.5], 0.1, (20, 2))
>>> pc = PeerClusters(n_clusters=2)
>>> pc.assign_many(desk[:1]).tolist()
[-1]
>>> pc.learn_many(np.vstack([desk, analysts]))
>>> a = pc.assign_many(np.array([[2.1, 0.9], [7.9, 0.6]]))
>>> bool(a[0] != a[1]), bool((pc.assign_many(desk) == a[0]).all())
(True, True)
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import MiniBatchKMeans


class PeerClusters:
    """Online k-means peer groups over per-entity profile vectors.

    Parameters
    ----------
    n_clusters
        Number of peer groups.
    seed
        ``random_state`` of the k-means: same seed and same inputs give the same groups.

    Attributes
    ----------
    kmeans_ : sklearn.cluster.MiniBatchKMeans
        The fitted model (after the first ``n_clusters`` rows).
    pending_ : numpy.ndarray
        Rows buffered before the first fit.

    Examples
    --------
    ``score_many`` is the distance to the nearest group (0 before fitting): a profile
    unlike every group stands out.

    >>> import numpy as np
    >>> pc = PeerClusters(n_clusters=2, seed=1)
    >>> pc.learn_many(np.array([[0.0], [0.1], [5.0], [5.1]]))
    >>> pc.score_many(np.array([[0.05], [40.0]])).round(2).tolist()
    [0.0, 34.95]
    """

    def __init__(self, n_clusters: int = 8, seed: int = 0) -> None:
        if n_clusters < 1:
            raise ValueError("n_clusters must be >= 1")
        self.n_clusters = n_clusters
        self.seed = seed

    def _check(self, profiles: np.ndarray) -> np.ndarray:
        p = np.asarray(profiles, dtype=np.float64)
        if p.ndim != 2 or not np.isfinite(p).all():
            raise ValueError(f"profiles must be a finite 2-D array, got shape {p.shape}")
        width = getattr(self, "n_features_", None)
        if width is not None and p.shape[1] != width:
            raise ValueError(f"profiles must have {width} columns, got {p.shape[1]}")
        return p

    def learn_many(self, profiles: np.ndarray) -> None:
        """Update the groups with (n, d) profile rows (buffered until ``n_clusters`` rows)."""
        p = self._check(profiles)
        if p.shape[0] == 0:
            return
        self.n_features_ = p.shape[1]
        if getattr(self, "kmeans_", None) is None:
            pending = getattr(self, "pending_", None)
            p = p if pending is None else np.vstack([pending, p])
            if p.shape[0] < self.n_clusters:
                self.pending_ = p
                return
            self.pending_ = None
            self.kmeans_ = MiniBatchKMeans(
                n_clusters=self.n_clusters, n_init=1, random_state=self.seed
            )
        self.kmeans_.partial_fit(p)

    def learn_one(self, profile) -> None:
        """Update the groups with one profile vector."""
        self.learn_many(np.asarray(profile, dtype=np.float64).reshape(1, -1))

    def assign_many(self, profiles: np.ndarray) -> np.ndarray:
        """(n,) int64 peer group of each profile, -1 before the groups are fitted."""
        p = self._check(profiles)
        if getattr(self, "kmeans_", None) is None:
            return np.full(p.shape[0], -1, dtype=np.int64)
        return self.kmeans_.predict(p).astype(np.int64)

    def score_many(self, profiles: np.ndarray) -> np.ndarray:
        """(n,) Euclidean distance to the nearest group centre (0 before fitting)."""
        p = self._check(profiles)
        if getattr(self, "kmeans_", None) is None:
            return np.zeros(p.shape[0])
        return self.kmeans_.transform(p).min(axis=1)
