"""AlertBudget: the threshold follows the score distribution and the budget, on event time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import AlertBudget

DAY = 86_400.0
T0 = 1.7e9


def _fed(scale: float, days: int = 30, per_day: int = 200, seed: int = 0, **kw) -> AlertBudget:
    rng = np.random.default_rng(seed)
    m = AlertBudget(**kw)
    for d in range(days):
        m.learn_many(np.abs(rng.normal(0, scale, per_day)), now=T0 + d * DAY)
    return m


def test_min_score_until_a_day_was_seen() -> None:
    m = AlertBudget(min_score=4.0)
    assert m.threshold() == 4.0
    m.learn_many(np.full(1000, 30.0), now=T0)
    m.learn_many(np.full(1000, 30.0), now=T0 + 0.5 * DAY)
    assert m.threshold() == 4.0
    m.learn_many(np.full(1000, 30.0), now=T0 + 1.0 * DAY)
    assert m.threshold() > 29.0


def test_threshold_meets_the_budget() -> None:
    m = _fed(scale=3.0, alerts_per_day=4.0)
    t = m.threshold()
    assert m.expected_per_day(t) == pytest.approx(4.0, rel=1e-6)
    # |N(0, 3)| at 200 per day: P(score >= t) = 4/200 => t ~ 3 * 2.326.
    assert t == pytest.approx(3 * 2.326, rel=0.1)


def test_threshold_adapts_to_the_distribution() -> None:
    calm, noisy = _fed(scale=2.0), _fed(scale=6.0)
    assert noisy.threshold() == pytest.approx(3 * calm.threshold(), rel=0.1)


def test_threshold_respects_min_score() -> None:
    m = _fed(scale=0.2, min_score=3.0)
    assert m.threshold() == 3.0
    assert m.decide_many(np.array([2.9, 3.0])).tolist() == [False, True]


def test_bigger_budget_lower_threshold() -> None:
    assert _fed(scale=3.0, alerts_per_day=20.0).threshold() < _fed(scale=3.0).threshold()


def test_old_behaviour_fades_with_event_time() -> None:
    m = _fed(scale=6.0, days=20, half_life_days=5.0)
    high = m.threshold()
    rng = np.random.default_rng(1)
    for d in range(20, 60):
        m.learn_many(np.abs(rng.normal(0, 2.0, 200)), now=T0 + d * DAY)
    assert m.threshold() < high / 2


def test_result_does_not_depend_on_how_a_round_is_split() -> None:
    rng = np.random.default_rng(2)
    scores = np.abs(rng.normal(0, 3, (10, 100)))
    one, split = AlertBudget(), AlertBudget()
    for d in range(10):
        one.learn_many(scores[d], now=T0 + d * DAY)
        split.learn_many(scores[d, :30], now=T0 + d * DAY)
        split.learn_many(scores[d, 30:], now=T0 + d * DAY)
    assert one.threshold() == split.threshold()


def test_scores_beyond_the_range_and_empty_rounds() -> None:
    m = AlertBudget(max_score=10.0, bins=10)
    m.learn_many(np.array([-1.0, 1e9]), now=T0)
    assert m.hist_[0] == 1.0 and m.hist_[-1] == 1.0
    m.learn_many(np.array([]), now=T0 + 2 * DAY)  # time passes without windows
    assert m.exposure_days_ == pytest.approx(2.0, rel=0.1)
    assert math.isnan(AlertBudget().expected_per_day(5.0))
    with pytest.raises(ValueError):
        m.learn_many(np.array([np.nan]), now=T0)


def test_a_share_of_the_stream_gets_that_share_of_the_budget() -> None:
    # one of two processes sees half the windows: with half the budget it picks the
    # threshold the whole stream's budget would
    rng = np.random.default_rng(3)
    whole, half = AlertBudget(alerts_per_day=4.0), AlertBudget(alerts_per_day=4.0)
    for day in range(20):
        scores = np.abs(rng.normal(0, 2, 200))
        whole.learn_many(scores, now=day * 86_400.0)
        half.learn_many(scores[::2], now=day * 86_400.0)
    assert half.threshold(0.5) == pytest.approx(whole.threshold(), rel=0.05)
    assert half.threshold() < whole.threshold()  # the whole budget each: more alerts
    with pytest.raises(ValueError, match="share"):
        half.threshold(0.0)
