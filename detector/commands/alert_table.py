"""The fixed-width alert table printed at the end of a replay."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from detector.alerts import Alert, scrub
from detector.rules.schema import SEVERITIES

_HEADERS = ("ID", "SEVERITY", "KIND", "USER", "START (UTC)", "END (UTC)", "SCORE", "TOP REASON")


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def format_alert_table(alerts: Sequence[Alert], *, reason_width: int = 70) -> str:
    """A fixed-width table, one line per alert in the given order, and a summary line.

    The top reason is the alert's first (that of its highest-scoring match), cut to
    ``reason_width`` characters and scrubbed of long digit runs like the JSON output.
    Alerts an analyst closed show their status next to the severity.

    Examples
    --------
    >>> from detector.alerts import Alert
    >>> t = datetime(2024, 3, 6, 10, 47, tzinfo=UTC)
    >>> a = Alert("a4600576eaeab54d", 1, "d07", "smash_and_grab", "critical", 12.345, t, t, t,
    ...           t, ("read 200,000 sensitive rows of national_id",), (), (), (), ("EXF-001",),
    ...           ("T1213",), "check", "desk")
    >>> print(format_alert_table([a], reason_width=30))
    ID                SEVERITY  KIND            USER  START (UTC)       END (UTC)         SCORE  TOP REASON
    a4600576eaeab54d  critical  smash_and_grab  d07   2024-03-06 10:47  2024-03-06 10:47  12.35  read 200,000 sensitive row...
    1 alert: 1 critical
    >>> print(format_alert_table([]))
    no alerts
    """  # noqa: E501
    if not alerts:
        return "no alerts"
    rows = [
        (
            a.id,
            a.severity if a.status == "open" else f"{a.severity} ({a.status})",
            a.kind,
            a.user,
            _when(a.start),
            _when(a.end),
            f"{a.score:.2f}",
            _truncate(scrub(a.reasons[0]) if a.reasons else "", reason_width),
        )
        for a in alerts
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    right = {_HEADERS.index("SCORE")}

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    counts = Counter(a.severity for a in alerts)
    summary = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts[s])
    noun = "alert" if len(alerts) == 1 else "alerts"
    return "\n".join([line(_HEADERS), *(line(r) for r in rows), f"{len(alerts)} {noun}: {summary}"])
