"""RobustBaseline: robustness, start-up, priors, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models import RobustBaseline


def _learned(values: list[float], **kw) -> RobustBaseline:
    m = RobustBaseline(n_features=1, **kw)
    for v in values:
        m.learn_one(0, [v])
    return m


def test_first_observations_are_averaged_not_biased_to_zero() -> None:
    m = _learned([100.0])
    assert m.center_[0, 0] == pytest.approx(np.log1p(100.0), rel=1e-6)
    assert m.spread_[0, 0] == 0.0
    m.learn_one(0, [400.0])
    assert m.center_[0, 0] == pytest.approx((np.log1p(100.0) + np.log1p(400.0)) / 2, rel=1e-6)
    assert m.spread_[0, 0] == pytest.approx(np.log1p(400.0) - np.log1p(100.0), rel=1e-6)


def test_one_huge_outlier_barely_moves_the_baseline() -> None:
    rng = np.random.default_rng(3)
    m = _learned(list(rng.lognormal(np.log(200), 0.2, 40)))
    before = m.stats_many(np.array([0]))
    m.learn_one(0, [5e7])  # a 250,000x window
    after = m.stats_many(np.array([0]))
    assert abs(float(after.center[0, 0] - before.center[0, 0])) < 0.05
    assert abs(float(after.spread[0, 0] - before.spread[0, 0])) < 0.05
    assert after.max[0, 0] == pytest.approx(5e7)
    # The next normal window still looks normal, the next bulk one still bulk.
    assert abs(m.score_one(0, [200.0])[0]) < 1.0
    assert m.score_one(0, [5e7])[0] > 20.0


def test_a_lasting_change_of_habit_is_learned() -> None:
    m = _learned([100.0] * 30)
    z_first = m.score_one(0, [1000.0])[0]
    for _ in range(80):
        m.learn_one(0, [1000.0])
    assert z_first > 5.0
    assert m.score_one(0, [1000.0])[0] < 1.0


def test_unseen_entity_without_prior() -> None:
    m = _learned([50.0])
    idx, x = np.array([9, 10_000]), np.array([[20.0], [20.0]])
    np.testing.assert_allclose(m.score_many(idx, x), np.log1p(x) / 0.35)
    assert np.isnan(m.typical_many(idx)).all()
    s = m.stats_many(idx)
    assert s.count.tolist() == [0, 0]
    assert np.isnan(s.max).all()


def test_new_entity_is_judged_against_its_prior_then_its_own_history() -> None:
    group = _learned([1000.0, 1100.0, 900.0, 1000.0, 1050.0])
    users = RobustBaseline(n_features=1)
    prior = group.stats_many(np.array([0]))
    typical = users.typical_many(np.array([3]), prior=prior)[0, 0]
    assert typical == pytest.approx(float(group.typical_many(np.array([0]))[0, 0]), rel=1e-5)
    z_peer = users.score_many(np.array([3]), np.array([[1000.0]]), prior=prior)[0, 0]
    assert abs(z_peer) < 0.5
    # A user who always reads 10 drifts from the group's 1000 toward their own 10.
    typicals = []
    for _ in range(20):
        users.learn_one(3, [10.0])
        typicals.append(users.typical_many(np.array([3]), prior=prior)[0, 0])
    assert typicals[0] > 100.0  # w = 1/6: still mostly the group
    assert typicals[-1] < 30.0  # w = 20/25 (log scale): mostly their own
    assert all(a > b for a, b in itertools.pairwise(typicals))


def test_prior_without_history_is_ignored() -> None:
    own = _learned([100.0] * 5)
    empty_prior = RobustBaseline(n_features=1).stats_many(np.array([0]))
    x = np.array([[100.0]])
    np.testing.assert_array_equal(
        own.score_many(np.array([0]), x, prior=empty_prior), own.score_many(np.array([0]), x)
    )


def test_state_is_float32_and_grows_by_doubling() -> None:
    m = RobustBaseline(n_features=4)
    m.learn_many(np.array([0, 20]), np.ones((2, 4)))
    assert m.center_.shape == (21, 4)
    m.learn_many(np.array([21]), np.ones((1, 4)))
    assert m.center_.shape == (42, 4)
    assert m.center_.dtype == m.spread_.dtype == m.max_.dtype == np.float32
    assert m.count_.dtype == np.int32
    assert m.count_[:22].tolist() == [1] + [0] * 19 + [1, 1]


@pytest.mark.parametrize(
    ("idx", "X"),
    [
        (np.array([1, 1]), np.ones((2, 2))),  # repeated entity
        (np.array([1]), np.ones((1, 3))),  # wrong width
        (np.array([1]), np.array([[-1.0, 0.0]])),  # negative
        (np.array([1]), np.array([[np.nan, 0.0]])),  # NaN
        (np.array([-1]), np.ones((1, 2))),  # negative index
        (np.array([0.5]), np.ones((1, 2))),  # float index
    ],
)
def test_invalid_input_raises(idx: np.ndarray, X: np.ndarray) -> None:
    with pytest.raises(ValueError):
        RobustBaseline(n_features=2).learn_many(idx, X)


def test_scoring_is_pure_and_allows_repeats() -> None:
    m = _learned([10.0, 12.0, 11.0])
    before = m.center_.copy(), m.spread_.copy(), m.count_.copy()
    z = m.score_many(np.array([0, 0]), np.array([[10.0], [1e4]]))
    assert z[1, 0] > z[0, 0]
    for a, b in zip(before, (m.center_, m.spread_, m.count_), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batch_learning_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    X = rng.lognormal(3, 1, (10, 5, 2))
    batch, single = RobustBaseline(n_features=2), RobustBaseline(n_features=2)
    for r in range(10):
        batch.learn_many(np.arange(5), X[r])
        for i in range(5):
            single.learn_one(i, X[r, i])
    np.testing.assert_array_equal(batch.center_[:5], single.center_[:5])
    np.testing.assert_array_equal(batch.spread_[:5], single.spread_[:5])
