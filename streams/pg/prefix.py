"""Turn a PostgreSQL ``log_line_prefix`` into a regular expression with named groups.

The stderr log format is whatever ``log_line_prefix`` the operator configured, so the
parser needs the prefix (``--log-line-prefix``). Escapes follow the PostgreSQL 15 manual
(``log_line_prefix``), including padding (``%-10u``) and ``%q``, after which the rest of
the prefix is printed only by session processes (background workers omit it).
"""

from __future__ import annotations

import re
from typing import Final

from streams.exceptions import PrefixError

#: The PostgreSQL default, Debian's packaged default, and the pgBadger-recommended prefix.
DEFAULT_PREFIX: Final = "%m [%p] "
DEBIAN_PREFIX: Final = "%m [%p] %q%u@%d "
PGBADGER_PREFIX: Final = "%t [%p]: user=%u,db=%d,app=%a,client=%h "

_TS = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
#: Pattern and group name per escape. Free-text fields are lazy so the literal text that
#: follows them in the prefix decides where they end.
_ESCAPES: Final[dict[str, tuple[str, str | None]]] = {
    "a": (r".*?", "application"),
    "u": (r".*?", "user"),
    "d": (r".*?", "database"),
    "r": (r"\S*?", "remote"),
    "h": (r"\S*?", "client_host"),
    "b": (r".*?", "backend_type"),
    "p": (r"\d+", "pid"),
    "P": (r"\d*", None),
    "t": (_TS + r" \S+", "timestamp"),
    "m": (_TS + r"\.\d+ \S+", "timestamp"),
    "n": (r"\d+\.\d+", "epoch"),
    "i": (r".*?", None),
    "e": (r"[0-9A-Z]{5}", "sqlstate"),
    "c": (r"[0-9a-f]+\.[0-9a-f]+", "session_id"),
    "l": (r"\d+", "line_num"),
    "s": (_TS + r" \S+", None),
    "v": (r"\S*?", None),
    "x": (r"\d+", None),
    "Q": (r"-?\d+", None),
}

SEVERITIES: Final = (
    "DEBUG5|DEBUG4|DEBUG3|DEBUG2|DEBUG1|DEBUG|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC"
    "|STATEMENT|DETAIL|HINT|CONTEXT|QUERY|LOCATION"
)


def prefix_pattern(prefix: str) -> str:
    """Regex source matching ``prefix`` at the start of a line, with named groups.

    Groups: ``timestamp``, ``epoch``, ``pid``, ``user``, ``database``, ``application``,
    ``client_host``, ``remote`` (``host(port)``), ``sqlstate``, ``session_id``,
    ``line_num``, ``backend_type`` (those the prefix contains).

    >>> import re
    >>> p = re.compile(prefix_pattern(DEBIAN_PREFIX))
    >>> p.match("2026-11-28 07:50:00.123 UTC [4242] alice@records LOG:  x").group("user")
    'alice'
    >>> p.match("2026-11-28 07:50:00.123 UTC [17] LOG:  checkpoint starting").group("pid")
    '17'
    """
    out: list[str] = []
    seen: set[str] = set()
    optional_from: int | None = None
    i = 0
    while i < len(prefix):
        ch = prefix[i]
        if ch != "%":
            out.append(re.escape(ch))
            i += 1
            continue
        m = re.match(r"%(-?\d*)([a-zA-Z%])", prefix[i:])
        if not m:
            raise PrefixError(f"dangling '%' at position {i} of log_line_prefix {prefix!r}")
        padding, esc = m.groups()
        i += m.end()
        if esc == "%":
            out.append("%")
            continue
        if esc == "q":
            optional_from = len(out)
            continue
        if esc not in _ESCAPES:
            raise PrefixError(f"unsupported escape %{esc} in log_line_prefix {prefix!r}")
        pattern, name = _ESCAPES[esc]
        if padding:
            pattern = rf" *{pattern} *"
        if name is not None and name not in seen:
            seen.add(name)
            out.append(f"(?P<{name}>{pattern})")
        else:
            out.append(f"(?:{pattern})")
    if optional_from is not None:
        out[optional_from:] = ["(?:" + "".join(out[optional_from:]) + ")?"]
    return "^" + "".join(out)


def record_pattern(prefix: str) -> str:
    """Regex source for a whole first line of a stderr log record.

    Adds the ``severity`` and ``message`` groups after the prefix.

    >>> import re
    >>> m = re.match(record_pattern(DEFAULT_PREFIX), "2026-11-28 07:50:00.123 UTC [9] LOG:  hi")
    >>> m.group("severity"), m.group("message")
    ('LOG', 'hi')
    """
    return prefix_pattern(prefix) + rf"(?P<severity>{SEVERITIES}): {{1,2}}(?P<message>.*)$"
