"""Online anomaly models, vectorised over entities (users and peer groups).

In the style of river (one model per module, ``__init__`` stores only its parameters,
learned state is built on the first learn in attributes ending in ``_``, everything
pickles, higher score = more anomalous), but per-entity state lives in float32 numpy arrays
indexed by an integer entity index, so 10^5 users cost a few hundred bytes each and a
batch of windows is scored in one vectorised call.

| module | model |
|---|---|
| ``contract`` | :class:`EntityModel`, :class:`PopulationModel`, :class:`Decider` (the contract) |
| ``baseline`` | :class:`RobustBaseline`: robust EW centre/spread of log1p features, peer priors |
| ``hour_profile`` | :class:`HourProfile`: per-entity hour-of-day activity, surprise in bits |
| ``cusum`` | :class:`Cusum`: per-entity one-sided CUSUM of z-scores (low-and-slow) |
| ``calibration`` | :class:`AlertBudget`: the decider, a threshold calibrated to alerts per day |
| ``multivariate`` | :class:`HalfSpaceScorer`: river Half-Space Trees over squashed z-scores |
| ``peer_clusters`` | :class:`PeerClusters`: scikit-learn mini-batch k-means peer groups |
| ``state`` | :func:`save_state` / :func:`load_state`: versioned, atomic pickles |
| ``entity_index`` | array growth helpers and :func:`distinct_rounds` |
"""

from models.baseline import BaselineStats, RobustBaseline
from models.calibration import AlertBudget
from models.contract import Decider, EntityModel, PopulationModel
from models.cusum import Cusum
from models.entity_index import distinct_rounds
from models.exceptions import ModelsError, StateError
from models.hour_profile import HourProfile
from models.multivariate import HalfSpaceScorer
from models.peer_clusters import PeerClusters
from models.state import load_state, save_state

__all__ = [
    "AlertBudget",
    "BaselineStats",
    "Cusum",
    "Decider",
    "EntityModel",
    "HalfSpaceScorer",
    "HourProfile",
    "ModelsError",
    "PeerClusters",
    "PopulationModel",
    "RobustBaseline",
    "StateError",
    "distinct_rounds",
    "load_state",
    "save_state",
]
