"""Ablations: the detector with one of its parts taken away, to measure what the part earns
(``exfil-detector evaluate --without NAME``, ``bench/ablation.py``).

- ``multivariate``: no river HalfSpaceTrees term in the score of matched windows;
- ``peer-clusters``: no learned peer groups (users without a role stay with everyone);
- ``roles``: no configured roles and no service roles, as a deployment before anyone has
  written its ``[peers]``: where learned peer groups have to do the work.

>>> from detector.config import Config
>>> ablate(Config(roles=(("officer*", "desk"),)), {"roles", "multivariate"}).roles
()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from detector.config import Config
from detector.lab.evaluation.errors import EvaluationError

ABLATIONS: Final[Mapping[str, Callable[[Config], Config]]] = {
    "multivariate": lambda c: dataclasses.replace(c, multivariate=False),
    "peer-clusters": lambda c: dataclasses.replace(c, peer_clusters=False),
    "roles": lambda c: dataclasses.replace(c, roles=(), service_roles=frozenset()),
}


def ablate(config: Config, without: Iterable[str]) -> Config:
    """``config`` without the named parts (:data:`ABLATIONS`)."""
    for name in sorted(set(without)):
        if name not in ABLATIONS:
            raise EvaluationError(f"--without {name!r}: not one of {', '.join(ABLATIONS)}")
        config = ABLATIONS[name](config)
    return config
