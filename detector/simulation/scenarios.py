"""Injected threats (issue 3) and injected hard negatives, one data entry each.

A :class:`Scenario` names the user by role (and client binding), a day and a time; the
builder of its ``kind`` turns it into sessions labelled with the scenario's name.
:func:`default_scenarios` places every kind, with variants, after a short warm-up; ``scale``
shrinks the sizes for quick test runs.

>>> from .org import build_org
>>> org = build_org(users=20, days=7, seed=1)
>>> kinds = {s.kind for s in default_scenarios(org)}
>>> sorted(kinds)  # doctest: +NORMALIZE_WHITESPACE
['compromised_account', 'enumeration', 'heavy_aggregates', 'low_and_slow', 'paginated_dump',
 'sensitive_pivot', 'service_account_misuse', 'smash_and_grab']
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .org import Organisation, User
from .queries import PERSON_COLUMNS, TEMPLATES, Dataset, render
from .routine import MINUTE, SECOND, Query, day_start_ms, session_of
from .sessions import LabelSpec, Session

CONTACT = "national_id, full_name, phone, address"
#: client addresses nobody in the office uses
ATTACKER_IPS = ("127.0.0.230", "127.0.0.231", "127.0.0.232")


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


Builder = Callable[[Scenario, Organisation, Dataset, User, random.Random], list[Session]]


def _app(s: Scenario, org: Organisation, user: User) -> str | None:
    return s.application if s.application is not None else org.habit(user).application


def _start(org: Organisation, s: Scenario, day: int | None = None) -> int:
    return day_start_ms(org, s.day if day is None else day) + s.at * MINUTE


def _smash_and_grab(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """One lookup as cover, then the whole table in one statement."""
    grab: Query = (
        ("COPY (SELECT national_id, full_name, phone FROM citizens) TO STDOUT", None, "out")
        if s.variant == "copy"
        else ("SELECT * FROM citizens", None)
    )
    cover = render(*TEMPLATES["lookup_person"](rnd, d), u.binding)
    return [session_of(rnd, u, _start(org, s), [cover, grab], (20, 90), _app(s, org, u),
                       (s.name,), s.client_ip)]  # fmt: skip


def _paginated_dump(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    page = 100
    pages = max(2, min(s.size, len(d.citizens) // page))
    queries = [
        (f"SELECT {CONTACT} FROM citizens ORDER BY id LIMIT {page} OFFSET {k * page}", None)
        for k in range(pages)
    ]
    return [session_of(rnd, u, _start(org, s), queries, (0.4, 3.0), _app(s, org, u),
                       (s.name,), s.client_ip)]  # fmt: skip


def _enumeration(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """Thousands of one-row lookups of distinct people spread over a working day."""
    n = max(10, min(s.size, len(d.citizens)))
    ids = [c.national_id for c in rnd.sample(d.citizens, n)]
    for k in range(n // 40):  # a few misses: valid numbers of nobody
        ids[rnd.randrange(n)] = d.absent[k % len(d.absent)]
    sql = f"SELECT {PERSON_COLUMNS} FROM citizens WHERE national_id = %s"
    queries = [render(sql, (i,), s.variant) for i in ids]  # type: ignore[arg-type]
    # 7.5 working hours, in sessions of up to 400 lookups (the script reconnects)
    think = (7.5 * 3600 / n) * 0.5, (7.5 * 3600 / n) * 1.5
    out: list[Session] = []
    t = _start(org, s)
    for k in range(0, n, 400):
        out.append(session_of(rnd, u, t, queries[k : k + 400], think, _app(s, org, u),
                              (s.name,), s.client_ip))  # fmt: skip
        t = out[-1].close_ms + rnd.randrange(5, 60) * SECOND
    return out


def _low_and_slow(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """A few hundred extra rows of contact details every working day, in small chunks."""
    days = [k for k in range(s.day, org.days) if org.is_workday(k)][: s.span_days]
    out: list[Session] = []
    next_id = rnd.randrange(1, max(2, len(d.citizens) // 2))
    for day in days:
        chunks = rnd.randint(3, 4)
        queries = []
        for _ in range(chunks):
            size = max(5, s.size // chunks + rnd.randrange(-10, 11))
            sql = f"SELECT {CONTACT} FROM citizens WHERE id BETWEEN %s AND %s"
            queries.append(render(sql, (next_id, next_id + size - 1), u.binding))
            next_id += size
        at = day_start_ms(org, day) + (s.at + rnd.randrange(-90, 91)) * MINUTE
        out.append(session_of(rnd, u, at, queries, (40, 400), _app(s, org, u), (s.name,),
                              s.client_ip))  # fmt: skip
    return out


def _compromised(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """The user's credentials at night from an unknown address: fast lookups, then a bulk read."""
    lookups = [
        render(*TEMPLATES["lookup_person"](rnd, d), u.binding) for _ in range(max(3, s.size))
    ]
    bulk = (f"SELECT {CONTACT} FROM citizens WHERE birth_date >= '1985-01-01' LIMIT 1000", None)
    return [session_of(rnd, u, _start(org, s), [*lookups, bulk], (1.0, 6.0), _app(s, org, u),
                       (s.name,), s.client_ip)]  # fmt: skip


def _sensitive_pivot(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """An aggregates-only analyst starts pulling contact columns of whole birth cohorts."""
    years = rnd.sample(range(1960, 2000), max(1, s.size))
    queries = [
        (f"SELECT {CONTACT} FROM citizens WHERE date_part('year', birth_date) = {y}", None)
        for y in years
    ]
    return [session_of(rnd, u, _start(org, s), queries, (60, 300), _app(s, org, u), (s.name,),
                       s.client_ip)]  # fmt: skip


def _service_misuse(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """The batch account used interactively: outside its schedule or from another host."""
    grab: Query = (
        (f"COPY (SELECT {CONTACT}, birth_date FROM citizens) TO STDOUT", None, "out")
        if s.variant == "other_host"
        else (f"SELECT {CONTACT} FROM citizens", None)
    )
    peek = ("SELECT count(*) FROM citizens", None)
    return [session_of(rnd, u, _start(org, s), [peek, grab], (10, 60), _app(s, org, u),
                       (s.name,), s.client_ip)]  # fmt: skip


def _heavy_aggregates(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """Report day: many heavy GROUP BY queries over joins; lots scanned, little returned."""
    names = ("heavy_report", "travellers_by_age", "by_area", "hotel_occupancy", "routes")
    queries = [render(*TEMPLATES[rnd.choice(names)](rnd, d), u.binding) for _ in range(s.size)]
    out = []
    t = _start(org, s)
    for k in range(0, len(queries), 10):
        out.append(session_of(rnd, u, t, queries[k : k + 10], (20, 120), _app(s, org, u),
                              (s.name,), s.client_ip))  # fmt: skip
        t = out[-1].close_ms + rnd.randrange(60, 600) * SECOND
    return out


BUILDERS: dict[str, Builder] = {
    "smash_and_grab": _smash_and_grab,
    "paginated_dump": _paginated_dump,
    "enumeration": _enumeration,
    "low_and_slow": _low_and_slow,
    "compromised_account": _compromised,
    "sensitive_pivot": _sensitive_pivot,
    "service_account_misuse": _service_misuse,
    "heavy_aggregates": _heavy_aggregates,
}


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
