"""What the plan is made of: statements, sessions and label descriptions.

Simulated times are integer milliseconds since the Unix epoch, UTC: exact, cheap to compare
and the resolution of PostgreSQL's ``%m`` timestamps.

>>> s = Statement(at_ms=1_000, sql="SELECT * FROM citizens WHERE national_id = %s",
...               params=("11010519491231002X",))
>>> s.logged_sql
'SELECT * FROM citizens WHERE national_id = $1'
>>> iso_ms(1_709_539_200_123)
'2024-03-04T08:00:00.123+00:00'
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from typing import Literal

CopyMode = Literal["out", "in"]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PLACEHOLDER = re.compile(r"%s")


def to_ms(t: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime.

    >>> to_ms(dt.datetime(1970, 1, 1, 0, 0, 1, 500_000, tzinfo=dt.UTC))
    1500
    """
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    """The UTC datetime of epoch milliseconds (integer arithmetic: no float rounding).

    >>> from_ms(1500).isoformat()
    '1970-01-01T00:00:01.500000+00:00'
    """
    return _EPOCH + dt.timedelta(milliseconds=ms)


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC text of epoch milliseconds, as written in labels."""
    return from_ms(ms).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Statement:
    """One statement a client sends, at a planned simulated time.

    ``sql`` uses psycopg placeholders (``%s``) when ``params`` is given: psycopg 3 binds
    server-side, so the server sees ``$1`` (see :attr:`logged_sql`).  ``copy`` marks
    ``COPY ... TO STDOUT`` (drained) and ``COPY ... FROM STDIN`` (fed ``rows``).
    """

    at_ms: int
    sql: str
    params: tuple[object, ...] | None = None
    copy: CopyMode | None = None
    rows: tuple[tuple[object, ...], ...] = field(default=(), repr=False)

    @property
    def logged_sql(self) -> str:
        """The text the server logs for this statement."""
        if self.params is None:
            return self.sql
        counter = iter(range(1, len(self.params) + 1))
        return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", self.sql)


@dataclass(frozen=True)
class Session:
    """One connection: opened at ``connect_ms``, statements in order, closed at ``close_ms``.

    ``labels`` names the scenarios (threats or hard negatives) this session belongs to.
    """

    user: str
    client_ip: str
    application: str | None
    connect_ms: int
    statements: tuple[Statement, ...]
    close_ms: int
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        times = [self.connect_ms, *(s.at_ms for s in self.statements), self.close_ms]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"times of a session of {self.user} are not increasing: {times}")


@dataclass(frozen=True)
class LabelSpec:
    """What a label says besides its user and time span."""

    scenario: str
    kind: str
    negative: bool
    variant: str
    description: str


#: threat kinds (issue 3) and hard-negative kinds
THREAT_KINDS = (
    "smash_and_grab",
    "paginated_dump",
    "enumeration",
    "low_and_slow",
    "compromised_account",
    "sensitive_pivot",
    "service_account_misuse",
)
NEGATIVE_KINDS = ("etl_bulk", "backup_dump", "new_employee", "busy_day", "heavy_aggregates")
