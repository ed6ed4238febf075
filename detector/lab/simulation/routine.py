"""The office's normal work: every user's sessions of every day, and the nightly jobs.

The nightly ETL and backup runs, the busy day and the new employee's first days are normal
work that looks unusual; their sessions carry hard-negative labels.

>>> from .org import build_org
>>> org = build_org(users=6, days=2, seed=1, citizens=200)
>>> data = Dataset.build(org.citizens, org.seed, org.start, org.days)
>>> sessions, specs = routine_sessions(org, data)
>>> sessions == routine_sessions(org, data)[0]
True
>>> sorted({s.kind for s in specs})
['backup_dump', 'busy_day', 'etl_bulk', 'new_employee']
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable

from . import people
from .org import Organisation, User
from .queries import TEMPLATES, Dataset, render
from .sessions import CopyMode, LabelSpec, Session, Statement, to_ms

SECOND = 1000
MINUTE = 60 * SECOND
Query = tuple[str, tuple[object, ...] | None] | tuple[str, None, CopyMode]


def day_start_ms(org: Organisation, day: int) -> int:
    """Epoch ms of midnight UTC of day ``day`` of the period."""
    return to_ms(dt.datetime.combine(org.day(day), dt.time(0), tzinfo=dt.UTC))


def session_of(
    rnd: random.Random,
    user: User,
    start_ms: int,
    queries: Iterable[Query],
    think_s: tuple[float, float],
    application: str | None,
    labels: tuple[str, ...] = (),
    client_ip: str | None = None,
) -> Session:
    """A session opened at ``start_ms`` running ``queries`` ``think_s`` seconds apart.

    A query is ``(sql, params)``, or ``(sql, None, "out")`` for a ``COPY ... TO STDOUT``.
    """
    t = start_ms + round(rnd.uniform(0.2, 3) * SECOND)
    statements = []
    for sql, params, *copy in queries:
        statements.append(Statement(t, sql, params, *copy))
        t += max(1, round(rnd.uniform(*think_s) * SECOND))
    close = statements[-1].at_ms + round(rnd.uniform(0.5, 10) * SECOND)
    return Session(
        user.name,
        client_ip or user.client_ip,
        application,
        start_ms,
        tuple(statements),
        close,
        labels,
    )


def _pick_template(rnd: random.Random, templates: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in templates]
    return rnd.choices(names, weights=[w for _, w in templates])[0]


def _volume_factor(org: Organisation, user: User, day: int) -> float:
    if day < user.joins_day:
        return 0.0
    factor = (
        1.0
        if org.is_workday(day)
        else (org.habit(user).weekend_factor if user.weekend_duty else 0.0)
    )
    if day in org.busy_days:
        factor *= 2
    if user.joins_day and day == user.joins_day:
        factor *= 0.5  # the first day is mostly training
    return factor


def human_day(
    org: Organisation, data: Dataset, user: User, day: int, labels: tuple[str, ...] = ()
) -> list[Session]:
    """One human user's sessions of one day (none on days off)."""
    habit = org.habit(user)
    rnd = random.Random(f"{org.seed}:routine:{user.name}:{day}")
    n = round(rnd.randint(*habit.per_day) * _volume_factor(org, user, day))
    if n <= 0:
        return []
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(n - sum(sizes), rnd.randint(*habit.per_session)))
    spans = habit.shifts
    starts = sorted(rnd.choices(spans, weights=[b - a for a, b in spans])[0] for _ in sizes)
    midnight = day_start_ms(org, day)
    out: list[Session] = []
    free_at = 0
    for size, (a, b) in zip(sizes, starts, strict=True):
        start = midnight + rnd.randrange(a * MINUTE, b * MINUTE)
        start = max(start, free_at + rnd.randrange(30, 300) * SECOND)
        queries = [
            render(*TEMPLATES[_pick_template(rnd, habit.templates)](rnd, data), user.binding)
            for _ in range(size)
        ]
        s = session_of(rnd, user, start, queries, habit.think_s, habit.application, labels)
        out.append(s)
        free_at = s.close_ms
    return out


def _new_citizens(data: Dataset, day: int, k: int) -> list[people.Citizen]:
    taken = {c.national_id for c in data.citizens} | set(data.absent)
    out = []
    for c in people.make_citizens(k + 5, data.seed, first_id=10_000_000 + 100 * day):
        if c.national_id not in taken and len(out) < k:
            out.append(c)
    return out


