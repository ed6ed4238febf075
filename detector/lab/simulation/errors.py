"""Errors of the simulator.

>>> issubclass(DialectError, SimulationError), issubclass(SimulationError, DetectorError)
(True, True)
"""

from __future__ import annotations

from detector.exceptions import DetectorError


class SimulationError(DetectorError):
    """Root of the simulator's errors: a server that cannot be started, reached or read."""


class DialectError(SimulationError, ValueError):
    """A planned statement uses PostgreSQL syntax the MariaDB translation does not know."""
