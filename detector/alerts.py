"""Alerts: what an analyst reads, one per burst of a user's activity, and how it is written.

:class:`Alert` is one alert at one revision; :class:`~detector.alert_book.AlertBook` makes
and updates them from threat-rule matches. Output is JSON Lines (:func:`write_jsonl`), one
object per alert, keys in the order of :meth:`Alert.to_json`; times are ISO-8601 with
microseconds and offset. As a last line of defence against leaking personal data,
:meth:`Alert.to_json` replaces every run of 7 or more digits (with an optional ``X`` check
character: ID and phone numbers) in reasons and evidence by ``?``; evidence statements
already arrive with their literals redacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from detector.exceptions import AlertError

#: Reasons and evidence statements an alert keeps at most.
MAX_REASONS: Final = 6
MAX_EVIDENCE: Final = 5
#: Runs of digits long enough to be an ID or phone number (ID check character X).
SCRUB_PATTERN: Final = re.compile(r"\d{7,}[Xx]?")


def scrub(text: str) -> str:
    """Replace every run of >= 7 digits (optionally ending in X) by ``?``.

    >>> scrub("WHERE id_no = '11010519491231002X' OR phone = 13812345678 LIMIT 100")
    "WHERE id_no = '?' OR phone = ? LIMIT 100"
    """
    return SCRUB_PATTERN.sub("?", text)


def iso(t: datetime) -> str:
    """ISO-8601 with microseconds and offset; naive times are taken as UTC.

    >>> iso(datetime(2024, 3, 6, 10, 47, 12, 345000))
    '2024-03-06T10:47:12.345000+00:00'
    """
    return utc(t).isoformat(timespec="microseconds")


def utc(t: datetime) -> datetime:
    """``t`` in UTC; naive times are taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def alert_id(user: str, kind: str, start: datetime) -> str:
    """Deterministic alert id: the first 16 hex digits of sha256("user|kind|start iso").

    >>> alert_id("d07", "smash_and_grab", datetime(2024, 3, 6, 10, tzinfo=UTC))
    'a4600576eaeab54d'
    """
    return hashlib.sha256(f"{user}|{kind}|{iso(start)}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Evidence:
    """One statement shown as evidence (literals already redacted)."""

    time: datetime
    statement: str
    rows: int | None
    tables: tuple[str, ...]
    sensitive_rows: int | None = None  # ranks evidence; not written out


@dataclass(frozen=True)
class Alert:
    """One alert, at one revision (made and updated by the alert book)."""

    id: str
    revision: int
    user: str
    kind: str
    severity: str
    score: float
    start: datetime
    end: datetime
    detected_at: datetime
    updated_at: datetime
    reasons: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    tables: tuple[str, ...]
    client_ips: tuple[str, ...]
    rule_ids: tuple[str, ...]
    attack: tuple[str, ...]
    triage: str
    role: str
    kinds: tuple[str, ...] = ()
    status: str = "open"
    #: (score, rule id, reasons) of the best match of each rule: ``reasons`` is built
    #: from it, so an alert that grew over many windows explains each pattern once.
    best_by_rule: tuple[tuple[float, str, tuple[str, ...]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object written for this alert (keys in output order, text scrubbed)."""
        return {
            "id": self.id,
            "revision": self.revision,
            "user": self.user,
            "kind": self.kind,
            "severity": self.severity,
            "score": round(self.score, 2),
            "start": iso(self.start),
            "end": iso(self.end),
            "detected_at": iso(self.detected_at),
            "updated_at": iso(self.updated_at),
            "reasons": [scrub(r) for r in self.reasons],
            "evidence": [
                {"time": iso(e.time), "statement": scrub(e.statement), "rows": e.rows}
                | {"tables": list(e.tables)}
                for e in self.evidence
            ],
            "tables": list(self.tables),
            "client_ips": list(self.client_ips),
            "rule_ids": list(self.rule_ids),
            "kinds": list(self.kinds or (self.kind,)),
            "attack": list(self.attack),
            "triage": self.triage,
            "role": self.role,
            "status": self.status,
        }


def write_jsonl(alerts: Iterable[Alert], path: str | Path) -> None:
    """Write one JSON object per alert, atomically (a temp file renamed over ``path``).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_jsonl([], Path(d) / "alerts.jsonl")
    ...     (Path(d) / "alerts.jsonl").read_text()
    ''
    """
    path = Path(path)
    text = "".join(json.dumps(a.to_json(), ensure_ascii=False) + "\n" for a in alerts)
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as fh:
            tmp = fh.name
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise AlertError(f"{path}: cannot write alerts: {exc}") from exc
