"""The contract every model implements by name: ``learn_many`` and ``score_many``, higher =
more anomalous (river's ``learn_one`` / ``score_one``, vectorised over a batch).

Three shapes, each a :class:`typing.Protocol` the check suite
(``tests/models/test_models_checks.py``) calls directly:

- :class:`EntityModel`: state per entity (user or peer group), rows of a batch belong to
  the entities ``idx``; its rows move to another instance in a rebalance
  (``take_rows`` / ``put_rows``). :class:`~models.baseline.RobustBaseline`,
  :class:`~models.hour_profile.HourProfile`, :class:`~models.cusum.Cusum`.
- :class:`PopulationModel`: one state for all rows. :class:`~models.multivariate.HalfSpaceScorer`,
  :class:`~models.peer_clusters.PeerClusters`.
- :class:`Decider`: not a model of behaviour but the threshold over scores (deciding is
  separate from scoring, and learns only from what it did not flag):
  :class:`~models.calibration.AlertBudget`.

Scoring is pure (it changes no state); a score has one row per input row (a column per
feature where the model scores features apart).

>>> import numpy as np
>>> from models import Cusum, HalfSpaceScorer, AlertBudget
>>> isinstance(Cusum(n_features=1), EntityModel)
True
>>> isinstance(HalfSpaceScorer(features=("a",)), PopulationModel)
True
>>> isinstance(AlertBudget(), Decider), isinstance(AlertBudget(), EntityModel)
(True, False)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from models.entity_index import EntityRows


@runtime_checkable
class EntityModel(Protocol):
    """Per-entity state; ``idx`` (n,) says whose row each of ``X``'s n rows is."""

    def learn_many(self, idx: np.ndarray, X: np.ndarray) -> None:
        """Learn the rows (in order per entity)."""

    def score_many(self, idx: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(n,) or (n, F) scores, higher = more anomalous; pure."""
        ...

    def take_rows(self, idx: np.ndarray) -> EntityRows:
        """These entities' state rows (a copy), for another instance."""
        ...

    def put_rows(self, idx: np.ndarray, rows: EntityRows) -> None:
        """Take rows from :meth:`take_rows` of another instance, under indices ``idx``."""

    def nbytes(self) -> int:
        """Bytes of learned state."""
        ...


@runtime_checkable
class PopulationModel(Protocol):
    """One state for every row."""

    def learn_many(self, X: np.ndarray) -> None:
        """Learn the rows, in order."""

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """(n,) scores, higher = more anomalous; pure."""
        ...


@runtime_checkable
class Decider(Protocol):
    """A threshold over scores, learned from scores that were not flagged."""

    def learn_many(self, scores: np.ndarray, now: float) -> None:
        """Learn the scores seen at time ``now`` (epoch seconds)."""

    def decide_many(self, scores: np.ndarray) -> np.ndarray:
        """(n,) bool: which scores are worth an alert; pure."""
        ...


__all__ = ["Decider", "EntityModel", "PopulationModel"]
