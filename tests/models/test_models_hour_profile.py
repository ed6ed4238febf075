"""HourProfile: surprise in bits, peer priors, ordered decay within a batch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import HourProfile


def test_no_history_no_prior_is_uniform() -> None:
    bits = HourProfile().score_many(np.array([0, 5]), np.array([3, 14]))
    np.testing.assert_allclose(bits, math.log2(24))


def test_new_entity_is_scored_as_its_peers() -> None:
    groups = HourProfile()
    groups.learn_many(np.full(300, 2), np.tile([9, 10, 11, 14, 15], 60))
    users = HourProfile()
    users.learn_many(np.array([0] * 50), np.full(50, 22))  # a night-shift user, not the new one
    hours = np.arange(24)
    new = users.score_many(np.full(24, 7), hours, prior_idx=np.full(24, 2), prior=groups)
    peers = groups.score_many(np.full(24, 2), hours)
    np.testing.assert_allclose(new, peers)
    assert new[3] > new[10] + 4  # 03:00 is surprising for this group


def test_own_history_takes_over_from_the_prior() -> None:
    groups = HourProfile()
    groups.learn_many(np.zeros(300, dtype=int), np.full(300, 10))
    users = HourProfile()
    pidx = np.array([0])
    before = users.score_many(np.array([1]), np.array([22]), prior_idx=pidx, prior=groups)[0]
    users.learn_many(np.ones(200, dtype=int), np.full(200, 22))
    after = users.score_many(np.array([1]), np.array([22]), prior_idx=pidx, prior=groups)[0]
    assert before > 7.0
    assert after < 0.5


def test_negative_prior_index_means_uniform_and_same_model_is_default_prior() -> None:
    m = HourProfile()
    m.learn_many(np.full(100, 4), np.full(100, 12))
    bits = m.score_many(np.array([0, 0]), np.array([12, 12]), prior_idx=np.array([-1, 4]))
    assert bits[0] == pytest.approx(math.log2(24))
    assert bits[1] < 1.0


def test_batch_with_repeats_equals_one_by_one() -> None:
    rng = np.random.default_rng(0)
    idx, hours = rng.integers(0, 6, 500), rng.integers(0, 24, 500)
    batch, single = HourProfile(half_life=20.0), HourProfile(half_life=20.0)
    batch.learn_many(idx, hours)
    for i, h in zip(idx.tolist(), hours.tolist(), strict=True):
        single.learn_one(i, h)
    np.testing.assert_allclose(batch.counts_[:6], single.counts_[:6], rtol=1e-4)


def test_decay_keeps_counts_bounded() -> None:
    m = HourProfile(half_life=10.0)
    m.learn_many(np.zeros(1000, dtype=int), np.full(1000, 9))
    # Steady state of an EW count: 1 / (1 - 2**(-1/10)) ~ 14.9.
    assert float(m.counts_[0].sum()) == pytest.approx(1 / (1 - 2 ** (-1 / 10)), rel=1e-3)
    assert m.counts_.dtype == np.float32


@pytest.mark.parametrize("hours", [np.array([24]), np.array([-1]), np.array([1.5])])
def test_invalid_hours_raise(hours: np.ndarray) -> None:
    with pytest.raises(ValueError):
        HourProfile().learn_many(np.array([0]), hours)


def test_fold_scores_as_a_24_hour_profile_of_the_summed_days() -> None:
    week = HourProfile(bins=48)
    rng = np.random.default_rng(0)
    week.learn_many(rng.integers(0, 50, 2000), rng.integers(0, 48, 2000))
    day = HourProfile(bins=24)
    day.counts_ = week.counts_.reshape(-1, 2, 24).sum(axis=1)
    idx, hours = rng.integers(0, 60, 500), rng.integers(0, 48, 500)  # some never seen
    groups = rng.integers(-1, 50, 500)  # some without a group
    folded = week.score_many(idx, hours, prior_idx=groups, fold=True)
    assert np.allclose(folded, day.score_many(idx, hours % 24, prior_idx=groups))
