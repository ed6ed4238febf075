"""The alert book: related threat-rule matches grouped into one alert per burst of activity.

A burst of activity fires several rules over several windows (a dump trips the 5-minute
and the hour rule, then again five minutes later; a stolen login at night trips the
unusual-hour rule and the bulk-read rule); the analyst wants one alert that grows, not a
page of them. :class:`AlertBook` keeps the alerts: a match whose activity starts within
the *group gap* of the end of the user's newest alert updates that alert (the gap of the
match's kind when the alert already has that kind, e.g. days for ``low_and_slow``),
anything else opens a new one. ``kind`` is the kind of the highest-scoring match and
``kinds`` every kind the alert gathered.

Updating an alert takes the union of what the matches saw: ``end`` and ``updated_at`` the
latest, ``severity`` and ``score`` the highest, ``reasons`` those of each rule's
highest-scoring match, best rule first (deduplicated, at most
:data:`~detector.alerts.MAX_REASONS`), ``evidence`` the statements with the most rows
(deduplicated by time and statement, at most :data:`~detector.alerts.MAX_EVIDENCE`),
tables, client IPs, rule ids and ATT&CK techniques merged; ``triage`` is that of the rule
of the highest-scoring match. ``revision`` counts the distinct detection times that
changed the alert (one per instant, however the input was batched).

The alert itself, its JSON form and its scrubbing live in :mod:`detector.alerts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from detector.alerts import MAX_EVIDENCE, MAX_REASONS, Alert, Evidence, alert_id, utc
from detector.exceptions import AlertError, ThreatRuleError
from detector.rules.schema import SEVERITIES, ThreatRule

DEFAULT_GROUP_GAP: Final = timedelta(hours=2)
#: Kinds whose activity is spread thin get a longer gap (a trickle paused by a weekend
#: is still one trickle).
DEFAULT_KIND_GAPS: Final = {"low_and_slow": timedelta(days=7)}
#: Columns a match row must have.
_REQUIRED: Final = ("user", "kind", "rule_id", "severity", "reasons", "window_start", "window_end")


@dataclass(frozen=True)
class _Match:
    user: str
    kind: str
    rule: ThreatRule
    severity: str
    score: float
    start: datetime
    end: datetime
    detected: datetime
    reasons: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    tables: tuple[str, ...]
    client_ips: tuple[str, ...]
    role: str


class AlertBook:
    """Groups threat-rule matches into alerts and keeps them (picklable, for saved state).

    Parameters
    ----------
    group_gap
        A match joins the user's newest alert when its activity starts at most this long
        after the alert's end.
    kind_gaps
        Per-kind overrides of ``group_gap`` (default: 7 days for ``low_and_slow``).

    Examples
    --------
    >>> from datetime import UTC
    >>> from detector.rules.matching import match_rules
    >>> from detector.rules.schema import load_rules, window_frame
    >>> rules = load_rules()
    >>> row = {"user": "d07", "scale": "statement", "max_statement_rows": 5000.0,
    ...        "z_max_statement_rows": 8.0, "raw_score": 9.5}
    >>> later = row | {"window_start": datetime(2024, 3, 6, 11, tzinfo=UTC),
    ...                "window_end": datetime(2024, 3, 6, 11, tzinfo=UTC)}
    >>> book = AlertBook()
    >>> [a.revision for a in book.add_matches(match_rules(rules, window_frame([row])),
    ...                                        {r.id: r for r in rules})]
    [1]
    >>> [(a.revision, a.end.hour) for a in book.add_matches(
    ...     match_rules(rules, window_frame([later])), {r.id: r for r in rules})]
    [(2, 11)]
    >>> len(book.alerts())
    1
    """

    def __init__(
        self,
        group_gap: timedelta = DEFAULT_GROUP_GAP,
        kind_gaps: Mapping[str, timedelta] | None = None,
    ) -> None:
        self.group_gap = group_gap
        self.kind_gaps = dict(DEFAULT_KIND_GAPS if kind_gaps is None else kind_gaps)
        self._alerts: dict[str, Alert] = {}
        self._newest: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, alert_id: str) -> Alert:
        """The alert with this id, at its latest revision."""
        return self._alerts[alert_id]

    def revisions(self) -> dict[str, int]:
        """Each alert's id and latest revision."""
        return {i: a.revision for i, a in self._alerts.items()}

    def mark(self, alert_id: str, status: str) -> None:
        """Set an alert's status (e.g. ``false_positive`` from analyst feedback)."""
        self._alerts[alert_id] = replace(self._alerts[alert_id], status=status)

    def gap(self, kind: str) -> timedelta:
        """How far after an alert's end a match of ``kind`` may start and still join it."""
        return self.kind_gaps.get(kind, self.group_gap)

    def alerts(self) -> list[Alert]:
        """Every alert at its latest revision, by (start, user, kind)."""
        return sorted(self._alerts.values(), key=lambda a: (a.start, a.user, a.kind, a.id))

    def take_users(self, users: Iterable[str], *, drop: bool) -> list[Alert]:
        """The alerts of ``users``, newest of each user last (forgotten here when
        ``drop``): the users' alerts moving to the process that now judges them."""
        wanted = set(users)
        taken = [a for a in self._alerts.values() if a.user in wanted]
        newest = {self._newest[u] for u in wanted if u in self._newest}
        taken.sort(key=lambda a: (a.id in newest, a.start, a.id))
        if drop:
            for a in taken:
                del self._alerts[a.id]
            for u in wanted:
                self._newest.pop(u, None)
        return taken

    def put(self, alerts: Iterable[Alert]) -> None:
        """Take over alerts :meth:`take_users` gave (they replace those of the same id);
        the last alert of each user is the one their next matches may join."""
        for a in alerts:
            self._alerts[a.id] = a
            self._newest[a.user] = a.id

    def add_matches(self, matches: pl.DataFrame, rules: Mapping[str, ThreatRule]) -> list[Alert]:
        """Fold matches (:func:`~detector.rules.matching.match_rules` rows) into the alerts.

        The score is the ``score`` column when present, else ``raw_score``; the detection
        time is ``detected_at`` when present, else ``window_end``. Returns the alerts
        created or updated, by (time of this detection, user, kind).
        """
        if matches.is_empty():
            return []
        missing = [c for c in _REQUIRED if c not in matches.columns]
        if missing:
            raise AlertError(f"matches lack columns: {', '.join(missing)}")
        touched: dict[str, Alert] = {}
        for match in _matches(matches, rules):
            newest = self._newest.get(match.user)
            current = None if newest is None else touched.get(newest, self._alerts.get(newest))
            same_kind = current is not None and match.kind in current.kinds
            gap = self.gap(match.kind) if same_kind else self.group_gap
            if current is not None and match.start - current.end <= gap:
                updated = _merge(current, match)
                # One revision per detection instant, so the count does not depend on
                # how the input was batched.
                if match.detected > current.updated_at:
                    updated = replace(updated, revision=current.revision + 1)
            else:
                updated = _new(match)
            touched[updated.id] = updated
            self._newest[match.user] = updated.id
        self._alerts.update(touched)
        return sorted(touched.values(), key=lambda a: (a.updated_at, a.user, a.kind, a.id))