def etl_night(org: Organisation, data: Dataset, user: User, day: int, label: str) -> Session:
    """The nightly load: refresh the ID map, COPY new records in, add and fix citizens."""
    rnd = random.Random(f"{org.seed}:etl:{day}")
    n = len(data.citizens)
    per_night = max(10, n // 40)
    yesterday = org.day(day) - dt.timedelta(days=1)
    hotels = tuple(people.hotel_rows(per_night, n, data.seed + 7919 * (day + 1), yesterday, 1))
    trips = tuple(people.travel_rows(per_night, n, data.seed + 7919 * (day + 1), yesterday, 1))
    newcomers = _new_citizens(data, day, rnd.randint(3, 8))
    values = ", ".join("(" + ", ".join(f"'{v}'" for v in c.row()) + ")" for c in newcomers)
    t = day_start_ms(org, day) + (org.habit(user).at or 0) * MINUTE + rnd.randrange(90) * SECOND
    steps: list[Statement] = []

    def add(sql: str, copy: str | None = None, rows: tuple = (), gap: float = 2.0) -> None:
        nonlocal t
        t += round(rnd.uniform(0.5, gap) * SECOND)
        steps.append(Statement(t, sql, None, copy, rows))  # type: ignore[arg-type]

    add("SELECT id, national_id FROM citizens")
    add("COPY hotel_stays (citizen_id, hotel, checkin, nights) FROM STDIN", "in", hotels)
    add(
        "COPY travel_records (citizen_id, mode, origin, destination, depart_date) FROM STDIN",
        "in",
        trips,
    )
    add(
        f"INSERT INTO citizens (national_id, full_name, phone, address, birth_date) VALUES {values}"
    )
    for _ in range(rnd.randint(2, 4)):
        c = data.person(rnd)
        phone = f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
        add(f"UPDATE citizens SET phone = '{phone}' WHERE national_id = '{c.national_id}'")
    connect = steps[0].at_ms - 400
    return Session(
        user.name,
        user.client_ip,
        org.habit(user).application,
        connect,
        tuple(steps),
        t + 300,
        (label,),
    )


BACKUP_TABLES = (
    ("citizens", "id, national_id, full_name, phone, address, birth_date"),
    ("hotel_stays", "id, citizen_id, hotel, checkin, nights"),
    ("travel_records", "id, citizen_id, mode, origin, destination, depart_date"),
)


def backup_night(org: Organisation, user: User, day: int, label: str) -> Session:
    """A pg_dump-style run: snapshot transaction, one ``COPY ... TO stdout`` per table."""
    rnd = random.Random(f"{org.seed}:backup:{day}")
    t = day_start_ms(org, day) + (org.habit(user).at or 0) * MINUTE + rnd.randrange(30) * SECOND
    sqls: list[tuple[str, str | None]] = [
        ("SET statement_timeout = 0", None),
        ("SET extra_float_digits TO 3", None),
        ("BEGIN", None),
        ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", None),
        *((f"COPY public.{name} ({cols}) TO stdout;", "out") for name, cols in BACKUP_TABLES),
        ("COMMIT", None),
    ]
    steps = []
    for sql, copy in sqls:
        t += rnd.randrange(5, 400)
        steps.append(Statement(t, sql, None, copy))  # type: ignore[arg-type]
    return Session(
        user.name, user.client_ip, "pg_dump", steps[0].at_ms - 150, tuple(steps), t + 50, (label,)
    )


def dba_extras(org: Organisation, day: int) -> tuple[str, ...]:
    """Maintenance the DBA adds to the day's first session: an index once, a weekly VACUUM."""
    if day == 1:
        return ("CREATE INDEX IF NOT EXISTS hotel_stays_checkin_idx ON hotel_stays (checkin)",)
    if org.day(day).weekday() == 4:
        return ("VACUUM (ANALYZE) hotel_stays", "VACUUM (ANALYZE) travel_records")
    return ()


def routine_sessions(org: Organisation, data: Dataset) -> tuple[list[Session], list[LabelSpec]]:
    """Every normal session of the period, and the hard-negative labels among them."""
    sessions: list[Session] = []
    specs: dict[str, LabelSpec] = {}
    for user in org.users:
        org.habit(user)
        for day in range(org.days):
            if user.role == "etl":
                name = f"etl_bulk-d{day:02d}"
                specs[name] = LabelSpec(
                    name, "etl_bulk", True, "nightly", "scheduled nightly load (bulk read+write)"
                )
                sessions.append(etl_night(org, data, user, day, name))
                continue
            if user.role == "backup":
                name = f"backup_dump-d{day:02d}"
                specs[name] = LabelSpec(
                    name, "backup_dump", True, "nightly", "scheduled pg_dump-style full COPY"
                )
                sessions.append(backup_night(org, user, day, name))
                continue
            labels: tuple[str, ...] = ()
            if day in org.busy_days and org.is_workday(day):
                name = f"busy_day-d{day:02d}"
                specs[name] = LabelSpec(
                    name, "busy_day", True, "2x", "a busy day: every user at twice the volume"
                )
                labels += (name,)
            if user.joins_day and day >= user.joins_day:
                name = f"new_employee-{user.name}"
                specs[name] = LabelSpec(
                    name, "new_employee", True, user.role, "a new employee doing normal work"
                )
                labels += (name,)
            day_sessions = human_day(org, data, user, day, labels)
            if user.role == "dba" and day_sessions and (extra := dba_extras(org, day)):
                first = day_sessions[0]
                t = first.statements[-1].at_ms
                added = tuple(
                    Statement(t + (i + 1) * 20 * SECOND, sql) for i, sql in enumerate(extra)
                )
                close = max(first.close_ms, added[-1].at_ms + 5 * SECOND)
                day_sessions[0] = Session(
                    first.user,
                    first.client_ip,
                    first.application,
                    first.connect_ms,
                    first.statements + added,
                    close,
                    first.labels,
                )
            sessions.extend(day_sessions)
    return sessions, list(specs.values())
