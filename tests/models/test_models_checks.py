"""One check suite every model in ``models/`` must pass (river's ``check_estimator`` idea).

Each model is registered as a :class:`Case`: how to build it and synthetic batches to learn,
probe and flag. The suite calls the contract of :mod:`models.contract` directly
(``learn_many(*batch)``, ``score_many(*batch)``, a decider's ``decide_many``), no adapter
per model; ``test_every_model_is_registered`` fails when a module in ``models/`` defines a
class with ``learn_one``/``learn_many`` that is not in :data:`CASES`, so a new model cannot
skip the suite.
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
from models.contract import Decider, EntityModel, PopulationModel

Data = tuple[Any, ...]
N_ENT = 40


@dataclass(frozen=True)
class Case:
    """How to build one model class, and synthetic data for it: ``train(seed)`` gives the
    batches it learns in order, ``probe(seed)`` a normal batch, ``anomalous()`` a batch it
    must flag."""

    cls: type
    make: Callable[[], Any]
    train: Callable[[int], list[Data]]
    probe: Callable[[int], Data]
    anomalous: Callable[[], Data]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _learn(m: Any, batches: list[Data]) -> None:
    for batch in batches:
        m.learn_many(*batch)


def _judge(m: Any, batch: Data) -> np.ndarray:
    """(n,) per row: a model's score (its highest feature's), a decider's decision."""
    out = m.decide_many(*batch) if isinstance(m, Decider) else m.score_many(*batch)
    out = np.asarray(out, dtype=np.float64)
    return out.reshape(out.shape[0], -1).max(axis=1)


def _baseline_train(seed: int) -> list[Data]:
    X = _rng(seed).lognormal(np.log(100), 0.3, (25, N_ENT, 3))
    return [(np.arange(N_ENT), X[r]) for r in range(25)]


BASELINE = Case(
    cls=RobustBaseline,
    make=lambda: RobustBaseline(n_features=3, half_life=10.0),
    train=_baseline_train,
    probe=lambda s: (np.arange(N_ENT), _rng(s).lognormal(np.log(100), 0.3, (N_ENT, 3))),
    anomalous=lambda: (np.arange(5), np.full((5, 3), 1e6)),
)


# -- HourProfile: office hours ------------------------------------------------------------


def _hours_train(seed: int) -> list[Data]:
    idx, hours = _rng(seed).integers(0, N_ENT, 4000), _rng(seed + 1).integers(9, 17, 4000)
    return [(idx[:2000], hours[:2000]), (idx[2000:], hours[2000:])]


HOURS = Case(
    cls=HourProfile,
    make=lambda: HourProfile(half_life=100.0),
    train=_hours_train,
    probe=lambda s: (np.arange(N_ENT), _rng(s).integers(9, 17, N_ENT)),
    anomalous=lambda: (np.arange(5), np.full(5, 3)),
)


# -- Cusum: z-scores of normal days ---------------------------------------------------------


def _cusum_train(seed: int) -> list[Data]:
    Z = _rng(seed).normal(0, 1, (30, N_ENT, 2))
    return [(np.arange(N_ENT), Z[r]) for r in range(30)]


CUSUM = Case(
    cls=Cusum,
    make=lambda: Cusum(n_features=2),
    train=_cusum_train,
    probe=lambda s: (np.arange(N_ENT), _rng(s).normal(0, 1, (N_ENT, 2))),
    anomalous=lambda: (np.arange(5), np.full((5, 2), 12.0)),
)


# -- AlertBudget (a decider): daily rounds of window scores ---------------------------------


def _budget_train(seed: int) -> list[Data]:
    scores = np.abs(_rng(seed).normal(0, 2, (20, 100)))
    return [(scores[r], 1.7e9 + 86_400.0 * r) for r in range(20)]


BUDGET = Case(
    cls=AlertBudget,
    make=lambda: AlertBudget(alerts_per_day=3.0),
    train=_budget_train,
    probe=lambda s: (np.abs(_rng(s).normal(0, 2, 100)),),
    anomalous=lambda: (np.array([30.0, 40.0, 49.0]),),
)


# -- HalfSpaceScorer: rows of z-scores --------------------------------------------------------

HST = Case(
    cls=HalfSpaceScorer,
    make=lambda: HalfSpaceScorer(features=("a", "b", "c"), window_size=64, seed=7),
    train=lambda s: [(_rng(s).normal(0, 1, (256, 3)),)],
    probe=lambda s: (_rng(s).normal(0, 1, (60, 3)),),
    anomalous=lambda: (np.full((4, 3), 9.0),),
)


# -- PeerClusters: profiles from three roles ------------------------------------------------

_ROLES = np.array([[1.0, 4.0], [5.0, 1.0], [8.0, 6.0]])


def _profiles(seed: int, n: int) -> np.ndarray:
    rng = _rng(seed)
    return _ROLES[rng.integers(0, 3, n)] + rng.normal(0, 0.2, (n, 2))


