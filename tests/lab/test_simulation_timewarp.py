"""The time warp on synthetic logs: the mapping, and bytes other than timestamps untouched."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.lab.simulation.timewarp import (
    Timeline,
    format_ts,
    parse_ts,
    warp_csvlog,
    warp_jsonlog,
    warp_stderr,
)

TS = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})? UTC")
T0 = parse_ts(b"2026-11-28 07:59:18.000 UTC")  # real clock
S0 = parse_ts(b"2024-03-04 09:00:00.000 UTC")  # simulated


def mask(data: bytes) -> bytes:
    return TS.sub(b"<TS>", data)


def two_steps() -> Timeline:
    """Connect 0..2 ms planned at 09:00:00, a statement 5..9 ms planned at 09:01:30."""
    tl = Timeline()
    tl.add(T0, T0 + 2, S0)
    tl.add(T0 + 5, T0 + 9, S0 + 90_000)
    return tl


def test_inside_a_step_the_real_duration_is_kept() -> None:
    tl = two_steps()
    assert [tl.to_sim(T0 + k) for k in range(3)] == [S0, S0 + 1, S0 + 2]
    assert tl.to_sim(T0 + 9) - tl.to_sim(T0 + 5) == 4
    assert tl.sim_last(1) == S0 + 90_004


def test_a_line_between_steps_sticks_to_the_next_step() -> None:
    tl = two_steps()
    assert tl.to_sim(T0 + 3) == S0 + 90_000 - 2
    assert tl.to_sim(T0 - 50) == S0 - 50  # before the first step
    assert tl.to_sim(T0 + 100) == S0 + 90_095  # after the last


def test_a_long_step_pushes_the_next_one() -> None:
    tl = Timeline()
    tl.add(T0, T0 + 5_000, S0)  # a 5 s COPY
    assert tl.add(T0 + 5_001, T0 + 5_002, S0 + 1_000) == S0 + 5_001


def test_overlapping_spans_are_refused() -> None:
    tl = two_steps()
    with pytest.raises(ValueError, match="overlaps"):
        tl.add(T0 + 9, T0 + 10, S0 + 200_000)


@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.integers(0, 40), st.integers(0, 10**7)),
        min_size=1,
        max_size=30,
    )
)
def test_mapping_is_strictly_increasing(steps: list[tuple[int, int, int]]) -> None:
    tl = Timeline()
    real, planned = T0, S0
    for gap, length, sim_gap in steps:
        real += gap
        planned += sim_gap
        tl.add(real, real + length, planned)
        real += length
    sims = [tl.to_sim(m) for m in range(T0 - 5, real + 5)]
    assert all(b > a for a, b in itertools.pairwise(sims))


def test_session_start_without_milliseconds_stays_inside_its_connect_step() -> None:
    tl = Timeline()
    tl.add(T0 + 100, T0 + 900, S0)  # an earlier step, hours before in simulated time
    tl.add(T0 + 950, T0 + 952, S0 + 3 * 3_600_000)  # the connect step
    # the backend started at T0 + 950.x, logged as the whole second T0
    assert tl.session_start(T0, T0 + 951) == S0 + 3 * 3_600_000
    # a background process that started long before its first line maps as it is
    assert tl.session_start(T0 - 60_000, T0 + 951) == S0 - 60_100


def test_format_and_parse_round_trip() -> None:
    assert parse_ts(format_ts(S0 + 123)) == S0 + 123
    assert format_ts(S0 + 999, millis=False) == b"2024-03-04 09:00:00 UTC"
    with pytest.raises(ValueError):
        parse_ts(b"2024-03-04 09:00:00.000 CST")


CSV = (
    b'2026-11-28 07:59:18.000 UTC,,,10384,"127.0.0.12:42362",6b0a89d6.2890,1,"",'
    b'2026-11-28 07:59:18 UTC,,0,LOG,00000,"connection received: host=127.0.0.12 port=42362"'
    b',,,,,,,,,"","not initialized",,0\n'
    b'2026-11-28 07:59:18.007 UTC,"officer01","records",10384,"127.0.0.12:42362",'
    b'6b0a89d6.2890,2,"SELECT",2026-11-28 07:59:18 UTC,4/2,0,LOG,00000,"AUDIT: SESSION,1,1,'
    b'READ,SELECT,TABLE,public.citizens,""SELECT 1\n2026-11-28 07:59:18.000 UTC, -- a,b""'
    b',<not logged>,1",,,,,,,,,"portal","client backend",,0\n'
)


def test_csvlog_rewrites_only_log_time_and_session_start() -> None:
    out = warp_csvlog(CSV, two_steps())
    assert mask(out) == mask(CSV) != out
    lines = out.split(b"\n")
    assert lines[0].startswith(b"2024-03-04 09:00:00.000 UTC,")
    assert b",2024-03-04 09:00:00 UTC," in lines[0]  # session start clamped into the step
    assert lines[1].startswith(b"2024-03-04 09:01:30.002 UTC,")
    # the timestamp-like text inside the quoted statement is not a record start
    assert lines[2].startswith(b"2026-11-28 07:59:18.000 UTC, -- a,b")


def test_jsonlog_rewrites_only_timestamp_and_session_start() -> None:
    records = [
        {
            "timestamp": "2026-11-28 07:59:18.001 UTC",
            "pid": 1,
            "session_id": "6b0a89d6.1",
            "session_start": "2026-11-28 07:59:18 UTC",
            "message": 'AUDIT: x,"session_start":"2026-11-28 07:59:18 UTC"',
        },
        {
            "timestamp": "2026-11-28 07:59:18.006 UTC",
            "pid": 1,
            "session_id": "6b0a89d6.1",
            "session_start": "2026-11-28 07:59:18 UTC",
            "message": "SELECT 2026-11-28 07:59:18.006 UTC",
        },
    ]
    data = b"".join(
        json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records
    )
    out = warp_jsonlog(data, two_steps())
    got = [json.loads(line) for line in out.splitlines()]
    assert [g["timestamp"] for g in got] == [
        "2024-03-04 09:00:00.001 UTC",
        "2024-03-04 09:01:30.001 UTC",
    ]
    assert {g["session_start"] for g in got} == {"2024-03-04 09:00:00 UTC"}
    assert [g["message"] for g in got] == [r["message"] for r in records]
    assert mask(out) == mask(data)


def test_stderr_rewrites_record_starts_not_continuation_lines() -> None:
    data = (
        b"2026-11-28 07:59:18.001 UTC [7] officer01@records LOG:  AUDIT: SESSION,1,1,READ,"
        b'SELECT,,,"SELECT 1\n\t2026-11-28 07:59:18.001 UTC",<not logged>,1\n'
        b"2026-11-28 07:59:18 UTC [7] LOG:  %t prefix\n"
    )
    out = warp_stderr(data, two_steps())
    assert out.split(b"\n")[0].startswith(b"2024-03-04 09:00:00.001 UTC [7]")
    assert b"\t2026-11-28 07:59:18.001 UTC" in out
    assert out.split(b"\n")[2] == b"2024-03-04 09:00:00 UTC [7] LOG:  %t prefix"
    assert mask(out) == mask(data)
