"""How each injected scenario kind becomes sessions, variant by variant.

A builder gets the :class:`~.scenarios.Scenario` (kind, variant, size, day, minute), the
office, the data set, the resolved user and a generator seeded by the scenario's name, and
returns the scenario's sessions. Variants differ in what an attacker would vary: sizes and
speeds, literal or bound parameters, the table and columns taken, the export form.

>>> sorted(VARIANTS["smash_and_grab"])
['copy', 'select_star', 'table_copy', 'travel_join']
>>> all(set(v) for v in VARIANTS.values()) and set(VARIANTS) < set(BUILDERS)
True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import people
from .org import Organisation, User
from .queries import PERSON_COLUMNS, TEMPLATES, Dataset, render
from .routine import MINUTE, SECOND, Query, day_start_ms, session_of
from .sessions import Session

if TYPE_CHECKING:
    from .scenarios import Scenario

CONTACT = "national_id, full_name, phone, address"
#: client addresses nobody in the office uses
ATTACKER_IPS = ("127.0.0.230", "127.0.0.231", "127.0.0.232", "127.0.0.233", "127.0.0.234")
#: the 6-digit area codes the ID numbers of :mod:`.people` start with
REGION_PREFIXES = tuple(code for code, _ in people.AREAS)

Builder = Callable[["Scenario", Organisation, Dataset, User, random.Random], list[Session]]

#: Every threat kind's variants (the first is each builder's default behaviour).
VARIANTS: dict[str, tuple[str, ...]] = {
    "smash_and_grab": ("copy", "select_star", "table_copy", "travel_join"),
    "paginated_dump": ("limit_offset", "keyset", "slow_pages", "hotel_guests"),
    "enumeration": ("literal", "param", "contact_burst"),
    "low_and_slow": ("daily_chunks", "small_long", "travel_history"),
    "compromised_account": ("night_new_ip", "weekend_new_ip", "evening_export"),
    "sensitive_pivot": ("birth_cohorts", "regions", "hotel_contacts"),
    "service_account_misuse": ("off_schedule", "other_host", "backup_daytime"),
}


def _app(s: Scenario, org: Organisation, user: User) -> str | None:
    return s.application if s.application is not None else org.habit(user).application


def _start(org: Organisation, s: Scenario, day: int | None = None) -> int:
    return day_start_ms(org, s.day if day is None else day) + s.at * MINUTE


def _one(s: Scenario, org: Organisation, u: User, rnd: random.Random,
         queries: list[Query], think: tuple[float, float]) -> list[Session]:  # fmt: skip
    return [session_of(rnd, u, _start(org, s), queries, think, _app(s, org, u), (s.name,),
                       s.client_ip)]  # fmt: skip


def _smash_and_grab(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """One lookup as cover, then a whole table in one statement."""
    grabs: dict[str, Query] = {
        "copy": ("COPY (SELECT national_id, full_name, phone FROM citizens) TO STDOUT", None,
                 "out"),
        # pg_dump's form: the log counts its rows as 0, the catalog sizes the read
        "table_copy": ("COPY citizens TO STDOUT", None, "out"),
        "travel_join": (
            "SELECT c.national_id, c.full_name, c.phone, t.destination, t.depart_date"
            " FROM travel_records t JOIN citizens c ON c.id = t.citizen_id", None),
    }  # fmt: skip
    grab = grabs.get(s.variant, ("SELECT * FROM citizens", None))
    cover = render(*TEMPLATES["lookup_person"](rnd, d), u.binding)
    return _one(s, org, u, rnd, [cover, grab], (20, 90))


def _paginated_dump(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """Page after page of contact details, by OFFSET or by key, fast or slow."""
    if s.variant == "keyset":
        page = 500
        pages = max(2, min(s.size, len(d.citizens) // page))
        queries: list[Query] = [
            (f"SELECT id, {CONTACT} FROM citizens WHERE id > {k * page} ORDER BY id"
             f" LIMIT {page}", None)
            for k in range(pages)
        ]  # fmt: skip
        return _one(s, org, u, rnd, queries, (1.0, 5.0))
    if s.variant == "slow_pages":  # a page every half minute or so, for an hour or two
        page = 200
        pages = max(2, min(s.size, len(d.citizens) // page))
        start = rnd.randrange(pages) * page
        queries = [
            (f"SELECT {CONTACT} FROM citizens ORDER BY id LIMIT {page}"
             f" OFFSET {(start + k * page) % len(d.citizens)}", None)
            for k in range(pages)
        ]  # fmt: skip
        return _one(s, org, u, rnd, queries, (15.0, 45.0))
    if s.variant == "hotel_guests":
        page = 250
        pages = max(2, s.size)
        queries = [
            ("SELECT c.national_id, c.full_name, c.phone, h.hotel, h.checkin FROM hotel_stays h"
             f" JOIN citizens c ON c.id = h.citizen_id ORDER BY h.id LIMIT {page}"
             f" OFFSET {k * page}", None)
            for k in range(pages)
        ]  # fmt: skip
        return _one(s, org, u, rnd, queries, (0.5, 4.0))
    page = 100
    pages = max(2, min(s.size, len(d.citizens) // page))
    queries = [
        (f"SELECT {CONTACT} FROM citizens ORDER BY id LIMIT {page} OFFSET {k * page}", None)
        for k in range(pages)
    ]
    return _one(s, org, u, rnd, queries, (0.4, 3.0))


def _enumeration(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """Thousands of one-row lookups of distinct people: over a working day, or in a burst."""
    n = max(10, min(s.size, len(d.citizens)))
    ids = [c.national_id for c in rnd.sample(d.citizens, n)]
    for k in range(n // 40):  # a few misses: valid numbers of nobody
        ids[rnd.randrange(n)] = d.absent[k % len(d.absent)]
    if s.variant == "contact_burst":  # a script over two hours, the client's own binding
        sql = "SELECT full_name, phone FROM citizens WHERE national_id = %s"
        hours, binding = 2.0, u.binding
    else:
        sql = f"SELECT {PERSON_COLUMNS} FROM citizens WHERE national_id = %s"
        hours, binding = 7.5, s.variant
    queries = [render(sql, (i,), binding) for i in ids]  # type: ignore[arg-type]
    # in sessions of up to 400 lookups (the script reconnects)
    think = (hours * 3600 / n) * 0.5, (hours * 3600 / n) * 1.5
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
            if s.variant == "travel_history":
                sql = (
                    "SELECT c.national_id, c.full_name, c.phone, t.destination, t.depart_date"
                    " FROM citizens c JOIN travel_records t ON t.citizen_id = c.id"
                    " WHERE c.id BETWEEN %s AND %s"
                )
            else:
                sql = f"SELECT {CONTACT} FROM citizens WHERE id BETWEEN %s AND %s"
            queries.append(render(sql, (next_id, next_id + size - 1), u.binding))
            next_id += size
        at = day_start_ms(org, day) + (s.at + rnd.randrange(-90, 91)) * MINUTE
        out.append(session_of(rnd, u, at, queries, (40, 400), _app(s, org, u), (s.name,),
                              s.client_ip))  # fmt: skip
    return out


def _compromised(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """The user's credentials at an odd hour from an unknown address: lookups, then a bulk read."""
    lookups = [
        render(*TEMPLATES["lookup_person"](rnd, d), u.binding) for _ in range(max(3, s.size))
    ]
    limit = 5000 if s.variant == "evening_export" else 1000
    bulk = (f"SELECT {CONTACT} FROM citizens WHERE birth_date >= '1985-01-01' LIMIT {limit}", None)
    return _one(s, org, u, rnd, [*lookups, bulk], (1.0, 6.0))


