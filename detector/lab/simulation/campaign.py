"""The evaluation campaign: every threat kind every week, in a different variant each week.

:func:`~.scenarios.default_scenarios` is the bundled sample's fixed set. Evaluation runs
(``exfil-detector simulate``, weeks long) instead place, in every week after a 3-day
warm-up, one scenario of each threat kind plus a hard-negative report day. Everything is
drawn from the organisation's seed: the variant each kind starts with (so seeds differ in
which variants meet which weeks), the day, the minute, the size, and the user, chosen
among people who have worked there from the start and have not been used yet, so no
user carries two scenarios and every scenario is a change from a history of normal work.

>>> from .org import build_org
>>> org = build_org(users=50, days=21, seed=11, weekly=True)
>>> sc = campaign_scenarios(org)
>>> len([s for s in sc if not s.negative]), len({s.kind for s in sc if not s.negative})
(21, 7)
>>> min(s.day for s in sc) >= WARMUP_DAYS
True
>>> people = [s.who for s in sc if s.who[0] not in ("etl", "backup")]
>>> len(set(people)) == len(people)  # one scenario per person
True
>>> campaign_scenarios(org) == sc
True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .org import Organisation, User
from .scenario_builders import ATTACKER_IPS, VARIANTS
from .scenarios import Scenario

#: Days at the start without injected scenarios: the models' warm-up.
WARMUP_DAYS = 3
HOUR = 60


@dataclass
class _Pool:
    """Users not given a scenario yet, per role, in a seeded order."""

    org: Organisation
    rnd: random.Random
    left: dict[str, list[User]] = field(default_factory=dict)

    def take(self, roles: tuple[str, ...], binding: str | None = None) -> tuple[str, int, None]:
        """``Scenario.who`` of a fresh established user of one of ``roles``.

        A small office runs out of fresh users: then they are reused, in a new order.
        """
        for refill in (False, True):
            for role in self.rnd.sample(roles, len(roles)):
                if refill or role not in self.left:
                    users = [u for u in self.org.by_role(role) if u.joins_day == 0]
                    self.left[role] = self.rnd.sample(users, len(users))
                for u in self.left[role]:
                    if binding is None or u.binding == binding:
                        self.left[role].remove(u)
                        return (role, self.org.by_role(role).index(u), None)
        raise ValueError(f"no user of {roles} with binding {binding!r}")


@dataclass(frozen=True)
class _Week:
    """One week's candidate days (after the warm-up) and the seeded generator."""

    number: int
    workdays: tuple[int, ...]
    weekend: tuple[int, ...]
    rnd: random.Random

    def workday(self, first: bool = False) -> int:
        return self.workdays[0] if first else self.rnd.choice(self.workdays)


def _size(rnd: random.Random, low: int, high: int, scale: float, least: int) -> int:
    return max(least, round(rnd.randint(low, high) * scale))


Placer = Callable[[str, _Week, _Pool, float], Scenario]


