"""The numbers of an evaluation, as frozen dataclasses with a JSON form.

:class:`EvaluationResult` is what ``exfil-detector evaluate`` prints, writes with
``--json`` and what :func:`detector.lab.evaluation.report.render_markdown` renders; delays are
seconds of event time, rates false (user, day) pairs per 100 active user-days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

#: Version of the JSON form (bumped when a key changes meaning).
JSON_VERSION = 1


@dataclass(frozen=True)
class KindScore:
    """Caught labels and detection delays of one scenario kind (or a pool of kinds)."""

    kind: str
    caught: int
    total: int
    median_delay_s: float | None
    max_delay_s: float | None

    @property
    def hit_rate(self) -> float | None:
        """Share of the labels caught (``None`` without labels).

        >>> KindScore("enumeration", 1, 2, 60.0, 60.0).hit_rate
        0.5
        """
        return self.caught / self.total if self.total else None


@dataclass(frozen=True)
class DetectorScore:
    """How one detector did on one logs directory.

    Attributes
    ----------
    name, description
        Short name (``ours``, ``dam_statement`` ...) and what the detector does.
    kinds
        One score per scenario kind of the labels (fixed kind order, then by name).
    overall
        All positive labels.
    burst
        All positive labels except ``low_and_slow`` (delays pooled for the 5-minute target).
    after_warmup
        The positive labels that start after the warm-up (what a detector that learns
        during the warm-up can be asked to catch).
    alerts
        Detections counted (ours: severity medium or higher).
    false_pairs, active_user_days, false_per_100
        Distinct (user, UTC day) pairs of false alerts detected after the warm-up, the
        (user, day) pairs with a statement after the warm-up, and 100 x their ratio.
    warmup_alerts, warmup_false_alerts
        Detections during the warm-up, and how many of them were false.
    hard_negatives_alerted, hard_negatives
        Hard-negative labels a false alert of their user overlapped, and their number.
    note
        Anything that limits the numbers (e.g. a model that could not be trained).
    """

    name: str
    description: str
    kinds: tuple[KindScore, ...]
    overall: KindScore
    burst: KindScore
    after_warmup: KindScore
    alerts: int
    false_pairs: int
    active_user_days: int
    false_per_100: float | None
    warmup_alerts: int
    warmup_false_alerts: int
    hard_negatives_alerted: int
    hard_negatives: int
    note: str = ""

    def kind(self, kind: str) -> KindScore | None:
        """The score of ``kind``, if the labels have it."""
        return next((k for k in self.kinds if k.kind == kind), None)


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluate run: what was read, and every detector's score (ours first)."""

    logs: str
    db: str
    files: tuple[str, ...]
    statements: int
    users: int
    first_event: dt.datetime
    last_event: dt.datetime
    warmup_days: int
    warmup_end: dt.datetime
    rows_logged_share: float
    detectors: tuple[DetectorScore, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times ISO-8601, delays in seconds).

        >>> r = EvaluationResult("d", "postgres", ("a.csv",), 1, 1,
        ...     dt.datetime(2024, 3, 4, tzinfo=dt.UTC), dt.datetime(2024, 3, 5, tzinfo=dt.UTC),
        ...     3, dt.datetime(2024, 3, 7, tzinfo=dt.UTC), 1.0, ())
        >>> EvaluationResult.from_json(r.to_json()) == r
        True
        """
        doc = asdict(self)
        for key in ("first_event", "last_event", "warmup_end"):
            doc[key] = doc[key].isoformat()
        return {"version": JSON_VERSION, **_plain(doc)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationResult:
        """The result :meth:`to_json` wrote (e.g. to render several runs as Markdown)."""
        data = {k: v for k, v in doc.items() if k != "version"}
        for key in ("first_event", "last_event", "warmup_end"):
            data[key] = dt.datetime.fromisoformat(data[key])
        data["files"] = tuple(data["files"])
        data["detectors"] = tuple(_detector(d) for d in data["detectors"])
        return cls(**data)


def _plain(value: Any) -> Any:
    """Tuples as lists, all the way down: what ``json.loads`` gives back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _detector(doc: dict[str, Any]) -> DetectorScore:
    data = dict(doc)
    data["kinds"] = tuple(KindScore(**k) for k in data["kinds"])
    for key in ("overall", "burst", "after_warmup"):
        data[key] = KindScore(**data[key])
    return DetectorScore(**data)