def _matches(matches: pl.DataFrame, rules: Mapping[str, ThreatRule]) -> Iterable[_Match]:
    """Typed matches in processing order (detection time, user, kind, window, rule)."""
    unknown = sorted(set(matches["rule_id"].unique().to_list()) - set(rules))
    if unknown:
        raise ThreatRuleError(f"matches name rules that are not loaded: {', '.join(unknown)}")
    score = next((c for c in ("score", "raw_score") if c in matches.columns), None)
    detected = "detected_at" if "detected_at" in matches.columns else "window_end"
    # The alert spans the activity (first to last statement), not the window bounds.
    first = "first_time" if "first_time" in matches.columns else "window_start"
    last = "last_time" if "last_time" in matches.columns else "window_end"
    frame = matches.select(
        *_REQUIRED,
        pl.col(detected).alias("_detected"),
        pl.col(first).alias("_first"),
        pl.col(last).alias("_last"),
        (pl.col(score).fill_null(0.0) if score else pl.lit(0.0)).cast(pl.Float64).alias("_score"),
        *(c for c in ("role", "evidence", "table_names", "client_ips") if c in matches.columns),
    ).sort("_detected", "user", "kind", "window_start", "rule_id", "_score")
    for row in frame.iter_rows(named=True):
        yield _Match(
            user=row["user"],
            kind=row["kind"],
            rule=rules[row["rule_id"]],
            severity=row["severity"],
            score=row["_score"],
            start=utc(row["_first"]),
            end=utc(row["_last"]),
            detected=utc(row["_detected"]),
            reasons=tuple(row["reasons"] or ()),
            evidence=_top_evidence(_evidence(e) for e in row.get("evidence") or ()),
            tables=tuple(sorted(set(row.get("table_names") or ()))),
            client_ips=tuple(sorted(set(row.get("client_ips") or ()))),
            role=row.get("role") or "",
        )


