"""PeerClusters: buffering before the first fit, separation of roles, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from models import PeerClusters

CENTRES = np.array([[1.0, 5.0, 0.0], [6.0, 1.0, 2.0], [9.0, 8.0, 7.0]])


def _profiles(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    role = rng.integers(0, 3, n)
    return CENTRES[role] + rng.normal(0, 0.3, (n, 3)), role


def test_unfitted_until_n_clusters_rows() -> None:
    m = PeerClusters(n_clusters=3)
    p, _ = _profiles(5)
    m.learn_many(p[:2])
    assert m.assign_many(p).tolist() == [-1] * 5
    assert m.score_many(p).tolist() == [0.0] * 5
    m.learn_one(p[2])
    assert (m.assign_many(p) >= 0).all()


def test_roles_are_recovered() -> None:
    m = PeerClusters(n_clusters=3, seed=0)
    p, role = _profiles(600)
    for chunk in np.array_split(p, 6):
        m.learn_many(chunk)
    got = m.assign_many(p)
    # Each true role maps to exactly one cluster.
    for r in range(3):
        assert np.unique(got[role == r]).size == 1
    assert np.unique(got).size == 3


def test_same_seed_same_groups() -> None:
    p, _ = _profiles(200)
    a, b = PeerClusters(n_clusters=3, seed=9), PeerClusters(n_clusters=3, seed=9)
    a.learn_many(p)
    b.learn_many(p)
    np.testing.assert_array_equal(a.kmeans_.cluster_centers_, b.kmeans_.cluster_centers_)


def test_width_must_not_change() -> None:
    m = PeerClusters(n_clusters=2)
    m.learn_many(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        m.assign_many(np.zeros((1, 2)))
