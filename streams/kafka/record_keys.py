"""Audit-log files as whole records, each with the Kafka key that keeps a user together.

``exfil-detector ship`` publishes log files to Kafka the way a log shipper would: one
message per audit record, keyed by the database user. The detector keeps per-user state per
partition, so every record of a user must land in the same partition, including the lines
of a session written before its user is known (PostgreSQL's ``connection received`` line
has no user; ``%u`` prints ``[unknown]`` there). Files are therefore read twice: the first
pass maps each session to its user, the second yields the keyed records. Memory grows with
the number of sessions, not with the file.

Keys, in order of preference: the record's own user; its session's user; its session id
(a session that never gets a user stays together); ``""`` (:data:`UNPARSED_KEY`) for a
record whose user and session cannot be read. Kafka accepts a null key but then spreads
the messages over partitions at random: a bad line keyed ``""`` lands in one fixed
partition, in file order, and reaches the detector's dead-letter path like any other.

Record boundaries follow the parsers (see :mod:`streams.chunking`):

* stderr: a line matching the parser's ``record_start`` begins a record; tab-led lines and
  ``STATEMENT``/``DETAIL``/``CONTEXT`` lines continue it (PostgreSQL writes them in the same
  message); any other line is a stray record of its own.
* csvlog: quoted fields hold newlines, so a record ends where its quotes balance. A line
  that looks like the start of a csvlog record (time, user, database, pid) also ends an
  unbalanced one, so a truncated record cannot swallow the rest of the file.
* jsonlog and MariaDB ``server_audit`` escape newlines: one line is one record.

Blank lines between records are not shipped. A record's value is its bytes exactly as in
the file, without the final line terminator.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

from streams.base import MAX_RECORD_CHARS
from streams.chunking import open_binary
from streams.detect import detect_file
from streams.exceptions import SourceReadError
from streams.file_source import SourceOptions, make_parser
from streams.mariadb.fields import _FIELDS as MARIADB_FIELDS
from streams.pg.csvlog import CSV_COLUMNS
from streams.pg.prefix import DEFAULT_PREFIX, record_pattern

#: Key of records whose user and session cannot be read (never a null key: see above).
UNPARSED_KEY: Final = ""
#: What PostgreSQL prints for a user it does not know yet.
_NO_USER: Final = frozenset({"", "[unknown]"})
#: Users named in the message of PostgreSQL formats whose record has no user field filled
#: (a prefix without ``%u``): the session's authorisation or its failure.
_MESSAGE_USER: Final = re.compile(
    r'^(?:connection authorized: user=(\S+)|(?:\w+ )?authentication failed for user "([^"]*)"'
    r'|role "([^"]*)" does not exist)'
)
_CSV_USER, _CSV_SESSION, _CSV_MESSAGE = (
    CSV_COLUMNS.index(c) for c in ("user_name", "session_id", "message")
)
#: The head of a csvlog record up to its pid: a line inside a quoted field hardly ever looks
#: like this, so it safely ends a record whose quotes never balanced (a truncated line).
_CSV_HEAD: Final = re.compile(
    r'\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? [^,"]+,(?:"(?:[^"]|"")*")?,'
    r'(?:"(?:[^"]|"")*")?,\d*,'
)
#: csv parses only this much of a record: the fields used come first and are short, and
#: csv refuses fields over 128 KiB (a big statement) with an error.
_CSV_HEAD_CHARS: Final = 64 * 1024
_MARIADB_USER, _MARIADB_HOST, _MARIADB_CONN, _MARIADB_OP = (
    MARIADB_FIELDS.index(c) for c in ("user", "serverhost", "conn", "op")
)


@dataclass(frozen=True, slots=True)
class Record:
    """One audit record: its Kafka key, its raw bytes and where it starts."""

    key: str
    value: bytes
    source: str
    line: int


@dataclass(frozen=True)
class LogFormat:
    """How to cut and read the records of one file.

    ``line`` is the whole first-line pattern of stderr logs (``None`` for other formats);
    ``reused_sessions`` says session ids come back for new sessions (process ids,
    MariaDB connection ids), so a session-start line begins a new session.
    """

    name: str
    record_start: re.Pattern[str]
    line: re.Pattern[str] | None = None
    reused_sessions: bool = False


class Fields(NamedTuple):
    """What keying needs from one record."""

    user: str | None
    session: str | None
    #: Namespace of ``session`` (MariaDB's server host), so ids of two servers differ.
    scope: str = ""
    starts_session: bool = False


def resolve_format(path: Path, options: SourceOptions) -> LogFormat:
    """The format of ``path`` (detected like ``parse`` and ``replay`` do unless named).

    >>> fmt = resolve_format(Path("x.log"), SourceOptions(format="pgaudit-stderr"))
    >>> fmt.name, fmt.reused_sessions  # the default prefix has %p but no %c
    ('pgaudit-stderr', True)
    """
    if options.format == "auto":
        detected = detect_file(path)
        name, prefix = detected.format, options.log_line_prefix or detected.log_line_prefix
    else:
        name, prefix = options.format, options.log_line_prefix
    parser = make_parser(name, prefix, options)
    if name == "pgaudit-stderr":
        line = re.compile(record_pattern(prefix or DEFAULT_PREFIX))
        by_pid = "session_id" not in line.groupindex
        return LogFormat(name, parser.record_start, line, reused_sessions=by_pid)
    return LogFormat(name, parser.record_start, reused_sessions=name == "mariadb-audit")


def _known(user: object) -> str | None:
    return user if isinstance(user, str) and user not in _NO_USER else None


def _message_user(message: object) -> str | None:
    if not isinstance(message, str):
        return None
    m = _MESSAGE_USER.match(message)
    return _known(next((g for g in m.groups() if g is not None), None)) if m else None


def record_fields(fmt: LogFormat, text: str) -> Fields | None:
    """User and session of one record, or ``None`` when it cannot be read.

    >>> csvlog = resolve_format(Path("x.csv"), SourceOptions(format="pgaudit-csv"))
    >>> record_fields(csvlog, '2024-03-04 01:30:22.012 UTC,,,13371,"127.0.0.6:60441",'
    ...     '6b0a9a0f.343b,1,"",2024-03-04 01:30:22 UTC,,0,LOG,00000,"connection received: '
    ...     'host=127.0.0.6 port=60441",,,,,,,,,"","not initialized",,0')
    Fields(user=None, session='6b0a9a0f.343b', scope='', starts_session=True)
    >>> record_fields(csvlog, "not a record") is None
    True
    """
    if fmt.name == "pgaudit-csv":
        if not fmt.record_start.match(text):
            return None
        try:
            row = next(csv.reader(io.StringIO(text[:_CSV_HEAD_CHARS])), [])
        except csv.Error:
            return None
        if len(row) <= _CSV_SESSION:
            return None
        message = row[_CSV_MESSAGE] if len(row) > _CSV_MESSAGE else None
        return _pg_fields(row[_CSV_USER], row[_CSV_SESSION] or None, message)
    if fmt.name == "pgaudit-json":
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        session = obj.get("session_id")
        return _pg_fields(
            obj.get("user"), session if isinstance(session, str) else None, obj.get("message")
        )
    if fmt.name == "pgaudit-stderr" and fmt.line is not None:
        m = fmt.line.match(text.partition("\n")[0])
        if m is None:
            return None
        groups = m.groupdict()
        return _pg_fields(
            groups.get("user"), groups.get("session_id") or groups.get("pid"), groups["message"]
        )
    if fmt.name == "mariadb-audit":
        fields = text.split(",", len(MARIADB_FIELDS) - 1)
        if len(fields) < len(MARIADB_FIELDS) or not fmt.record_start.match(text):
            return None
        return Fields(
            _known(fields[_MARIADB_USER]),
            fields[_MARIADB_CONN],
            scope=fields[_MARIADB_HOST],
            starts_session=fields[_MARIADB_OP] == "CONNECT",
        )
    return None


def _pg_fields(user: object, session: str | None, message: object) -> Fields:
    starts = isinstance(message, str) and message.startswith("connection received: ")
    return Fields(_known(user) or _message_user(message), session, starts_session=starts)


def split_records(path: Path, fmt: LogFormat) -> Iterator[tuple[int, bytes]]:
    r"""``(first line number, raw bytes)`` of each record of ``path`` (see the module doc).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "pg.log"
    >>> _ = f.write_bytes(b"2026-11-28 07:50:00 UTC [7] LOG:  a\n\tb\n\n"
    ...                   b"2026-11-28 07:50:01 UTC [7] ERROR:  c\n"
    ...                   b"2026-11-28 07:50:01 UTC [7] STATEMENT:  d\nstray\n")
    >>> fmt = resolve_format(f, SourceOptions(format="pgaudit-stderr", log_line_prefix="%t [%p] "))
    >>> [line for line, _ in split_records(f, fmt)]
    [1, 4, 6]
    >>> [raw for _, raw in split_records(f, fmt)][1].decode()
    '2026-11-28 07:50:01 UTC [7] ERROR:  c\n2026-11-28 07:50:01 UTC [7] STATEMENT:  d'
    """
    parts: list[bytes] = []
    size = 0
    first = 0
    quotes = 0  # csvlog: the open record's double quotes (odd: inside a quoted field)
    csvlog = fmt.name == "pgaudit-csv"
    stderr = fmt.name == "pgaudit-stderr"

    def finish() -> bytes:
        raw = b"".join(parts)
        parts.clear()
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        return raw

    with open_binary(path) as fh:
        number = 0
        try:
            for number, raw in enumerate(fh, 1):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                # A record grown past the parsers' limit is cut: memory stays bounded and the
                # parser rejects the pieces (too_long, bad_prefix) downstream.
                open_ = bool(parts) and size <= MAX_RECORD_CHARS
                if csvlog:
                    cont = open_ and quotes % 2 == 1 and not _CSV_HEAD.match(text)
                elif stderr:
                    cont = open_ and (
                        text.startswith("\t")
                        or (fmt.line is not None and not fmt.record_start.match(text)
                            and bool(fmt.line.match(text)))
                    )  # fmt: skip
                else:
                    cont = False
                if cont:
                    parts.append(raw)
                    size += len(raw)
                    quotes += raw.count(b'"')
                    continue
                if parts:
                    yield first, finish()
                if not text.strip():
                    continue
                parts.append(raw)
                first, size, quotes = number, len(raw), raw.count(b'"')
        except (OSError, EOFError) as exc:
            raise SourceReadError(f"cannot read {path} after line {number}: {exc}") from exc
    if parts:
        yield first, finish()


def _session_key(
    fmt: LogFormat, fields: Fields, epochs: dict[tuple[str, str, str], int]
) -> tuple[str, str, str, int] | None:
    """Identity of the record's session; a reused id counts its session-start lines."""
    if fields.session is None:
        return None
    base = (fmt.name, fields.scope, fields.session)
    if not fmt.reused_sessions:
        return (*base, 0)
    if fields.starts_session:
        epochs[base] = epochs.get(base, 0) + 1
    return (*base, epochs.get(base, 0))