def _evidence(item: Mapping[str, Any]) -> Evidence:
    return Evidence(
        time=utc(item["time"]),
        statement=item.get("statement") or "",
        rows=item.get("rows"),
        tables=tuple(item.get("tables") or ()),
        sensitive_rows=item.get("sensitive_rows"),
    )


def _top_evidence(items: Iterable[Evidence]) -> tuple[Evidence, ...]:
    """Most sensitive rows, then most rows, then earliest; one per (time, statement)."""
    ranked = sorted(
        items,
        key=lambda e: (-(e.sensitive_rows or 0), -(e.rows or 0), e.time, e.statement),
    )
    seen: set[tuple[datetime, str]] = set()
    out = []
    for e in ranked:
        if (e.time, e.statement) not in seen:
            seen.add((e.time, e.statement))
            out.append(e)
    return tuple(out[:MAX_EVIDENCE])


def _new(m: _Match) -> Alert:
    return Alert(
        id=alert_id(m.user, m.kind, m.start),
        revision=1,
        user=m.user,
        kind=m.kind,
        severity=m.severity,
        score=m.score,
        start=m.start,
        end=m.end,
        detected_at=m.detected,
        updated_at=m.detected,
        reasons=_dedup(m.reasons)[:MAX_REASONS],
        best_by_rule=((m.score, m.rule.id, m.reasons),),
        evidence=m.evidence,
        tables=m.tables,
        client_ips=m.client_ips,
        rule_ids=(m.rule.id,),
        attack=tuple(sorted({a.technique for a in m.rule.attack})),
        triage=m.rule.triage,
        role=m.role,
        kinds=(m.kind,),
    )


def _merge(a: Alert, m: _Match) -> Alert:
    rule_ids = tuple(sorted({*a.rule_ids, m.rule.id}))
    best = {rule: (score, rule, reasons) for score, rule, reasons in a.best_by_rule}
    if m.rule.id not in best or m.score > best[m.rule.id][0]:
        best[m.rule.id] = (m.score, m.rule.id, m.reasons)
    ranked = sorted(best.values(), key=lambda b: (-b[0], b[1]))
    reasons = tuple(r for _, _, rs in ranked for r in rs)
    return replace(
        a,
        kind=m.kind if m.score > a.score else a.kind,
        kinds=tuple(sorted({*a.kinds, m.kind})),
        severity=max(a.severity, m.severity, key=SEVERITIES.index),
        score=max(a.score, m.score),
        start=min(a.start, m.start),
        end=max(a.end, m.end),
        updated_at=max(a.updated_at, m.detected),
        reasons=_dedup(reasons)[:MAX_REASONS],
        best_by_rule=tuple(ranked),
        evidence=_top_evidence((*a.evidence, *m.evidence)),
        tables=tuple(sorted({*a.tables, *m.tables})),
        client_ips=tuple(sorted({*a.client_ips, *m.client_ips})),
        rule_ids=rule_ids,
        attack=tuple(sorted({*a.attack, *(t.technique for t in m.rule.attack)})),
        triage=m.rule.triage if m.score > a.score else a.triage,
        role=m.role or a.role,
    )


def _dedup(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
