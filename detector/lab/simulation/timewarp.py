"""Give every log line its simulated time; leave every other byte as the server wrote it.

The runner executes steps (connect, statement, close) one at a time and records each step's
real span in whole milliseconds, ``[real_first, real_last]``, waiting for the clock to tick
between steps so that no two spans share a millisecond.  A client backend logs only while
a step of its session runs (``connection received``/``authorized`` during connect, AUDIT
during the statement, ``disconnection`` before the close step ends, which waits for the
backend to exit), and PostgreSQL truncates its times to the millisecond, so every line of a
client session falls inside exactly one span.

A :class:`Timeline` maps a real millisecond ``m`` to simulated time with slope 1 from the
first span ending at or after ``m``: ``sim_first[i] + (m - real_first[i])``.  Inside a span
that keeps the statement's real duration; a line between spans (a background process)
sticks to the next step.  The mapping is strictly increasing when every simulated step
start is at least the real distance after the previous one, which :meth:`Timeline.add`
guarantees.

>>> tl = Timeline()
>>> tl.add(1_000, 1_004, 50_000)   # a step ran from real ms 1000 to 1004, planned at 50 s
50000
>>> tl.add(1_006, 1_006, 90_000)
90000
>>> [tl.to_sim(m) for m in (1_000, 1_004, 1_005, 1_006, 1_010)]
[50000, 50004, 89999, 90000, 90004]
>>> warp_stderr(b"1970-01-01 00:00:01.004 UTC [7] LOG:  x\\n\\tmore\\n", tl)
b'1970-01-01 00:00:50.004 UTC [7] LOG:  x\\n\\tmore\\n'
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: ``%m`` with log_timezone UTC (``%t`` and session starts lack the milliseconds)
_TS = re.compile(rb"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{3}))? UTC")


@dataclass
class Timeline:
    """Real step spans (epoch ms) and the simulated time each step starts at.

    ``strict``: spans never share a millisecond (lines are mapped by time, PostgreSQL).
    Otherwise a step may start in the millisecond the previous one ended in: lines are
    mapped by position (server_audit, :func:`warp_audit`).
    """

    real_first: list[int] = field(default_factory=list)
    real_last: list[int] = field(default_factory=list)
    sim_first: list[int] = field(default_factory=list)
    strict: bool = True

    def add(self, real_first: int, real_last: int, planned_ms: int) -> int:
        """Record a step; returns its simulated start (``planned_ms`` or a little later).

        A step is pushed later when the previous one ran longer (in real time) than the
        simulated gap between them allows.
        """
        if real_last < real_first:
            raise ValueError(f"span ends before it starts: {real_first}..{real_last}")
        if self.real_last and (
            real_first < self.real_last[-1] or (self.strict and real_first == self.real_last[-1])
        ):
            raise ValueError(
                f"span starting at {real_first} overlaps the previous one ({self.real_last[-1]})"
            )
        sim = planned_ms
        if self.real_first:
            sim = max(sim, self.sim_first[-1] + real_first - self.real_first[-1])
        self.real_first.append(real_first)
        self.real_last.append(real_last)
        self.sim_first.append(sim)
        return sim

    def __len__(self) -> int:
        return len(self.real_first)

    def _index(self, real_ms: int) -> int:
        return min(bisect.bisect_left(self.real_last, real_ms), len(self.real_last) - 1)

    def to_sim(self, real_ms: int) -> int:
        """Simulated epoch ms of the real epoch ms ``real_ms``."""
        if not self.real_first:
            raise ValueError("empty timeline")
        i = self._index(real_ms)
        return self.sim_first[i] + real_ms - self.real_first[i]

    def sim_last(self, i: int) -> int:
        """Simulated time of the last millisecond of step ``i``."""
        return self.sim_first[i] + self.real_last[i] - self.real_first[i]

    def at_step(self, i: int, real_ms: int) -> int:
        """Simulated time of real ``real_ms`` taken inside step ``i`` (clamped to its span).

        >>> tl = Timeline()
        >>> _ = tl.add(1_000, 1_400, 50_000)
        >>> tl.at_step(0, 0), tl.at_step(0, 1_200), tl.at_step(0, 2_000)
        (50000, 50200, 50400)
        """
        t = min(max(real_ms, self.real_first[i]), self.real_last[i])
        return self.sim_first[i] + t - self.real_first[i]

    def session_start(self, start_ms: int, first_line_ms: int) -> int:
        """Simulated start of a backend that started at ``start_ms`` (whole seconds).

        A session start is logged without milliseconds: ``start_ms`` can lie up to a
        second before the real start, in an earlier step whose simulated time may be hours
        away.  When the step of the session's first line could contain the start, the
        start is taken inside that step; otherwise (a background process started long
        before it logged) the start is mapped as it is.
        """
        i = self._index(first_line_ms)
        if start_ms + 999 >= self.real_first[i]:
            start_ms = max(start_ms, self.real_first[i])
        return self.to_sim(start_ms)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "real_first": self.real_first,
            "real_last": self.real_last,
            "sim_first": self.sim_first,
        }
        if not self.strict:
            out["strict"] = False
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        return cls(
            list(data["real_first"]),
            list(data["real_last"]),
            list(data["sim_first"]),
            bool(data.get("strict", True)),
        )


def parse_ts(text: bytes) -> int:
    """Epoch ms of a PostgreSQL UTC timestamp (``%m`` or whole seconds).

    >>> parse_ts(b"1970-01-01 00:00:01.500 UTC"), parse_ts(b"1970-01-01 00:01:00 UTC")
    (1500, 60000)
    """
    m = _TS.fullmatch(text)
    if m is None:
        raise ValueError(f"not a UTC timestamp of PostgreSQL: {text!r}")
    y, mo, d, h, mi, s, ms = m.groups()
    t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=dt.UTC)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1) + int(ms or 0)


def format_ts(ms: int, millis: bool = True) -> bytes:
    """PostgreSQL's text of epoch ms in UTC, with or without the milliseconds.

    >>> format_ts(1500), format_ts(1500, millis=False)
    (b'1970-01-01 00:00:01.500 UTC', b'1970-01-01 00:00:01 UTC')
    """
    t = _EPOCH + dt.timedelta(milliseconds=ms)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    if millis:
        text += f".{ms % 1000:03d}"
    return (text + " UTC").encode()


class _Rewriter:
    """Maps timestamp texts, remembering each session's simulated start."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.starts: dict[bytes, bytes] = {}

    def line_time(self, text: bytes) -> bytes:
        ms = parse_ts(text)
        return format_ts(self.timeline.to_sim(ms), millis=len(text) > 23)

    def session_start(self, session: bytes, text: bytes, line_text: bytes) -> bytes:
        if session not in self.starts:
            sim = self.timeline.session_start(parse_ts(text), parse_ts(line_text))
            self.starts[session] = format_ts(sim - sim % 1000, millis=False)
        return self.starts[session]