def _smash(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    tool = "psql" if variant in ("copy", "table_copy") else None
    return Scenario(
        f"smash_and_grab-{variant}-w{w.number}", "smash_and_grab",
        pool.take(("investigator", "desk_officer")), w.workday(),
        w.rnd.randrange(9 * HOUR + 30, 16 * HOUR + 30), variant, application=tool,
        description="a whole table of people in one statement",
    )  # fmt: skip


def _paginated(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    pages = {"limit_offset": (150, 300), "keyset": (20, 60), "slow_pages": (120, 240),
             "hotel_guests": (40, 80)}[variant]  # fmt: skip
    return Scenario(
        f"paginated_dump-{variant}-w{w.number}", "paginated_dump",
        pool.take(("desk_officer", "investigator")), w.workday(),
        w.rnd.randrange(9 * HOUR, 15 * HOUR), variant, _size(w.rnd, *pages, scale, 8),
        description="page after page of contact details",
    )  # fmt: skip


def _enumeration(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    binding = variant if variant in ("literal", "param") else None
    at = w.rnd.randrange(8 * HOUR + 45, 9 * HOUR + 30)
    if variant == "contact_burst":
        at = w.rnd.randrange(10 * HOUR, 14 * HOUR)
    return Scenario(
        f"enumeration-{variant}-w{w.number}", "enumeration",
        pool.take(("desk_officer",), binding), w.workday(), at, variant,
        _size(w.rnd, 800, 2500, scale, 30),
        description="one-row lookups of thousands of distinct ID numbers in a day",
    )  # fmt: skip


def _low_and_slow(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    rows, span = {"daily_chunks": ((250, 400), 5), "small_long": ((150, 200), 8),
                  "travel_history": ((200, 300), 5)}[variant]  # fmt: skip
    return Scenario(
        f"low_and_slow-{variant}-w{w.number}", "low_and_slow",
        pool.take(("investigator", "desk_officer")), w.workday(first=True),
        w.rnd.randrange(10 * HOUR, 15 * HOUR), variant, _size(w.rnd, *rows, scale, 30),
        span_days=span, description="a few hundred extra contact rows every working day",
    )  # fmt: skip


def _compromised(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    day, at = w.workday(), w.rnd.randrange(1 * HOUR, 4 * HOUR + 30)
    if variant == "weekend_new_ip" and w.weekend:
        day, at = w.rnd.choice(w.weekend), w.rnd.randrange(14 * HOUR, 18 * HOUR)
    elif variant == "evening_export":
        at = w.rnd.randrange(19 * HOUR + 30, 21 * HOUR + 30)
    return Scenario(
        f"compromised_account-{variant}-w{w.number}", "compromised_account",
        pool.take(("desk_officer", "investigator")), day, at, variant,
        _size(w.rnd, 5, 40, scale, 3), client_ip=ATTACKER_IPS[w.number % len(ATTACKER_IPS)],
        application="", description="normal credentials at an odd hour from a never-seen IP",
    )  # fmt: skip


def _pivot(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    size = {"birth_cohorts": (3, 6), "regions": (2, 4), "hotel_contacts": (1, 3)}[variant]
    return Scenario(
        f"sensitive_pivot-{variant}-w{w.number}", "sensitive_pivot", pool.take(("analyst",)),
        w.workday(), w.rnd.randrange(10 * HOUR, 16 * HOUR), variant, w.rnd.randint(*size),
        description="an aggregates-only analyst selects ID, phone and address columns",
    )  # fmt: skip


def _service(variant: str, w: _Week, pool: _Pool, scale: float) -> Scenario:
    role = "backup" if variant == "backup_daytime" else "etl"
    who: tuple[str, int, None] = (role, 0, None)  # one account per job: reused on purpose
    if variant == "other_host":
        return Scenario(
            f"service_account_misuse-{variant}-w{w.number}", "service_account_misuse", who,
            w.workday(), w.rnd.randrange(30, 4 * HOUR), variant,
            client_ip=ATTACKER_IPS[(w.number + 2) % len(ATTACKER_IPS)], application="psql",
            description="the ETL account from another host, COPY of contact details",
        )  # fmt: skip
    return Scenario(
        f"service_account_misuse-{variant}-w{w.number}", "service_account_misuse", who,
        w.workday(), w.rnd.randrange(10 * HOUR, 16 * HOUR), variant,
        description=f"the {role} account in the working day, off its schedule",
    )  # fmt: skip


def _report_day(w: _Week, pool: _Pool, scale: float) -> Scenario:
    return Scenario(
        f"heavy_aggregates-report-w{w.number}", "heavy_aggregates", pool.take(("analyst",)),
        w.workday(), w.rnd.randrange(10 * HOUR, 14 * HOUR), "quarterly_report",
        _size(w.rnd, 20, 40, scale, 4), negative=True,
        description="report day: many heavy aggregate queries, little returned",
    )  # fmt: skip


PLACERS: dict[str, Placer] = {
    "smash_and_grab": _smash,
    "paginated_dump": _paginated,
    "enumeration": _enumeration,
    "low_and_slow": _low_and_slow,
    "compromised_account": _compromised,
    "sensitive_pivot": _pivot,
    "service_account_misuse": _service,
}


def campaign_scenarios(org: Organisation, scale: float = 1.0) -> tuple[Scenario, ...]:
    """Every threat kind once a week after the warm-up, variants rotating, plus report days.

    Parameters
    ----------
    org
        The office (long runs: ``build_org(..., weekly=True)``).
    scale
        Factor on the sizes; small test runs use ~0.05.

    Returns
    -------
    tuple of Scenario
        Seven threats per week with at least one working day after the warm-up, and one
        hard-negative report day per such week. Service-account scenarios reuse the one
        ETL or backup account; every other scenario has a user of its own.
    """
    rnd = random.Random(f"{org.seed}:campaign")
    first = {kind: rnd.randrange(len(v)) for kind, v in VARIANTS.items()}
    pool = _Pool(org, rnd)
    out: list[Scenario] = []
    for number in range((org.days + 6) // 7):
        days = [d for d in range(number * 7, min(number * 7 + 7, org.days)) if d >= WARMUP_DAYS]
        week = _Week(
            number + 1,
            tuple(d for d in days if org.is_workday(d)),
            tuple(d for d in days if not org.is_workday(d)),
            random.Random(f"{org.seed}:campaign:week{number}"),
        )
        if not week.workdays:
            continue
        for kind, place in PLACERS.items():
            variants = VARIANTS[kind]
            variant = variants[(first[kind] + number) % len(variants)]
            if kind == "service_account_misuse" and not org.by_role(
                "backup" if variant == "backup_daytime" else "etl"
            ):
                continue
            out.append(place(variant, week, pool, scale))
        out.append(_report_day(week, pool, scale))
    return tuple(out)