def _fields_of(
    plan: Sequence[tuple[Path, LogFormat]],
) -> Iterator[tuple[Path, LogFormat, int, bytes, Fields | None]]:
    for path, fmt in plan:
        for line, raw in split_records(path, fmt):
            yield path, fmt, line, raw, record_fields(fmt, raw.decode("utf-8", "replace"))


def keyed_records(plan: Sequence[tuple[Path, LogFormat]]) -> Iterator[Record]:
    """The records of the files in ``plan``, in order, keyed (two passes; module doc).

    Files are one stream: a session continued in the next (rotated) file keeps its user.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "pg.log"
    >>> _ = f.write_text("2026-11-28 07:50:00 UTC [7] LOG:  connection received: host=h\\n"
    ...                  "2026-11-28 07:50:00 UTC [7] LOG:  connection authorized: user=eve\\n"
    ...                  "2026-11-28 07:50:00 UTC [8] LOG:  checkpoint starting: time\\n")
    >>> fmt = resolve_format(f, SourceOptions(format="pgaudit-stderr", log_line_prefix="%t [%p] "))
    >>> [r.key for r in keyed_records([(f, fmt)])]
    ['eve', 'eve', '8']
    """
    users: dict[tuple[str, str, str, int], str] = {}
    epochs: dict[tuple[str, str, str], int] = {}
    for _, fmt, _, _, fields in _fields_of(plan):
        if fields is not None:
            session = _session_key(fmt, fields, epochs)
            if session is not None and fields.user is not None:
                users.setdefault(session, fields.user)
    epochs.clear()
    for path, fmt, line, raw, fields in _fields_of(plan):
        key = UNPARSED_KEY
        if fields is not None:
            session = _session_key(fmt, fields, epochs)
            key = (
                fields.user
                or (users.get(session) if session is not None else None)
                or fields.session
                or UNPARSED_KEY
            )
        yield Record(key, raw, str(path), line)


def plan_files(paths: Sequence[Path], options: SourceOptions) -> list[tuple[Path, LogFormat]]:
    """Each path with its format, resolved up front so a bad file fails before any send."""
    for path in paths:
        with open_binary(path):  # a named format reads nothing yet: check it opens
            pass
    return [(path, resolve_format(path, options)) for path in paths]