def _splice(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out, pos = [], 0
    for start, end, new in edits:
        out += [data[pos:start], new]
        pos = end
    out.append(data[pos:])
    return b"".join(out)


# a csvlog field: quoted (with "" inside, newlines allowed) or bare
_CSV_FIELD = re.compile(rb'"[^"]*(?:""[^"]*)*"|[^,\n"]*')
CSV_LOG_TIME, CSV_SESSION_ID, CSV_SESSION_START = 0, 5, 8


def csv_records(data: bytes) -> list[list[tuple[int, int]]]:
    """Field spans ``(start, end)`` of every csvlog record (quoted fields keep their quotes).

    >>> data = b'a,"x\\ny",\\n"q""x",b\\n'
    >>> [[data[s:e] for s, e in r] for r in csv_records(data)]
    [[b'a', b'"x\\ny"', b''], [b'"q""x"', b'b']]
    """
    records, pos, n = [], 0, len(data)
    while pos < n:
        spans = []
        while True:
            m = _CSV_FIELD.match(data, pos)
            assert m is not None  # the pattern matches the empty string
            spans.append(m.span())
            pos = m.end()
            if pos >= n or data[pos] == 0x0A:
                pos += 1
                break
            if data[pos] != 0x2C:
                raise ValueError(f"malformed csvlog at byte {pos}: {data[pos : pos + 40]!r}")
            pos += 1
        records.append(spans)
    return records


def warp_csvlog(data: bytes, timeline: Timeline) -> bytes:
    """csvlog with ``log_time`` and ``session_start_time`` in simulated time.

    Parameters
    ----------
    data
        The whole file, as the server wrote it (``log_timezone = 'UTC'``).
    timeline
        The run's step spans.

    Returns
    -------
    bytes
        The same bytes with those two columns rewritten (same widths).

    Examples
    --------
    >>> tl = Timeline()
    >>> _ = tl.add(1_000, 1_001, 3_600_000)
    >>> line = b"1970-01-01 00:00:01.001 UTC,,,7,,1.7,1,,1970-01-01 00:00:01 UTC,x\\n"
    >>> warp_csvlog(line, tl)
    b'1970-01-01 01:00:00.001 UTC,,,7,,1.7,1,,1970-01-01 01:00:00 UTC,x\\n'
    """
    rw = _Rewriter(timeline)
    edits = []
    for spans in csv_records(data):
        (a, b), (c, d) = spans[CSV_LOG_TIME], spans[CSV_SESSION_START]
        line_text = data[a:b]
        edits.append((a, b, rw.line_time(line_text)))
        if d > c:
            session = data[slice(*spans[CSV_SESSION_ID])]
            edits.append((c, d, rw.session_start(session, data[c:d], line_text)))
    return _splice(data, edits)


_JSON_TIME = re.compile(rb'^\{"timestamp":"([^"]+)"')
# inside a JSON string every quote is escaped, so these keys cannot match message text
_JSON_START = re.compile(rb',"session_start":"([^"]+)"')
_JSON_SESSION = re.compile(rb',"session_id":"([^"]*)"')


def warp_jsonlog(data: bytes, timeline: Timeline) -> bytes:
    """jsonlog with ``timestamp`` and ``session_start`` in simulated time."""
    rw = _Rewriter(timeline)
    edits = []
    for line in re.finditer(rb"[^\n]+", data):
        base = line.start()
        text = line.group()
        m = _JSON_TIME.match(text)
        if m is None:
            raise ValueError(f"jsonlog line without a leading timestamp: {text[:80]!r}")
        line_text = m.group(1)
        edits.append((base + m.start(1), base + m.end(1), rw.line_time(line_text)))
        s = _JSON_START.search(text)
        if s is not None:
            session = _JSON_SESSION.search(text)
            key = session.group(1) if session else b""
            new = rw.session_start(key, s.group(1), line_text)
            edits.append((base + s.start(1), base + s.end(1), new))
    return _splice(data, edits)


_STDERR_TIME = re.compile(rb"^" + _TS.pattern, re.MULTILINE)


def warp_stderr(data: bytes, timeline: Timeline) -> bytes:
    """stderr log whose ``log_line_prefix`` starts with ``%m`` or ``%t``, in simulated time.

    Continuation lines start with a tab, so only record starts match.
    """
    rw = _Rewriter(timeline)
    edits = [(m.start(), m.end(), rw.line_time(m.group())) for m in _STDERR_TIME.finditer(data)]
    return _splice(data, edits)


# server_audit's default timestamp (local time of the server, whole seconds), line start
_AUDIT_TS = re.compile(rb"^(\d{4})(\d\d)(\d\d) (\d\d):(\d\d):(\d\d),", re.MULTILINE)


def _audit_ms(m: re.Match[bytes]) -> int:
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    return (dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(milliseconds=1)


def format_audit_ts(ms: int) -> bytes:
    """server_audit's ``YYYYMMDD HH:MM:SS`` of epoch ms, in UTC.

    >>> format_audit_ts(1_709_542_861_999)
    b'20240304 09:01:01'
    """
    return (_EPOCH + dt.timedelta(milliseconds=ms)).strftime("%Y%m%d %H:%M:%S").encode()


def warp_audit(
    data: bytes, timeline: Timeline, ends: Sequence[int], utc_offset_ms: int = 0
) -> bytes:
    """A MariaDB server_audit file with each line's timestamp in simulated time.

    server_audit stamps whole seconds, so a line cannot be told from its time alone which
    of the many steps of that second wrote it.  Lines are mapped by *position* instead:
    the runner waits after every step until the server has logged it (see
    :mod:`.mariadb_runner`), so the file is in step order and ``ends[i]`` is the byte
    offset just after the last line of step ``i``.  Within its step a line keeps its real
    offset (clamped to the step's span), so a long statement's lines keep its duration.

    Parameters
    ----------
    data
        The part of the audit file the run wrote (byte 0 = start of the first step).
    timeline
        The run's step spans; ``len(ends) == len(timeline)``.
    ends
        Byte offset in ``data`` after each step's lines (non-decreasing).
    utc_offset_ms
        How far the server's local time is ahead of UTC (0 for a server in UTC).

    Returns
    -------
    bytes
        The same bytes but the leading ``YYYYMMDD HH:MM:SS`` of each line, now in UTC.

    Examples
    --------
    >>> tl = Timeline()
    >>> _ = tl.add(5_000, 5_300, 3_600_000)
    >>> _ = tl.add(5_301, 5_302, 7_200_000)
    >>> connect = b"19700101 00:00:05,h,u,1.2.3.4,7,0,CONNECT,,,0\\n"
    >>> query = b"19700101 00:00:05,h,u,1.2.3.4,7,9,QUERY,,'x',0\\n"
    >>> out = warp_audit(connect + query, tl, [len(connect), len(connect + query)])
    >>> [line[:17] for line in out.decode().splitlines()]
    ['19700101 01:00:00', '19700101 02:00:00']
    """
    if len(ends) != len(timeline):
        raise ValueError(f"{len(ends)} step ends for {len(timeline)} steps")
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    cache: dict[tuple[int, bytes], bytes] = {}
    edits = []
    for m in _AUDIT_TS.finditer(data):
        i = min(bisect.bisect_right(ends, m.start()), len(ends) - 1)
        key = (i, m.group())
        if key not in cache:
            cache[key] = format_audit_ts(timeline.at_step(i, _audit_ms(m) - utc_offset_ms))
        edits.append((m.start(), m.end() - 1, cache[key]))
    if len(edits) != lines:
        bad = next((ln for ln in data.split(b"\n") if ln and not _AUDIT_TS.match(ln + b"\n")), b"")
        raise ValueError(
            "server_audit line without the default YYYYMMDD HH:MM:SS timestamp"
            f" (server_audit_timestamp_format is not supported): {bad[:80]!r}"
        )
    return _splice(data, edits)


def first_audit_time(data: bytes) -> int | None:
    """Epoch ms of the first line of a server_audit file in UTC (None when empty).

    >>> first_audit_time(b"20240304 09:00:01,h,u,1.2.3.4,7,0,CONNECT,,,0\\n")
    1709542801000
    """
    m = _AUDIT_TS.match(data)
    return None if m is None else _audit_ms(m)


WARPERS = {".csv": warp_csvlog, ".json": warp_jsonlog, ".log": warp_stderr}


def warp_file(src: Path, dest: Path, timeline: Timeline) -> None:
    """Rewrite one log file (format from its suffix) into ``dest``."""
    dest.write_bytes(WARPERS[src.suffix](src.read_bytes(), timeline))


def first_time(path: Path) -> int | None:
    """Epoch ms of the first timestamp in a log file (None when empty)."""
    with path.open("rb") as f:
        head = f.read(200)
    m = _TS.search(head)
    return None if m is None else parse_ts(m.group())


def load_timeline(path: Path) -> Timeline:
    """A timeline saved as JSON by the simulator (``timeline.json``)."""
    return Timeline.from_json(json.loads(path.read_text()))