def _sensitive_pivot(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """An aggregates-only analyst starts pulling contact columns of whole groups of people."""
    if s.variant == "regions":
        prefixes = rnd.sample(REGION_PREFIXES, min(len(REGION_PREFIXES), max(1, s.size)))
        queries: list[Query] = [
            (f"SELECT {CONTACT} FROM citizens WHERE national_id LIKE '{p}%'", None)
            for p in prefixes
        ]
    elif s.variant == "hotel_contacts":
        queries = [
            ("SELECT c.national_id, c.full_name, c.phone, c.address FROM hotel_stays h"
             " JOIN citizens c ON c.id = h.citizen_id"
             f" WHERE h.checkin >= '{d.past_day(rnd, 200).isoformat()}'", None)
            for _ in range(max(1, s.size))
        ]  # fmt: skip
    else:
        years = rnd.sample(range(1960, 2000), max(1, s.size))
        queries = [
            (f"SELECT {CONTACT} FROM citizens WHERE date_part('year', birth_date) = {y}", None)
            for y in years
        ]
    return _one(s, org, u, rnd, queries, (60, 300))


def _service_misuse(s: Scenario, org: Organisation, d: Dataset, u: User, rnd: random.Random):
    """A batch account used interactively: outside its schedule or from another host."""
    grab: Query = (
        (f"COPY (SELECT {CONTACT}, birth_date FROM citizens) TO STDOUT", None, "out")
        if s.variant == "other_host"
        else (
            "SELECT c.national_id, c.full_name, c.phone, t.destination FROM citizens c"
            " JOIN travel_records t ON t.citizen_id = c.id",
            None,
        )
        if s.variant == "backup_daytime"
        else (f"SELECT {CONTACT} FROM citizens", None)
    )
    peek = ("SELECT count(*) FROM citizens", None)
    return _one(s, org, u, rnd, [peek, grab], (10, 60))


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
