"""One check suite every model in ``models/`` must pass (river's ``check_estimator`` idea).

Each model is registered as a :class:`Case` with adapters to train and score it on normal
and anomalous data; ``test_every_model_is_registered`` fails when a module in ``models/``
defines a class with ``learn_one``/``learn_many`` that is not in :data:`CASES`, so a new
model cannot skip the suite.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import models
from models import (
    AlertBudget,
    Cusum,
    HalfSpaceScorer,
    HourProfile,
    PeerClusters,
    RobustBaseline,
)

Data = tuple[np.ndarray, ...]
N_ENT = 40


@dataclass(frozen=True)
class Case:
    """How to build, train and score one model class on synthetic data."""

    cls: type
    make: Callable[[], Any]
    learn: Callable[[Any, Data], None]
    score: Callable[[Any, Data], np.ndarray]
    train: Callable[[int], Data]
    probe: Callable[[int], Data]
    anomalous: Callable[[], Data]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- RobustBaseline: rounds of one window per entity -------------------------------------


def _baseline_learn(m: RobustBaseline, data: Data) -> None:
    idx, X = data
    for r in range(X.shape[0]):
        m.learn_many(idx, X[r])


BASELINE = Case(
    cls=RobustBaseline,
    make=lambda: RobustBaseline(n_features=3, half_life=10.0),
    learn=_baseline_learn,
    score=lambda m, d: m.score_many(d[0], d[1]).max(axis=1),
    train=lambda s: (np.arange(N_ENT), _rng(s).lognormal(np.log(100), 0.3, (25, N_ENT, 3))),
    probe=lambda s: (np.arange(N_ENT), _rng(s).lognormal(np.log(100), 0.3, (N_ENT, 3))),
    anomalous=lambda: (np.arange(5), np.full((5, 3), 1e6)),
)


# -- HourProfile: office hours ------------------------------------------------------------


def _hours_learn(m: HourProfile, data: Data) -> None:
    idx, hours = data
    half = idx.size // 2
    m.learn_many(idx[:half], hours[:half])
    m.learn_many(idx[half:], hours[half:])


HOURS = Case(
    cls=HourProfile,
    make=lambda: HourProfile(half_life=100.0),
    learn=_hours_learn,
    score=lambda m, d: m.surprise_many(d[0], d[1]),
    train=lambda s: (_rng(s).integers(0, N_ENT, 4000), _rng(s + 1).integers(9, 17, 4000)),
    probe=lambda s: (np.arange(N_ENT), _rng(s).integers(9, 17, N_ENT)),
    anomalous=lambda: (np.arange(5), np.full(5, 3)),
)


# -- Cusum: z-scores of normal days ---------------------------------------------------------


def _cusum_learn(m: Cusum, data: Data) -> None:
    idx, Z = data
    for r in range(Z.shape[0]):
        m.learn_many(idx, Z[r])


CUSUM = Case(
    cls=Cusum,
    make=lambda: Cusum(n_features=2),
    learn=_cusum_learn,
    score=lambda m, d: m.score_many(d[0], d[1]).max(axis=1),
    train=lambda s: (np.arange(N_ENT), _rng(s).normal(0, 1, (30, N_ENT, 2))),
    probe=lambda s: (np.arange(N_ENT), _rng(s).normal(0, 1, (N_ENT, 2))),
    anomalous=lambda: (np.arange(5), np.full((5, 2), 12.0)),
)


# -- AlertBudget: daily rounds of window scores ---------------------------------------------


def _budget_learn(m: AlertBudget, data: Data) -> None:
    scores, times = data
    for r in range(times.size):
        m.learn_many(scores[r], now=float(times[r]))


BUDGET = Case(
    cls=AlertBudget,
    make=lambda: AlertBudget(alerts_per_day=3.0),
    learn=_budget_learn,
    # Rarer per day = more anomalous.
    score=lambda m, d: -np.array([m.expected_per_day(float(s)) for s in d[0]]),
    train=lambda s: (np.abs(_rng(s).normal(0, 2, (20, 100))), 1.7e9 + 86_400.0 * np.arange(20)),
    probe=lambda s: (np.abs(_rng(s).normal(0, 2, 100)),),
    anomalous=lambda: (np.array([30.0, 40.0, 49.0]),),
)


# -- HalfSpaceScorer: rows of z-scores --------------------------------------------------------

HST = Case(
    cls=HalfSpaceScorer,
    make=lambda: HalfSpaceScorer(features=("a", "b", "c"), window_size=64, seed=7),
    learn=lambda m, d: m.learn_many(d[0]),
    score=lambda m, d: m.score_many(d[0]),
    train=lambda s: (_rng(s).normal(0, 1, (256, 3)),),
    probe=lambda s: (_rng(s).normal(0, 1, (60, 3)),),
    anomalous=lambda: (np.full((4, 3), 9.0),),
)


# -- PeerClusters: profiles from three roles ------------------------------------------------

_ROLES = np.array([[1.0, 4.0], [5.0, 1.0], [8.0, 6.0]])


def _profiles(seed: int, n: int) -> np.ndarray:
    rng = _rng(seed)
    return _ROLES[rng.integers(0, 3, n)] + rng.normal(0, 0.2, (n, 2))


def _clusters_learn(m: PeerClusters, data: Data) -> None:
    (profiles,) = data
    m.learn_many(profiles[:2])  # fewer than n_clusters: buffered
    m.learn_many(profiles[2:])


CLUSTERS = Case(
    cls=PeerClusters,
    make=lambda: PeerClusters(n_clusters=3, seed=5),
    learn=_clusters_learn,
    score=lambda m, d: m.score_many(d[0]),
    train=lambda s: (_profiles(s, 300),),
    probe=lambda s: (_profiles(s, 50),),
    anomalous=lambda: (np.array([[20.0, 20.0], [-10.0, 0.0]]),),
)

CASES = [BASELINE, HOURS, CUSUM, BUDGET, HST, CLUSTERS]
IDS = [c.cls.__name__ for c in CASES]


def _frozen(data: Data) -> Data:
    out = []
    for a in data:
        a = np.array(a)
        a.flags.writeable = False  # any in-place write raises
        out.append(a)
    return tuple(out)


def _trained(case: Case) -> Any:
    m = case.make()
    case.learn(m, case.train(0))
    return m


def test_every_model_is_registered() -> None:
    registered = {c.cls for c in CASES}
    found = set()
    for info in pkgutil.iter_modules(models.__path__):
        mod = importlib.import_module(f"models.{info.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and (
                hasattr(cls, "learn_one") or hasattr(cls, "learn_many")
            ):
                found.add(cls)
    missing = sorted(c.__qualname__ for c in found - registered)
    assert not missing, f"add these models to CASES in {__file__}: {missing}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inputs_not_mutated(case: Case) -> None:
    m = case.make()
    train, probe = _frozen(case.train(0)), _frozen(case.probe(1))
    copies = [a.copy() for a in (*train, *probe)]
    case.learn(m, train)
    case.score(m, probe)
    for before, after in zip(copies, (*train, *probe), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pickle_round_trip(case: Case) -> None:
    m = _trained(case)
    clone = pickle.loads(pickle.dumps(m))
    probe = case.probe(1)
    np.testing.assert_array_equal(case.score(m, probe), case.score(clone, probe))
    bad = case.anomalous()
    np.testing.assert_array_equal(case.score(m, bad), case.score(clone, bad))
    more = case.train(2)
    case.learn(m, more)
    case.learn(clone, more)
    np.testing.assert_array_equal(case.score(m, probe), case.score(clone, probe))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_input_same_result(case: Case) -> None:
    a, b = _trained(case), _trained(case)
    probe = case.probe(1)
    np.testing.assert_array_equal(case.score(a, probe), case.score(b, probe))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_anomalous_scores_higher(case: Case) -> None:
    m = _trained(case)
    normal = case.score(m, case.probe(1))
    anomalous = case.score(m, case.anomalous())
    assert anomalous.min() > np.quantile(normal, 0.9), (anomalous, normal)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_init_stores_only_its_parameters(case: Case) -> None:
    m = case.make()
    params = set(inspect.signature(case.cls).parameters)
    assert set(vars(m)) == params
    learned = [name for name in vars(m) if name.endswith("_")]
    assert not learned, f"{case.cls.__name__} builds learned state in __init__: {learned}"


ENTITY_CASES = [c for c in CASES if hasattr(c.cls, "take_rows")]


def test_per_entity_models_can_move_rows() -> None:
    # the models that keep rows per user are exactly those a user's handover moves
    assert {c.cls for c in ENTITY_CASES} == {RobustBaseline, HourProfile, Cusum}


@pytest.mark.parametrize("case", ENTITY_CASES, ids=[c.cls.__name__ for c in ENTITY_CASES])
def test_rows_moved_to_another_instance_score_the_same(case: Case) -> None:
    # a rebalance moves some users' rows to another process's model, under other
    # indices; there they must score and keep learning exactly as they would have
    m = _trained(case)
    moved = np.arange(N_ENT)[::3]
    there = np.arange(moved.size)[::-1] + 5  # other indices, other order
    other = case.make()
    case.learn(other, case.train(9))  # the receiver has users of its own
    stale = other.take_rows(there)  # rows of those indices before the move
    other.put_rows(there, m.take_rows(moved))
    assert any(v is not None for v in stale.values())
    probe = case.probe(1)
    here = tuple(a[moved] for a in probe)
    away = (there, *here[1:])
    np.testing.assert_array_equal(case.score(m, here), case.score(other, away))
    # a user the sender never learned: the receiver's stale rows are reset, not kept
    other.put_rows(there[:1], case.make().take_rows(moved[:1]))
    one = tuple(a[:1] for a in here)
    np.testing.assert_array_equal(
        case.score(other, (there[:1], *one[1:])), case.score(case.make(), one)
    )
