"""The simulated records office: roles with habits (as data) and the users who hold them.

Times of day are minutes after midnight UTC (the office works in UTC, like the log).

>>> org = build_org(users=20, days=7, seed=1)
>>> [(role, len(org.by_role(role))) for role in HABITS]  # doctest: +NORMALIZE_WHITESPACE
[('desk_officer', 11), ('investigator', 3), ('analyst', 3), ('etl', 1), ('backup', 1),
 ('dba', 1)]
>>> org.user("officer11").joins_day, org.user("etl_loader").client_ip
(2, '127.0.0.5')
>>> build_org(users=20, days=7, seed=1) == org
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Binding = Literal["param", "literal"]


@dataclass(frozen=True)
class Habit:
    """How holders of one role work.

    Human roles start sessions inside ``shifts`` on weekdays; ``per_day`` statements
    (inclusive range) are split into sessions of ``per_session`` statements, ``think_s``
    seconds apart, each drawn from ``templates`` (names in :mod:`.queries`, with weights).
    Scheduled jobs run every day at ``at`` (minute of day) instead.
    """

    role: str
    description: str
    application: str | None
    shifts: tuple[tuple[int, int], ...] = ()
    per_day: tuple[int, int] = (0, 0)
    per_session: tuple[int, int] = (1, 1)
    think_s: tuple[int, int] = (1, 5)
    templates: tuple[tuple[str, float], ...] = ()
    weekend_factor: float = 0.0  # share of per_day for users on weekend duty
    at: int | None = None
    log_parameter: bool = False  # pgaudit.log_parameter for the role's database users

    @property
    def scheduled(self) -> bool:
        return self.at is not None


HABITS: dict[str, Habit] = {
    h.role: h
    for h in (
        Habit(
            "desk_officer",
            "public counter: one-row lookups of citizens by ID number, tens a day",
            "records-portal",
            shifts=((8 * 60 + 30, 12 * 60), (13 * 60, 17 * 60 + 15)),
            per_day=(25, 50),
            per_session=(4, 12),
            think_s=(20, 150),
            templates=(
                ("lookup_person", 0.62),
                ("lookup_contact", 0.12),
                ("lookup_name_birth", 0.08),
                ("lookup_absent", 0.05),
                ("person_trips", 0.08),
                ("person_hotels", 0.05),
            ),
            weekend_factor=0.3,
            log_parameter=True,
        ),
        Habit(
            "investigator",
            "cases: joins citizens with travel and hotel records, tens of rows at a time",
            "case-tool",
            shifts=((9 * 60, 12 * 60), (13 * 60, 17 * 60 + 30)),
            per_day=(8, 18),
            per_session=(3, 7),
            think_s=(60, 420),
            templates=(
                ("hotel_guests", 0.28),
                ("passengers", 0.25),
                ("person_trips", 0.2),
                ("lookup_person", 0.17),
                ("co_guests", 0.1),
            ),
            log_parameter=True,
        ),
        Habit(
            "analyst",
            "statistics: GROUP BY aggregates that scan whole tables and return little",
            "metabase",
            shifts=((9 * 60 + 30, 12 * 60), (13 * 60, 16 * 60 + 45)),
            per_day=(5, 12),
            per_session=(2, 5),
            think_s=(60, 900),
            templates=(
                ("births_by_year", 0.2),
                ("by_area", 0.15),
                ("hotel_occupancy", 0.25),
                ("routes", 0.25),
                ("travellers_by_age", 0.15),
            ),
        ),
        Habit(
            "etl",
            "service account: nightly load of travel and hotel records, fixed host and hour",
            "etl-nightly",
            at=2 * 60,
        ),
        Habit(
            "backup",
            "service account: nightly pg_dump-style COPY of every table",
            "pg_dump",
            at=60 + 30,
        ),
        Habit(
            "dba",
            "administrator: activity checks, statistics, occasional DDL and maintenance",
            "psql",
            shifts=((9 * 60 + 45, 11 * 60), (14 * 60, 16 * 60)),
            per_day=(2, 6),
            per_session=(2, 3),
            think_s=(30, 300),
            templates=(("activity", 0.4), ("table_stats", 0.4), ("count_check", 0.2)),
        ),
    )
}


@dataclass(frozen=True)
class User:
    """A database login held by one person or job."""

    name: str
    role: str
    client_ip: str
    binding: Binding
    joins_day: int = 0  # first day index with activity (a new employee joins later)
    weekend_duty: bool = False


@dataclass(frozen=True)
class Organisation:
    """The users, the simulated period and the facts every plan of it shares."""

    users: tuple[User, ...]
    start: dt.date
    days: int
    seed: int
    citizens: int
    busy_days: tuple[int, ...]  # day indexes with twice the usual volume

    @property
    def busy_day(self) -> int | None:
        """The first busy day (``users.json`` names it), or None."""
        return self.busy_days[0] if self.busy_days else None

    def user(self, name: str) -> User:
        for u in self.users:
            if u.name == name:
                return u
        raise KeyError(name)

    def by_role(self, role: str) -> tuple[User, ...]:
        return tuple(u for u in self.users if u.role == role)

    def habit(self, user: User) -> Habit:
        return HABITS[user.role]

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def is_workday(self, index: int) -> bool:
        return self.day(index).weekday() < 5


def human_ip(k: int) -> str:
    """Client address of the ``k``-th human user (127.0.0.10 upwards).

    >>> human_ip(0), human_ip(199), human_ip(200)
    ('127.0.0.10', '127.0.0.209', '127.0.1.10')
    """
    return f"127.0.{k // 200}.{10 + k % 200}"


#: addresses of the service accounts; attackers come from 127.0.0.230 upwards
SERVICE_IPS = {"etl": "127.0.0.5", "backup": "127.0.0.6", "dba": "127.0.0.7"}
SERVICE_NAMES = {"etl": "etl_loader", "backup": "backup_agent", "dba": "dba_admin"}
HUMAN_PREFIX = {"desk_officer": "officer", "investigator": "investigator", "analyst": "analyst"}


def role_counts(users: int) -> dict[str, int]:
    """How many users hold each role (at least 5: two officers and one of everything else).

    >>> role_counts(6)
    {'desk_officer': 2, 'investigator': 1, 'analyst': 1, 'etl': 1, 'backup': 1, 'dba': 0}
    """
    if users < 5:
        raise ValueError(f"need at least 5 users, got {users}")
    services = {"etl": 1, "backup": 1, "dba": 1 if users >= 8 else 0}
    humans = users - sum(services.values())
    investigators = max(1, round(humans * 0.18))
    analysts = max(1, round(humans * 0.18))
    officers = humans - investigators - analysts
    if officers < 2:
        investigators, analysts, officers = 1, 1, humans - 2
    return {
        "desk_officer": officers,
        "investigator": investigators,
        "analyst": analysts,
        **services,
    }


def build_org(
    users: int = 20,
    days: int = 7,
    seed: int = 1,
    start: dt.date = dt.date(2024, 3, 4),
    citizens: int = 30_000,
    *,
    weekly: bool = False,
) -> Organisation:
    """The office: ``users`` logins over ``days`` days from ``start`` (a Monday by default).

    The last desk officer joins on day 2 (a new employee; day ``days - 1`` in short runs);
    the first two officers also work weekends; day 3 (or the last day) is a busy day.
    With ``weekly`` (long evaluation runs), every further week also has a busy day (its
    Thursday) and a new employee (the week's Monday: the next-to-last officer, then the
    last investigator, then officers counting back).

    Parameters
    ----------
    users
        Number of database logins (>= 5); see :func:`role_counts` for the split.
    days
        Length of the simulated period.
    seed
        Seed of everything random downstream (plans, data).
    start
        First simulated day.
    citizens
        Rows of the ``citizens`` table.
    weekly
        Repeat the busy day and the new employee every week (see above).

    Returns
    -------
    Organisation
        Frozen, so two calls with the same arguments compare equal.

    Examples
    --------
    >>> org = build_org(users=6, days=2)
    >>> [(u.name, u.client_ip) for u in org.users][:2]
    [('officer01', '127.0.0.10'), ('officer02', '127.0.0.11')]
    """
    counts = role_counts(users)
    joining = _joiners(counts, days, start) if weekly else {}
    out: list[User] = []
    k = 0
    for role, prefix in HUMAN_PREFIX.items():
        n = counts[role]
        for i in range(n):
            joins = min(2, days - 1) if role == "desk_officer" and i == n - 1 else 0
            joins = joining.get((role, i), joins)
            out.append(
                User(
                    name=f"{prefix}{i + 1:02d}",
                    role=role,
                    client_ip=human_ip(k),
                    # a portal that binds parameters for half the counter staff, a legacy
                    # screen that pastes literals for the other half
                    binding="param" if role != "analyst" and i % 2 == 0 else "literal",
                    joins_day=joins,
                    weekend_duty=role == "desk_officer" and i < 2,
                )
            )
            k += 1
    for role, name in SERVICE_NAMES.items():
        if counts[role]:
            out.append(User(name, role, SERVICE_IPS[role], "literal"))
    busy = (min(3, days - 1),) if days > 1 else ()
    if weekly:
        thursdays = [d for d in range(7, days) if (start + dt.timedelta(days=d)).weekday() == 3]
        busy += tuple(thursdays)
    return Organisation(tuple(out), start, days, seed, citizens, busy)


def _joiners(counts: dict[str, int], days: int, start: dt.date) -> dict[tuple[str, int], int]:
    """``(role, index) -> first day`` of the people who join after the first week.

    >>> _joiners({"desk_officer": 10, "investigator": 3}, 21, dt.date(2024, 3, 4))
    {('desk_officer', 8): 7, ('investigator', 2): 14}
    """
    mondays = [d for d in range(7, days) if (start + dt.timedelta(days=d)).weekday() == 0]
    # officers beyond the first three (the first ones work weekends or are referred to
    # by the scenarios), counting back from the next-to-last (the last joins on day 2)
    people = [("desk_officer", i) for i in range(counts["desk_officer"] - 2, 2, -1)]
    if counts.get("investigator", 0) >= 3:
        people.insert(1, ("investigator", counts["investigator"] - 1))
    return dict(zip(people, mondays, strict=False))
