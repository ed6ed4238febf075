"""HalfSpaceScorer: bounded scores, determinism, missing features."""

from __future__ import annotations

import numpy as np
import pytest

from models import HalfSpaceScorer

FEATURES = ("rows", "tables", "templates")


def _trained(seed: int = 42) -> HalfSpaceScorer:
    m = HalfSpaceScorer(features=FEATURES, window_size=50, seed=seed)
    m.learn_many(np.random.default_rng(0).normal(0, 1, (200, 3)))
    return m


def test_scores_are_bounded_and_zero_before_the_first_window() -> None:
    m = HalfSpaceScorer(features=FEATURES, window_size=50)
    m.learn_many(np.zeros((49, 3)))
    assert m.score_many(np.full((2, 3), 9.0)).tolist() == [0.0, 0.0]
    s = _trained().score_many(np.random.default_rng(1).normal(0, 4, (100, 3)))
    assert ((s >= 0) & (s <= 1)).all()


def test_same_seed_same_scores_other_seed_other_trees() -> None:
    probe = np.random.default_rng(1).normal(0, 3, (50, 3))
    np.testing.assert_array_equal(_trained().score_many(probe), _trained().score_many(probe))
    assert not np.array_equal(_trained().score_many(probe), _trained(seed=1).score_many(probe))


def test_missing_features_count_as_typical_and_extra_ones_are_ignored() -> None:
    m = _trained()
    full = m.score_one({"rows": 8.0, "tables": 0.0, "templates": 0.0})
    assert m.score_one({"rows": 8.0, "other": 99.0}) == full


def test_rows_and_mappings_agree() -> None:
    m = _trained()
    z = np.array([[5.0, -1.0, 2.0]])
    assert m.score_many(z)[0] == m.score_one(dict(zip(FEATURES, z[0].tolist(), strict=True)))


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros(3)])
def test_wrong_shape_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        _trained().score_many(bad)
