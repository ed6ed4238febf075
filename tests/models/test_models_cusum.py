"""Cusum over daily z-scores of a RobustBaseline: low-and-slow adds up, one busy day does not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models import Cusum, RobustBaseline

#: Decision level of the multi-day statistic in these tests.
H = 5.0


def _day(base: RobustBaseline, cusum: Cusum, rows: float) -> float:
    """One day's round: score, accumulate, then learn (nothing alerted)."""
    idx, x = np.array([0]), np.array([[rows]])
    z = base.score_many(idx, x)
    s = float(cusum.score_many(idx, z)[0, 0])
    cusum.learn_many(idx, z)
    base.learn_many(idx, x)
    return s


def _habit(seed: int = 0) -> tuple[RobustBaseline, Cusum, np.random.Generator]:
    rng = np.random.default_rng(seed)
    base, cusum = RobustBaseline(n_features=1), Cusum(n_features=1)
    for rows in rng.lognormal(np.log(300), 0.15, 30):
        _day(base, cusum, rows)
    return base, cusum, rng


def test_normal_days_keep_the_statistic_low() -> None:
    _, cusum, _ = _habit()
    assert float(cusum.S_[0, 0]) < 1.5


def test_a_single_busy_day_does_not_accumulate() -> None:
    base, cusum, rng = _habit()
    s_busy = _day(base, cusum, 2 * 300.0)
    later = [_day(base, cusum, r) for r in rng.lognormal(np.log(300), 0.15, 5)]
    assert s_busy < H
    assert later[-1] < 0.5


@pytest.mark.parametrize(("factor", "days"), [(2.0, 4), (2.5, 4), (3.0, 3)])
def test_sustained_excess_accumulates(factor: float, days: int) -> None:
    base, cusum, rng = _habit()
    path = [_day(base, cusum, factor * r) for r in rng.lognormal(np.log(300), 0.15, days)]
    assert path[0] < H, path  # no single day of it is enough ...
    assert path[-1] > H, path  # ... but the run is
    assert all(b > a for a, b in itertools.pairwise(path))


def test_reset_after_alert() -> None:
    cusum = Cusum(n_features=2)
    cusum.learn_many(np.array([0, 1]), np.array([[5.0, 5.0], [5.0, 5.0]]))
    cusum.reset_many(np.array([1, 99]))  # 99 was never seen: ignored
    assert cusum.S_[:2].tolist() == [[4.5, 4.5], [0.0, 0.0]]


def test_decay_forgets() -> None:
    plain, leaky = Cusum(n_features=1), Cusum(n_features=1, decay=0.5)
    for m in (plain, leaky):
        m.learn_one(0, [10.0])
    assert plain.score_one(0, [0.5])[0] == pytest.approx(9.5)
    assert leaky.score_one(0, [0.5])[0] == pytest.approx(4.75)


def test_distinct_indices_and_finite_z_required() -> None:
    with pytest.raises(ValueError):
        Cusum(n_features=1).learn_many(np.array([0, 0]), np.ones((2, 1)))
    with pytest.raises(ValueError):
        Cusum(n_features=1).score_many(np.array([0]), np.array([[np.nan]]))
