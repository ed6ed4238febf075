"""Detect a log file's format (and a stderr log's ``log_line_prefix``) from its content.

The first non-blank lines decide. For stderr logs without ``--log-line-prefix`` the
prefixes in :data:`KNOWN_PREFIXES` are tried and the one matching most lines wins
(ties go to the prefix listed first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streams.chunking import open_binary
from streams.exceptions import UnknownFormatError
from streams.pg.prefix import DEBIAN_PREFIX, DEFAULT_PREFIX, PGBADGER_PREFIX, record_pattern

KNOWN_PREFIXES: Final = (
    PGBADGER_PREFIX,
    "%t [%a] [%e] [%p]: [%l-1] user=%u,db=%d,client=%h ",  # IBM Cloud Databases
    "%t:%r:%u@%d:[%p]:",  # Amazon RDS
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p] %u@%d ",
    # A %q prefix also matches lines of the shorter one: the shorter one is listed first
    # so it wins a tie, and the %q one wins when session lines carry user@db.
    DEFAULT_PREFIX,
    DEBIAN_PREFIX,
    "%m [%p] %q[%c] %u@%d ",
    "%t [%p] ",
    "%t [%p] %q%u@%d ",
)
_CSV = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \S+,")
_MARIADB = re.compile(
    r"^(?:\d{8} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}[ T]\S+|\S+ \d{2}:\d{2}:\d{2}),"
    r"[^,]*,[^,]*,[^,]*,\d+,\d+,(?:CONNECT|DISCONNECT|FAILED_CONNECT|QUERY|"
    r"READ|WRITE|CREATE|ALTER|DROP|RENAME|PROXY_CONNECT|CHANGEUSER),"
)
_SAMPLE_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class Detected:
    """A detected format and, for stderr logs, the prefix that fits."""

    format: str
    log_line_prefix: str | None = None


def _sample_lines(path: Path) -> list[str]:
    with open_binary(path) as fh:
        data = fh.read(_SAMPLE_BYTES)
    return [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()][:400]


def detect_text(lines: list[str]) -> Detected:
    """Detect from sample lines.

    >>> detect_text(["2026-11-28 07:50:00.123 UTC [42] LOG:  AUDIT: x"])
    Detected(format='pgaudit-stderr', log_line_prefix='%m [%p] ')
    >>> detect_text(["20261128 07:50:00,db1,alice,10.0.0.1,3,7,QUERY,records,'SELECT 1',0"]).format
    'mariadb-audit'
    """
    firsts = lines[:50]
    if not firsts:
        raise UnknownFormatError("the file is empty: nothing to detect the format from")
    if sum(_looks_json(ln) for ln in firsts) * 2 > len(firsts):
        return Detected("pgaudit-json")
    if sum(bool(_MARIADB.match(ln)) for ln in firsts) * 2 > len(firsts):
        return Detected("mariadb-audit")
    best, best_hits = None, 0
    for prefix in KNOWN_PREFIXES:
        pattern = re.compile(record_pattern(prefix))
        hits = sum(bool(pattern.match(ln)) for ln in lines)
        if hits > best_hits:
            best, best_hits = prefix, hits
    csv_hits = sum(bool(_CSV.match(ln)) for ln in lines)
    if best is not None and best_hits >= csv_hits:
        return Detected("pgaudit-stderr", best)
    if csv_hits:
        return Detected("pgaudit-csv")
    raise UnknownFormatError(
        "cannot tell the format from the first lines; pass --format, and for stderr logs "
        "--log-line-prefix (the server's log_line_prefix setting)"
    )


def _looks_json(line: str) -> bool:
    if not line.lstrip().startswith("{"):
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    return isinstance(obj, dict) and "timestamp" in obj and "error_severity" in obj


def detect_file(path: Path) -> Detected:
    """Detect the format of ``path`` from its first lines."""
    return detect_text(_sample_lines(path))
