"""The five baselines ``exfil-detector evaluate`` compares the detector with.

Each runs on the statement frame of the same logs
(:mod:`detector.lab.evaluation.statements`) and returns a
:class:`~detector.lab.evaluation.baselines.run.BaselineRun`; the same matching code scores
them all. :data:`BASELINES` lists them in report order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import polars as pl

from detector.lab.evaluation.baselines import (
    daily_sigma,
    dam_hourly,
    dam_statement,
    isolation_forest,
    sentinel,
)
from detector.lab.evaluation.baselines.run import BaselineRun


@dataclass(frozen=True)
class Baseline:
    """A named detection rule over the statement frame."""

    name: str
    description: str
    detect: Callable[..., BaselineRun]

    def run(self, statements: pl.DataFrame, warmup_end: dt.datetime) -> BaselineRun:
        """Its alerts on ``statements`` (event-time order)."""
        return self.detect(statements, warmup_end=warmup_end)


BASELINES: Final = tuple(
    Baseline(m.NAME, m.DESCRIPTION, m.detect)
    for m in (dam_statement, dam_hourly, daily_sigma, isolation_forest, sentinel)
)

__all__ = ["BASELINES", "Baseline", "BaselineRun"]
