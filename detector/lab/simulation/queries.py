"""The loaded data set and the query templates users draw their statements from.

A template turns a random generator and the :class:`Dataset` into ``(sql, params)`` with
psycopg placeholders; :func:`render` keeps the placeholders for users whose client binds
parameters and pastes SQL literals for the others.

>>> data = Dataset.build(citizens=50, seed=3, start=dt.date(2024, 3, 4), days=2)
>>> rnd = random.Random(0)
>>> sql, params = TEMPLATES["lookup_person"](rnd, data)
>>> sql
'SELECT id, national_id, full_name, phone, address, birth_date FROM citizens WHERE national_id = %s'
>>> render(sql, params, "literal") == (sql.replace("%s", repr(params[0])), None)
True
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from . import people
from .org import Binding

#: rows of the history tables per citizen at load time, and per night added by the ETL job
TRAVEL_PER_CITIZEN = 0.7
HOTEL_PER_CITIZEN = 0.7
HISTORY_DAYS = 365


@dataclass(frozen=True)
class Dataset:
    """What is loaded before the simulated period, and what users know about it."""

    seed: int
    start: dt.date  # first simulated day; history covers the year before it
    days: int
    citizens: tuple[people.Citizen, ...]
    absent: tuple[str, ...]  # valid ID numbers of nobody

    @classmethod
    def build(cls, citizens: int, seed: int, start: dt.date, days: int) -> Dataset:
        rows = people.make_citizens(citizens, seed)
        taken = {c.national_id for c in rows}
        return cls(seed, start, days, rows, people.absent_ids(200, seed, taken))

    @property
    def history_start(self) -> dt.date:
        return self.start - dt.timedelta(days=HISTORY_DAYS)

    def travel_rows(self) -> list[tuple[int, str, str, str, dt.date]]:
        n = round(len(self.citizens) * TRAVEL_PER_CITIZEN)
        return list(
            people.travel_rows(n, len(self.citizens), self.seed, self.history_start, HISTORY_DAYS)
        )

    def hotel_rows(self) -> list[tuple[int, str, dt.date, int]]:
        n = round(len(self.citizens) * HOTEL_PER_CITIZEN)
        return list(
            people.hotel_rows(n, len(self.citizens), self.seed, self.history_start, HISTORY_DAYS)
        )

    def person(self, rnd: random.Random) -> people.Citizen:
        return rnd.choice(self.citizens)

    def past_day(self, rnd: random.Random, within: int = HISTORY_DAYS) -> dt.date:
        return self.start - dt.timedelta(days=rnd.randrange(1, within))


Template = Callable[[random.Random, Dataset], tuple[str, tuple[object, ...] | None]]

PERSON_COLUMNS = "id, national_id, full_name, phone, address, birth_date"


def _lookup_person(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = f"SELECT {PERSON_COLUMNS} FROM citizens WHERE national_id = %s"
    return sql, (d.person(rnd).national_id,)


def _lookup_contact(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    return "SELECT full_name, phone FROM citizens WHERE national_id = %s", (
        d.person(rnd).national_id,
    )


def _lookup_absent(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    # a mistyped or foreign ID: valid check character, no row
    sql = f"SELECT {PERSON_COLUMNS} FROM citizens WHERE national_id = %s"
    return sql, (rnd.choice(d.absent),)


def _lookup_name_birth(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    c = d.person(rnd)
    sql = "SELECT id, national_id, full_name FROM citizens WHERE full_name = %s AND birth_date = %s"
    return sql, (c.full_name, c.birth_date)


def _person_trips(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT t.mode, t.origin, t.destination, t.depart_date FROM travel_records t"
        " JOIN citizens c ON c.id = t.citizen_id WHERE c.national_id = %s"
        " ORDER BY t.depart_date DESC"
    )
    return sql, (d.person(rnd).national_id,)


def _person_hotels(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT h.hotel, h.checkin, h.nights FROM hotel_stays h"
        " JOIN citizens c ON c.id = h.citizen_id WHERE c.national_id = %s"
    )
    return sql, (d.person(rnd).national_id,)


def _hotel_guests(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    first = d.past_day(rnd, 300)
    sql = (
        "SELECT c.national_id, c.full_name, h.checkin, h.nights FROM hotel_stays h"
        " JOIN citizens c ON c.id = h.citizen_id"
        " WHERE h.hotel = %s AND h.checkin BETWEEN %s AND %s"
    )
    return sql, (rnd.choice(people.HOTELS), first, first + dt.timedelta(days=rnd.randint(1, 4)))


def _passengers(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT c.national_id, c.full_name, t.mode, t.origin FROM travel_records t"
        " JOIN citizens c ON c.id = t.citizen_id"
        " WHERE t.destination = %s AND t.depart_date = %s"
    )
    return sql, (rnd.choice(people.CITIES), d.past_day(rnd, 300))


def _co_guests(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT c.national_id, c.full_name, h2.hotel, h2.checkin FROM hotel_stays h1"
        " JOIN hotel_stays h2 ON h2.hotel = h1.hotel AND h2.checkin = h1.checkin"
        " AND h2.citizen_id <> h1.citizen_id"
        " JOIN citizens c ON c.id = h2.citizen_id WHERE h1.citizen_id = %s"
    )
    return sql, (d.person(rnd).id,)


def _births_by_year(rnd: random.Random, d: Dataset) -> tuple[str, None]:
    return (
        "SELECT date_part('year', birth_date) AS year, count(*) FROM citizens"
        " GROUP BY 1 ORDER BY 1",
        None,
    )


def _by_area(rnd: random.Random, d: Dataset) -> tuple[str, None]:
    # reads national_id, but only its area prefix, aggregated
    return (
        "SELECT substr(national_id, 1, 6) AS area, count(*) FROM citizens"
        " GROUP BY 1 ORDER BY 2 DESC",
        None,
    )


def _hotel_occupancy(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    first = d.past_day(rnd, 300)
    sql = (
        "SELECT hotel, count(*) AS stays, round(avg(nights), 2) AS avg_nights FROM hotel_stays"
        " WHERE checkin BETWEEN %s AND %s GROUP BY hotel ORDER BY stays DESC"
    )
    return sql, (first, first + dt.timedelta(days=rnd.choice((7, 14, 30))))


def _routes(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT origin, destination, count(*) AS trips FROM travel_records"
        " WHERE depart_date >= %s GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 20"
    )
    return sql, (d.past_day(rnd, 120),)


def _travellers_by_age(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    sql = (
        "SELECT date_part('decade', c.birth_date) AS decade, t.mode, count(*) AS trips"
        " FROM travel_records t JOIN citizens c ON c.id = t.citizen_id"
        " WHERE t.depart_date >= %s GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return sql, (d.past_day(rnd, 200),)


def _heavy_report(rnd: random.Random, d: Dataset) -> tuple[str, tuple[object, ...]]:
    # quarterly report: three-way join over everything, a handful of result rows
    sql = (
        "SELECT substr(c.national_id, 1, 2) AS province, t.mode,"
        " count(DISTINCT c.id) AS people, count(*) AS trips, sum(h.nights) AS nights"
        " FROM citizens c JOIN travel_records t ON t.citizen_id = c.id"
        " LEFT JOIN hotel_stays h ON h.citizen_id = c.id AND h.checkin >= %s"
        " GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return sql, (d.past_day(rnd, 365),)


def _activity(rnd: random.Random, d: Dataset) -> tuple[str, None]:
    return (
        "SELECT pid, usename, client_addr, state, query_start FROM pg_stat_activity"
        " WHERE datname = current_database()",
        None,
    )


def _table_stats(rnd: random.Random, d: Dataset) -> tuple[str, None]:
    return (
        "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables"
        " ORDER BY n_live_tup DESC",
        None,
    )


def _count_check(rnd: random.Random, d: Dataset) -> tuple[str, None]:
    table = rnd.choice(("citizens", "travel_records", "hotel_stays"))
    return f"SELECT count(*) FROM {table}", None


TEMPLATES: dict[str, Template] = {
    "lookup_person": _lookup_person,
    "lookup_contact": _lookup_contact,
    "lookup_absent": _lookup_absent,
    "lookup_name_birth": _lookup_name_birth,
    "person_trips": _person_trips,
    "person_hotels": _person_hotels,
    "hotel_guests": _hotel_guests,
    "passengers": _passengers,
    "co_guests": _co_guests,
    "births_by_year": _births_by_year,
    "by_area": _by_area,
    "hotel_occupancy": _hotel_occupancy,
    "routes": _routes,
    "travellers_by_age": _travellers_by_age,
    "heavy_report": _heavy_report,
    "activity": _activity,
    "table_stats": _table_stats,
    "count_check": _count_check,
}


def literal(value: object) -> str:
    """A SQL literal of a plan value (text, int, date).

    >>> literal("O'Hara"), literal(7), literal(dt.date(2024, 3, 4))
    ("'O''Hara'", '7', "'2024-03-04'")
    """
    if isinstance(value, bool):
        raise TypeError("no booleans in the plan")
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def render(
    sql: str, params: tuple[object, ...] | None, binding: Binding
) -> tuple[str, tuple[object, ...] | None]:
    """``(sql, params)`` as the user's client sends it: bound, or with literals pasted in."""
    if params is None or binding == "param":
        return sql, params
    parts = sql.split("%s")
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(params)} parameters for {len(parts) - 1} placeholders: {sql}")
    out = [parts[0]]
    for value, tail in zip(params, parts[1:], strict=True):
        out += [literal(value), tail]
    return "".join(out), None
