"""The issue's targets, checked against an evaluation (ours is the first detector).

- false alerts <= 0.5 (user, day) pairs per 100 active user-days, after a warm-up of at
  most 3 days;
- median detection delay <= 5 minutes for burst scenarios (every kind but
  ``low_and_slow``, pooled) and <= 1 day for ``low_and_slow``;
- better than every baseline on both hit rate and false alarms: here, no worse on either
  and strictly better on at least one (two detectors that both catch everything without
  a false alert tie, and a tie is reported as not met).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from detector.lab.evaluation.results import DetectorScore, EvaluationResult, KindScore

MAX_FALSE_PER_100: Final = 0.5
MAX_WARMUP_DAYS: Final = 3
MAX_BURST_DELAY: Final = dt.timedelta(minutes=5)
MAX_SLOW_DELAY: Final = dt.timedelta(days=1)


@dataclass(frozen=True)
class TargetCheck:
    """One target: what it asks, what was measured, whether it is met (``None``: the
    logs cannot tell, e.g. no label of that kind)."""

    target: str
    actual: str
    met: bool | None


def format_delay(seconds: float | None) -> str:
    """A delay for people: seconds, minutes, hours or days.

    >>> [format_delay(s) for s in (None, 12.0, 95.0, 9000.0, 200000.0)]
    ['-', '12 s', '1.6 min', '2.5 h', '2.3 d']
    """
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_span(delta: dt.timedelta) -> str:
    """A whole span for rules and targets.

    >>> [format_span(dt.timedelta(minutes=m)) for m in (5, 60, 1440, 2880)]
    ['5 min', '1 h', '1 day', '2 days']
    """
    seconds = int(delta.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("s" if days != 1 else "")
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return format_delay(delta.total_seconds())


def format_rate(rate: float | None) -> str:
    """False alerts per 100 active user-days, or ``-`` when there were no user-days."""
    return "-" if rate is None else f"{rate:.2f}"


def _delay_check(name: str, score: KindScore | None, limit: dt.timedelta) -> TargetCheck:
    target = f"median delay <= {format_span(limit)}, {name}"
    if score is None or score.total == 0:
        return TargetCheck(target, "no such labels", None)
    actual = f"{format_delay(score.median_delay_s)} ({score.caught}/{score.total} caught)"
    met = score.median_delay_s is not None and score.median_delay_s <= limit.total_seconds()
    return TargetCheck(target, actual, met)


def _versus(ours: DetectorScore, other: DetectorScore) -> TargetCheck:
    target = f"better than {other.name} on hit rate and false alarms"
    hit, their_hit = ours.overall.hit_rate, other.overall.hit_rate
    rate, their_rate = ours.false_per_100, other.false_per_100
    actual = (
        f"caught {ours.overall.caught}/{ours.overall.total} vs {other.overall.caught}"
        f"/{other.overall.total}, false {format_rate(rate)} vs {format_rate(their_rate)}"
    )
    if hit is None or their_hit is None or rate is None or their_rate is None:
        return TargetCheck(target, actual, None)
    no_worse = hit >= their_hit and rate <= their_rate
    return TargetCheck(target, actual, no_worse and (hit > their_hit or rate < their_rate))


def check_targets(result: EvaluationResult) -> tuple[TargetCheck, ...]:
    """Every target, for the first detector of ``result`` against the others."""
    if not result.detectors:
        return ()
    ours, *others = result.detectors
    rate = ours.false_per_100
    checks = [
        TargetCheck(
            f"false alerts <= {MAX_FALSE_PER_100} per 100 active user-days, "
            f"warm-up <= {MAX_WARMUP_DAYS} days",
            f"{format_rate(rate)} ({ours.false_pairs} / {ours.active_user_days}), "
            f"warm-up {result.warmup_days} days",
            None
            if rate is None
            else rate <= MAX_FALSE_PER_100 and result.warmup_days <= MAX_WARMUP_DAYS,
        ),
        _delay_check("burst kinds", ours.burst, MAX_BURST_DELAY),
        _delay_check("low_and_slow", ours.kind("low_and_slow"), MAX_SLOW_DELAY),
    ]
    checks.extend(_versus(ours, other) for other in others)
    return tuple(checks)
