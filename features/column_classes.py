"""Sensitivity classes and the column-name heuristics that guess them.

A *class* names the kind of personal data a column holds. The catalog
(:mod:`features.catalog`) assigns classes explicitly; columns it does not list are classed
by the heuristics here, so a new table full of ``id_card_no`` columns is flagged before
anyone updates the catalog.

Heuristics match whole ``_``-separated tokens of the normalised column name (camelCase is
split first, then lower-cased), so ``customer_phone`` and ``phoneNumber`` are phones while
``hotel`` and ``telemetry`` are not. Bare ``name`` is a person's name only on its own:
``table_name`` or ``product_name`` are not.

>>> [HEURISTICS.classify(c) for c in ("idCardNo", "hotel", "name", "client_addr")]
['national_id', None, 'name', None]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

#: The built-in classes. Catalogs may add more (``[classes]``).
BUILTIN_CLASSES: Final = (
    "national_id",
    "passport",
    "phone",
    "email",
    "address",
    "name",
    "birth_date",
    "bank_account",
)

#: Classes whose values identify one person: an equality lookup on such a column returns
#: about one row, and thousands of them are an enumeration.
IDENTIFIER_CLASSES: Final = frozenset({"national_id", "passport", "phone", "email", "bank_account"})

#: Written in a catalog to say "this column is not sensitive" (silences the heuristics).
NOT_SENSITIVE: Final = "none"

#: Built-in patterns, tried in this order; each must match whole tokens. A rule of class
#: :data:`NOT_SENSITIVE` stops the search (network addresses are not postal addresses).
BUILTIN_PATTERNS: Final = (
    (
        NOT_SENSITIVE,
        r"(?:ip|ipv4|ipv6|mac|server|host|web|url|wallet|contract|memory|remote|local|bind"
        r"|net|network|client|peer|src|dst|source|destination)_?addr(?:ess)?",
    ),
    (
        "national_id",
        r"national_?id(?:_?(?:no|number))?|id_?card(?:_?(?:no|number))?|id_?(?:no|number)"
        r"|sfz(?:h|hm|_?no)?|shenfenzheng|ssn|citizen_?id(?:_?(?:no|number))?"
        r"|resident_?id(?:_?(?:no|number))?",
    ),
    ("passport", r"passport(?:_?(?:no|number))?|huzhao"),
    ("bank_account", r"bank_?(?:account|card|acct)(?:_?(?:no|number))?|iban|card_?no|acct_?no"),
    ("phone", r"phone(?:_?(?:no|number))?|mobile(?:_?(?:no|number))?|tel|telephone|cellphone"
              r"|msisdn|shouji"),
    ("email", r"e_?mail(?:_?address)?|mail_?address"),
    ("birth_date", r"birth(?:_?(?:date|day))?|birthday|birthdate|dob"),
    ("address", r"(?:home_|home|postal_|mailing_)?(?:address|addr)|street|residence"),
    ("name", r"full_?name|sur_?name|first_?name|last_?name|given_?name|family_?name"
             r"|real_?name|person_?name|xingming|xm"),
)  # fmt: skip

_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalise_column(name: str) -> str:
    """Split camelCase and lower-case: the form heuristics and catalog keys use.

    >>> normalise_column("NationalID"), normalise_column("idCardNo")
    ('national_id', 'id_card_no')
    """
    return _CAMEL.sub("_", name).lower()


@dataclass(frozen=True)
class Heuristics:
    """Ordered ``(class, pattern)`` rules applied to normalised column names.

    Parameters
    ----------
    rules
        Tried in order; the first rule with a matching token run wins.

    Examples
    --------
    >>> h = Heuristics.with_builtins([("vehicle_plate", "plate_?no")])
    >>> h.classify("car_plate_no"), h.classify("mobile")
    ('vehicle_plate', 'phone')
    """

    rules: tuple[tuple[str, str], ...]
    compiled_: tuple[tuple[str, re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple(
            (cls, re.compile(rf"(?:^|_)(?:{pattern})(?:_|$)")) for cls, pattern in self.rules
        )
        object.__setattr__(self, "compiled_", compiled)

    @classmethod
    def with_builtins(
        cls, extra: Iterable[tuple[str, str]] = (), *, builtin: bool = True
    ) -> Heuristics:
        """Catalog-supplied rules first (they are more specific), then the built-ins."""
        return cls(tuple(extra) + (BUILTIN_PATTERNS if builtin else ()))

    def classify(self, column: str) -> str | None:
        """Class suggested for ``column`` (any case), or ``None``."""
        name = normalise_column(column)
        if name == "name":
            return "name"
        for cls, pattern in self.compiled_:
            if pattern.search(name):
                return None if cls == NOT_SENSITIVE else cls
        return None


#: The built-in heuristics alone.
HEURISTICS: Final = Heuristics.with_builtins()
