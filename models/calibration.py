"""The decider: an anomaly-score threshold calibrated to an alert budget.

Raw anomaly scores are not probabilities, and what "3 sigma" means differs between a
5-minute window and a day. Rather than a fixed threshold, :class:`AlertBudget` learns how
often windows of its scale reach each score and picks the lowest threshold that is expected
to flag at most ``alerts_per_day`` windows per day -- what an analyst team can triage.

It keeps a time-decayed histogram of scores over ``[0, max_score]`` (scores above land in
the last bin) and the decayed *exposure*, the observed event-time span weighted the same
way, so ``mass(score >= t) / exposure`` is an expected number of windows per day. Decay
runs on event time (``now``), never on the wall clock, so a replay is deterministic. The
exposure starts at the first round, whose windows are nevertheless counted, so early
estimates of the rate run slightly high: the threshold errs on the quiet side.

It must learn only from windows it did **not** flag: learning flagged windows would let a
sustained attack raise the threshold until it stops alerting (poisoning). The caller
decides a round, raises alerts, then passes the unflagged scores to ``learn_many``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> budget = AlertBudget(alerts_per_day=2.0)
>>> budget.threshold()  # nothing seen: the floor
3.0
>>> for day in range(30):  # 100 windows a day, scores ~ |N(0, 2)|
...     budget.learn_many(np.abs(rng.normal(0, 2, 100)), now=day * 86_400.0)
>>> t = budget.threshold()
>>> round(t, 1), round(budget.expected_per_day(t), 2)
(4.5, 2.0)
>>> budget.decide_many(np.array([1.0, 40.0])).tolist()
[False, True]
"""

from __future__ import annotations

import math

import numpy as np

_DAY = 86_400.0


class AlertBudget:
    """Threshold of raw anomaly scores such that about ``alerts_per_day`` windows fire.

    Parameters
    ----------
    alerts_per_day
        Expected windows per day at or above the threshold (one object per scale).
    min_score
        The threshold never goes below this (nor while less than a day was observed).
    half_life_days
        Event-time half-life of the histogram: recent behaviour counts more.
    max_score
        Upper end of the histogram; higher scores are counted in the last bin.
    bins
        Histogram bins over ``[0, max_score]`` (the threshold is interpolated within one).

    Attributes
    ----------
    hist_ : numpy.ndarray
        (bins,) float64 decayed counts of learned scores.
    exposure_days_ : float
        Decayed observed event time, in days.
    first_time_, last_time_ : float
        Event times (s since epoch) of the first and latest ``learn_many``.

    Examples
    --------
    The threshold adapts: a scale whose normal scores run high gets a higher threshold.

    >>> import numpy as np
    >>> calm, noisy = AlertBudget(), AlertBudget()
    >>> for day in range(10):
    ...     calm.learn_many(np.linspace(0, 3, 50), now=day * 86_400.0)
    ...     noisy.learn_many(np.linspace(0, 20, 50), now=day * 86_400.0)
    >>> calm.threshold(), round(noisy.threshold(), 1)
    (3.0, 18.4)
    """

    def __init__(
        self,
        alerts_per_day: float = 5.0,
        min_score: float = 3.0,
        half_life_days: float = 14.0,
        max_score: float = 50.0,
        bins: int = 512,
    ) -> None:
        if alerts_per_day <= 0 or half_life_days <= 0 or bins < 1 or not 0 <= min_score < max_score:
            raise ValueError(
                "need alerts_per_day, half_life_days > 0, bins >= 1, 0 <= min_score < max_score"
            )
        self.alerts_per_day = alerts_per_day
        self.min_score = min_score
        self.half_life_days = half_life_days
        self.max_score = max_score
        self.bins = bins

    def learn_many(self, scores: np.ndarray, now: float) -> None:
        """Learn the raw scores of windows decided at event time ``now`` and NOT flagged.

        Time advances even with no scores (an empty round still is observed time). A
        ``now`` earlier than the latest seen is treated as the latest (no decay).

        Parameters
        ----------
        scores
            (n,) finite raw anomaly scores (not mutated).
        now
            Event time of the decision, seconds since the epoch.
        """
        s = np.asarray(scores, dtype=np.float64).ravel()
        if not np.isfinite(s).all() or not math.isfinite(now):
            raise ValueError("scores and now must be finite")
        if getattr(self, "hist_", None) is None:
            self.hist_ = np.zeros(self.bins)
            self.exposure_days_ = 0.0
            self.first_time_ = self.last_time_ = float(now)
        elapsed_days = max(0.0, float(now) - self.last_time_) / _DAY
        if elapsed_days > 0:
            keep = 2.0 ** (-elapsed_days / self.half_life_days)
            self.hist_ *= keep
            # Decayed exposure: integral of 2**(-age/half_life) over the observed span.
            self.exposure_days_ = self.exposure_days_ * keep + (
                self.half_life_days / math.log(2.0) * (1.0 - keep)
            )
            self.last_time_ = float(now)
        width = self.max_score / self.bins
        b = np.clip((s / width).astype(np.int64), 0, self.bins - 1)
        self.hist_ += np.bincount(b, minlength=self.bins)

    def _tail(self) -> np.ndarray:
        """Decayed mass at or above each bin's lower edge (bins + 1 values, last 0)."""
        return np.r_[np.cumsum(self.hist_[::-1])[::-1], 0.0]

    def expected_per_day(self, t: float) -> float:
        """Expected windows per day scoring >= ``t`` (NaN before any time was observed)."""
        if getattr(self, "hist_", None) is None or self.exposure_days_ <= 0:
            return math.nan
        width = self.max_score / self.bins
        pos = min(max(t, 0.0), self.max_score) / width
        j = min(int(pos), self.bins - 1)
        # Scores are taken as uniform within a bin.
        mass = self._tail()[j + 1] + self.hist_[j] * (j + 1 - pos)
        return float(mass / self.exposure_days_)

    def threshold(self, share: float = 1.0) -> float:
        """Smallest score expected to flag <= ``alerts_per_day`` per day, >= ``min_score``.

        ``share``: the fraction of the whole stream whose windows this budget sees (one
        of several processes sharing it), which gets that fraction of the alerts.
        """
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        if getattr(self, "hist_", None) is None or self.last_time_ - self.first_time_ < _DAY:
            return float(self.min_score)
        budget = self.alerts_per_day * share * self.exposure_days_
        tail = self._tail()
        # tail is non-increasing: first edge whose tail fits the budget.
        j = int(np.searchsorted(-tail, -budget, side="left"))
        width = self.max_score / self.bins
        # Inside bin j-1 the tail falls linearly from tail[j-1] to tail[j].
        t = 0.0 if j == 0 else width * (j - (budget - tail[j]) / self.hist_[j - 1])
        return float(max(t, self.min_score))

    def decide_many(self, scores: np.ndarray) -> np.ndarray:
        """(n,) bool: which scores reach the current threshold."""
        return np.asarray(scores, dtype=np.float64) >= self.threshold()