def _clusters_train(seed: int) -> list[Data]:
    profiles = _profiles(seed, 300)
    return [(profiles[:2],), (profiles[2:],)]  # fewer than n_clusters first: buffered


CLUSTERS = Case(
    cls=PeerClusters,
    make=lambda: PeerClusters(n_clusters=3, seed=5),
    train=_clusters_train,
    probe=lambda s: (_profiles(s, 50),),
    anomalous=lambda: (np.array([[20.0, 20.0], [-10.0, 0.0]]),),
)

CASES = [BASELINE, HOURS, CUSUM, BUDGET, HST, CLUSTERS]
IDS = [c.cls.__name__ for c in CASES]


def _frozen(data: Data) -> Data:
    out: list[Any] = []
    for a in data:
        if isinstance(a, np.ndarray):
            a = a.copy()
            a.flags.writeable = False  # any in-place write raises
        out.append(a)
    return tuple(out)


def _trained(case: Case) -> Any:
    m = case.make()
    _learn(m, case.train(0))
    return m


def test_every_model_is_registered() -> None:
    registered = {c.cls for c in CASES}
    found = set()
    for info in pkgutil.iter_modules(models.__path__):
        mod = importlib.import_module(f"models.{info.name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if (
                cls.__module__ == mod.__name__
                and not getattr(cls, "_is_protocol", False)  # models.contract's shapes
                and (hasattr(cls, "learn_one") or hasattr(cls, "learn_many"))
            ):
                found.add(cls)
    missing = sorted(c.__qualname__ for c in found - registered)
    assert not missing, f"add these models to CASES in {__file__}: {missing}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_model_implements_one_shape_of_the_contract(case: Case) -> None:
    m = case.make()
    shape = next((p for p in (Decider, EntityModel, PopulationModel) if isinstance(m, p)), None)
    assert shape is not None, f"{case.cls.__name__} implements no shape of models.contract"
    learns = list(inspect.signature(case.cls.learn_many).parameters)[1:]
    assert (learns[0] == "idx") is (shape is EntityModel), (shape.__name__, learns)
    if shape is not Decider:  # scores what it learns from: the same leading arguments
        scores = list(inspect.signature(case.cls.score_many).parameters)[1:]
        assert scores[: len(learns)] == learns, (learns, scores)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inputs_not_mutated(case: Case) -> None:
    m = case.make()
    train, probe = [_frozen(b) for b in case.train(0)], _frozen(case.probe(1))
    given = [a for batch in (*train, probe) for a in batch]
    copies = [np.copy(a) for a in given]
    _learn(m, train)
    _judge(m, probe)
    for before, after in zip(copies, given, strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pickle_round_trip(case: Case) -> None:
    m = _trained(case)
    clone = pickle.loads(pickle.dumps(m))
    probe = case.probe(1)
    np.testing.assert_array_equal(_judge(m, probe), _judge(clone, probe))
    bad = case.anomalous()
    np.testing.assert_array_equal(_judge(m, bad), _judge(clone, bad))
    more = case.train(2)
    _learn(m, more)
    _learn(clone, more)
    np.testing.assert_array_equal(_judge(m, probe), _judge(clone, probe))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_same_input_same_result(case: Case) -> None:
    a, b = _trained(case), _trained(case)
    probe = case.probe(1)
    np.testing.assert_array_equal(_judge(a, probe), _judge(b, probe))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_anomalous_scores_higher(case: Case) -> None:
    m = _trained(case)
    normal = _judge(m, case.probe(1))
    anomalous = _judge(m, case.anomalous())
    assert anomalous.min() > np.quantile(normal, 0.9), (anomalous, normal)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_init_stores_only_its_parameters(case: Case) -> None:
    m = case.make()
    params = set(inspect.signature(case.cls).parameters)
    assert set(vars(m)) == params
    learned = [name for name in vars(m) if name.endswith("_")]
    assert not learned, f"{case.cls.__name__} builds learned state in __init__: {learned}"


ENTITY_CASES = [c for c in CASES if isinstance(c.make(), EntityModel)]


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
    _learn(other, case.train(9))  # the receiver has users of its own
    stale = other.take_rows(there)  # rows of those indices before the move
    other.put_rows(there, m.take_rows(moved))
    assert any(v is not None for v in stale.values())
    probe = case.probe(1)
    here = tuple(a[moved] for a in probe)
    away = (there, *here[1:])
    np.testing.assert_array_equal(m.score_many(*here), other.score_many(*away))
    # a user the sender never learned: the receiver's stale rows are reset, not kept
    other.put_rows(there[:1], case.make().take_rows(moved[:1]))
    one = tuple(a[:1] for a in here)
    np.testing.assert_array_equal(
        other.score_many(there[:1], *one[1:]), case.make().score_many(*one)
    )
