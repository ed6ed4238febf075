"""Organisation + scenarios + seed -> one deterministic, time-ordered plan.

>>> from .org import build_org
>>> org = build_org(users=6, days=2, seed=7, citizens=500)
>>> plan = build_plan(org, default_scenarios(org, scale=0.02))
>>> plan == build_plan(org, default_scenarios(org, scale=0.02))
True
>>> starts = [s.connect_ms for s in plan.sessions]
>>> starts == sorted(starts)
True
>>> {lab["kind"] for lab in plan.labels() if lab["negative"]} >= {"etl_bulk", "busy_day"}
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .org import Organisation
from .queries import Dataset
from .routine import routine_sessions
from .scenarios import Scenario, build, default_scenarios
from .sessions import LabelSpec, Session, iso_ms

__all__ = ["Plan", "build_plan", "default_scenarios", "labels_from_spans"]


@dataclass(frozen=True)
class Plan:
    """Every session of the simulated period, ordered by connection time."""

    org: Organisation
    data: Dataset
    scenarios: tuple[Scenario, ...]
    sessions: tuple[Session, ...]
    specs: tuple[LabelSpec, ...]

    @property
    def statements(self) -> int:
        return sum(len(s.statements) for s in self.sessions)

    def client_ips(self) -> tuple[str, ...]:
        """Every client address the plan connects from, sorted."""
        return tuple(sorted({s.client_ip for s in self.sessions}, key=_ip_key))

    def labels(self, spans: Mapping[int, tuple[int, int]] | None = None) -> list[dict[str, Any]]:
        """One label per (scenario, user): planned times, or the times of ``spans``.

        ``spans`` maps a session's index to its simulated ``(first_ms, last_ms)`` as run.
        """
        if spans is None:
            spans = {i: (s.connect_ms, s.close_ms) for i, s in enumerate(self.sessions)}
        return labels_from_spans(self.sessions, spans, self.specs)


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(p) for p in ip.split("."))


def labels_from_spans(
    sessions: Iterable[Session],
    spans: Mapping[int, tuple[int, int]],
    specs: Iterable[LabelSpec],
) -> list[dict[str, Any]]:
    """Labels ``{scenario, kind, user, start, end, negative, variant, description}``."""
    by_name = {s.scenario: s for s in specs}
    windows: dict[tuple[str, str], tuple[int, int]] = {}
    for i, session in enumerate(sessions):
        for name in session.labels:
            first, last = spans[i]
            key = (name, session.user)
            lo, hi = windows.get(key, (first, last))
            windows[key] = (min(lo, first), max(hi, last))
    out = []
    for (name, user), (lo, hi) in sorted(windows.items(), key=lambda kv: (kv[1][0], kv[0])):
        spec = by_name[name]
        out.append(
            {
                "scenario": name,
                "kind": spec.kind,
                "user": user,
                "start": iso_ms(lo),
                "end": iso_ms(hi),
                "negative": spec.negative,
                "variant": spec.variant,
                "description": spec.description,
            }
        )
    return out


def build_plan(org: Organisation, scenarios: Iterable[Scenario] | None = None) -> Plan:
    """The plan of ``org``'s period with ``scenarios`` injected.

    Parameters
    ----------
    org
        The office and its period; its seed drives every random choice.
    scenarios
        Injected threats and hard negatives; ``None`` means :func:`default_scenarios`.

    Returns
    -------
    Plan
        Sessions ordered by connection time (ties by user and address, never by
        construction order), and the label descriptions.

    Examples
    --------
    >>> from .org import build_org
    >>> plan = build_plan(build_org(users=6, days=1, citizens=300), ())
    >>> plan.statements > 0, sorted({lab["kind"] for lab in plan.labels()})
    (True, ['backup_dump', 'etl_bulk'])
    """
    scenarios = tuple(default_scenarios(org) if scenarios is None else scenarios)
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be unique: {names}")
    data = Dataset.build(org.citizens, org.seed, org.start, org.days)
    sessions, specs = routine_sessions(org, data)
    for sc in scenarios:
        sessions += build(sc, org, data)
        specs.append(sc.label())
    # ties broken by content so the order never depends on construction order
    sessions.sort(key=lambda s: (s.connect_ms, s.user, s.client_ip))
    return Plan(org, data, scenarios, tuple(sessions), tuple(specs))
