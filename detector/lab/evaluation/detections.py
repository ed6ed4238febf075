"""What every detector is scored on: one :class:`Detection` per alert it raised.

Our alerts and the five baselines' alerts are reduced to the same small record (who, which
activity, when it fired, why), so one piece of code (:mod:`detector.lab.evaluation.matching`)
scores them all. Only our alerts of severity medium or higher count: ``low`` is the
detector's "worth a look" tier, not a page; a baseline's every alert counts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.alerts import Alert
from detector.lab.evaluation.errors import EvaluationError

#: Severities of our alerts that count as raised.
SEVERE: Final = frozenset({"medium", "high", "critical"})
_TIME: Final = pl.Datetime("us", "UTC")
_TIMES: Final = ("start", "end", "detected_at")
DETECTION_SCHEMA: Final = pl.Schema(
    {"user": pl.String, "start": _TIME, "end": _TIME, "detected_at": _TIME, "reason": pl.String}
)


@dataclass(frozen=True)
class Detection:
    """One alert of any detector.

    Attributes
    ----------
    user
        The database user the alert is about.
    start, end
        First and last statement of the activity it reports (UTC).
    detected_at
        Event time at which it fired (UTC).
    reason
        One line saying why (kind and severity for ours, the rule's numbers for a baseline).
    """

    user: str
    start: dt.datetime
    end: dt.datetime
    detected_at: dt.datetime
    reason: str


def utc(t: dt.datetime) -> dt.datetime:
    """``t`` in UTC; naive times are taken as UTC.

    >>> utc(dt.datetime(2024, 3, 6, 10)).isoformat()
    '2024-03-06T10:00:00+00:00'
    """
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def detections_frame(detections: Sequence[Detection]) -> pl.DataFrame:
    """The detections as a frame with :data:`DETECTION_SCHEMA` (what matching reads).

    >>> t = dt.datetime(2024, 3, 6, 10, tzinfo=dt.UTC)
    >>> detections_frame([Detection("d07", t, t, t, "x")]).schema == DETECTION_SCHEMA
    True
    """
    return pl.DataFrame(
        {
            "user": [d.user for d in detections],
            "start": [utc(d.start) for d in detections],
            "end": [utc(d.end) for d in detections],
            "detected_at": [utc(d.detected_at) for d in detections],
            "reason": [d.reason for d in detections],
        },
        schema=DETECTION_SCHEMA,
    )


def detections_from_frame(frame: pl.DataFrame) -> list[Detection]:
    """Rows of a frame with the :data:`DETECTION_SCHEMA` columns as detections (how each
    baseline hands its alerts over), ordered by detection time, user and start."""
    rows = (
        frame.select([pl.col(c).cast(t) for c, t in DETECTION_SCHEMA.items()])
        .sort("detected_at", "user", "start", "reason")
        .iter_rows()
    )
    return [Detection(*row) for row in rows]


def from_alerts(alerts: Iterable[Alert]) -> list[Detection]:
    """Our alerts of severity medium or higher as detections.

    >>> from detector.alerts import alert_id
    >>> t = dt.datetime(2024, 3, 6, 10, tzinfo=dt.UTC)
    >>> alerts = [Alert(alert_id("d07", "enumeration", t), 1, "d07", "enumeration", sev, 5.0,
    ...                 t, t, t, t, (), (), (), (), (), (), "", "desk")
    ...           for sev in ("low", "high")]
    >>> [d.reason for d in from_alerts(alerts)]
    ['enumeration (high)']
    """
    return [
        Detection(a.user, utc(a.start), utc(a.end), utc(a.detected_at), f"{a.kind} ({a.severity})")
        for a in alerts
        if a.severity in SEVERE
    ]


def read_alerts_jsonl(path: Path) -> list[Detection]:
    """Our alerts from an ``--alerts-out`` JSON Lines file (medium or higher only).

    Raises
    ------
    EvaluationError
        The file cannot be read, a line is not JSON, or an alert lacks a key or a time.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read alerts file {path}: {exc.strerror}") from exc
    detections = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc: dict[str, Any] = json.loads(line)
            severity = str(doc["severity"])
            kind = str(doc.get("kind", "?"))
            times = [utc(dt.datetime.fromisoformat(doc[k])) for k in _TIMES]
            user = str(doc["user"])
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        except KeyError as exc:
            raise EvaluationError(f"{path}:{number}: alert lacks {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{path}:{number}: bad alert time: {exc}") from exc
        if severity in SEVERE:
            detections.append(Detection(user, *times, f"{kind} ({severity})"))
    return detections
