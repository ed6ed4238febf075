"""Injected threats (issue 3) and injected hard negatives, one data entry each.

A :class:`Scenario` names the user by role (and client binding), a day and a time; the
builder of its ``kind`` (:mod:`.scenario_builders`) turns it into sessions labelled with
the scenario's name. :func:`default_scenarios` places every kind, with variants, after a
short warm-up (the bundled sample's set); ``scale`` shrinks the sizes for quick test runs.
:mod:`.campaign` spreads many more over weeks for evaluation runs.

>>> from .org import build_org
>>> org = build_org(users=20, days=7, seed=1)
>>> kinds = {s.kind for s in default_scenarios(org)}
>>> sorted(kinds)  # doctest: +NORMALIZE_WHITESPACE
['compromised_account', 'enumeration', 'heavy_aggregates', 'low_and_slow', 'paginated_dump',
 'sensitive_pivot', 'service_account_misuse', 'smash_and_grab']
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .org import Organisation, User
from .queries import Dataset
from .scenario_builders import ATTACKER_IPS, BUILDERS
from .sessions import LabelSpec, Session

__all__ = ["ATTACKER_IPS", "Scenario", "build", "default_scenarios", "resolve_user"]


@dataclass(frozen=True)
class Scenario:
    """One injected scenario.

    ``who`` is ``(role, index, binding)``: the ``index``-th user of ``role`` (whose client
    binds parameters or pastes literals when ``binding`` is given), wrapping around in
    small offices.  ``at`` is the minute of day; ``size`` means rows, lookups or pages,
    depending on ``kind``; ``span_days`` is the number of working days it lasts.
    """

    name: str
    kind: str
    who: tuple[str, int, str | None]
    day: int
    at: int
    variant: str
    size: int = 0
    span_days: int = 1
    client_ip: str | None = None  # default: the user's own
    application: str | None = None  # default: the role's
    negative: bool = False
    description: str = ""

    def label(self) -> LabelSpec:
        return LabelSpec(self.name, self.kind, self.negative, self.variant, self.description)


def resolve_user(org: Organisation, who: tuple[str, int, str | None]) -> User:
    """The user a scenario names.

    >>> from .org import build_org
    >>> resolve_user(build_org(users=6, days=2), ("desk_officer", 5, "literal")).name
    'officer02'
    """
    role, index, binding = who
    users = [u for u in org.by_role(role) if binding is None or u.binding == binding]
    if not users:
        users = list(org.by_role(role))
    if not users:
        raise ValueError(f"no user with role {role!r}")
    return users[index % len(users)]


def build(s: Scenario, org: Organisation, data: Dataset) -> list[Session]:
    """The sessions of one scenario (deterministic given the organisation's seed)."""
    rnd = random.Random(f"{org.seed}:scenario:{s.name}")
    return BUILDERS[s.kind](s, org, data, resolve_user(org, s.who), rnd)


def default_scenarios(org: Organisation, scale: float = 1.0) -> tuple[Scenario, ...]:
    """Every threat kind (with variants) and the injected negatives, after a warm-up.

    Scenarios start on working days after the first two days (in short runs: the last
    day); low-and-slow runs from the second working day for up to five working days.

    Parameters
    ----------
    org
        The office the scenarios are placed in.
    scale
        Factor on the sizes (lookups, pages, rows, queries); small runs use ~0.05.

    Returns
    -------
    tuple of Scenario
        Eleven entries: two variants of smash-and-grab, enumeration and service-account
        misuse, one of each other threat, and the heavy-aggregates report day.

    Examples
    --------
    >>> from .org import build_org
    >>> sc = default_scenarios(build_org(users=6, days=2), scale=0.05)
    >>> [(s.name, s.size) for s in sc if s.kind == "enumeration"]
    [('enumeration-literal', 100), ('enumeration-param', 75)]
    """
    work = [d for d in range(org.days) if org.is_workday(d)] or [org.days - 1]
    late = [d for d in work if d >= min(2, org.days - 1)] or work[-1:]

    def day(i: int) -> int:
        return late[min(i, len(late) - 1)]

    def n(size: int, least: int) -> int:
        return max(least, round(size * scale))

    slow_day = work[1] if len(work) > 1 else work[0]
    h = 60
    S = Scenario
    return (
        S("smash_and_grab-copy", "smash_and_grab", ("investigator", 0, None), day(0),
          10 * h + 47, "copy", application="psql",
          description="one COPY (SELECT national_id, full_name, phone ...) TO STDOUT"),
        S("smash_and_grab-select", "smash_and_grab", ("desk_officer", 3, None), day(2),
          16 * h + 20, "select_star", description="one SELECT * of the whole citizens table"),
        S("paginated_dump-offset", "paginated_dump", ("desk_officer", 1, None), day(1),
          15 * h + 5, "limit_offset", n(300, 8),
          description="hundreds of LIMIT 100 OFFSET k pages over minutes"),
        S("enumeration-literal", "enumeration", ("desk_officer", 0, "literal"), day(0),
          9 * h + 5, "literal", n(2000, 30),
          description="thousands of one-row lookups of distinct ID numbers (literals)"),
        S("enumeration-param", "enumeration", ("desk_officer", 1, "param"), day(2),
          9 * h + 10, "param", n(1500, 30),
          description="thousands of one-row lookups of distinct ID numbers ($1 bound)"),
        S("low_and_slow-week", "low_and_slow", ("investigator", 1, None), slow_day,
          14 * h, "daily_chunks", n(300, 30), span_days=5,
          description="a few hundred extra contact rows every working day"),
        S("compromised_account-night", "compromised_account", ("desk_officer", 2, "param"),
          day(1), 3 * h + 7, "night_new_ip", n(40, 5), client_ip=ATTACKER_IPS[0],
          application="", description="normal credentials at 03:00 from a never-seen IP"),
        S("sensitive_pivot-cohorts", "sensitive_pivot", ("analyst", 0, None), day(1),
          14 * h + 15, "birth_cohorts", 4,
          description="an aggregates-only analyst selects national_id/phone/address"),
        S("service_account_misuse-daytime", "service_account_misuse", ("etl", 0, None),
          day(0), 14 * h + 40, "off_schedule",
          description="the ETL account at 14:40 from its usual host"),
        S("service_account_misuse-other_host", "service_account_misuse", ("etl", 0, None),
          day(2), 2 * h + 41, "other_host", client_ip=ATTACKER_IPS[1], application="psql",
          description="the ETL account from another host, COPY of contact details"),
        S("heavy_aggregates-report", "heavy_aggregates", ("analyst", 1, None), day(2),
          13 * h + 30, "quarterly_report", n(30, 4), negative=True,
          description="report day: many heavy aggregate queries, little returned"),
    )  # fmt: skip
