"""No input crashes a parser: arbitrary bytes, truncated and huge lines (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.commands.parse import parse_files
from detector.config import Config
from paths import DATA
from streams.base import MAX_RECORD_CHARS
from streams.file_source import SourceOptions, iter_file_batches

SNAPSHOT = DATA / "real" / "pg"
REAL = [
    SNAPSHOT / "debian-prefix.log",
    SNAPSHOT / "pgbadger-prefix.csv",
    SNAPSHOT / "default-prefix.json",
]
FORMATS = ["pgaudit-csv", "pgaudit-json", "pgaudit-stderr", "mariadb-audit"]


def _run(
    data: bytes, fmt: str, chunk_bytes: int = 1 << 20
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.log"
        path.write_bytes(data)
        options = SourceOptions(format=fmt, chunk_bytes=chunk_bytes)
        events, rejects, lines = [], [], 0
        for batch in iter_file_batches([path], options):
            events.append(batch.result.events)
            rejects.append(batch.result.rejects)
            lines += batch.result.lines
        return pl.concat(events), pl.concat(rejects), lines


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), fmt=st.sampled_from(FORMATS))
def test_arbitrary_bytes_never_raise(data: bytes, fmt: str) -> None:
    _events, rejects, lines = _run(data, fmt)
    assert lines == _line_count(data)
    # Every rejected line is a real line of the input.
    assert rejects["line"].is_between(1, max(lines, 1)).all()


_text_lines = st.lists(
    st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            [
                "2026-11-28 07:50:00.123 UTC [42] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,x,<none>",
                '2026-11-28 07:50:00.123 UTC [42] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,"x',
                "2026-11-28 07:50:00.123 UTC [42] LOG:  AUDIT: SESSION,x",
                '2026-11-28 07:50:00.123 UTC,"u","d",1,"h:1","s",1,"",,,,LOG,,"AUDIT: SESSION,1,1',
                '{"timestamp":"2026-11-28 07:50:00.123 UTC","error_severity":"LOG","message":"AU',
                "\tcontinuation",
                "20261128 07:50:00,h,u,1.2.3.4,1,1,QUERY,db,'SELECT \\'",
            ]
        ),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_text_lines, fmt=st.sampled_from(FORMATS))
def test_near_miss_lines_are_rejected_not_raised(lines: list[str], fmt: str) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    _events, _rejects, n = _run(data, fmt, chunk_bytes=256)
    assert n == _line_count(data)


@settings(max_examples=25, deadline=None)
@given(cut=st.floats(min_value=0.0, max_value=1.0), which=st.sampled_from(REAL))
def test_truncated_real_logs_keep_everything_before_the_cut(cut: float, which: Path) -> None:
    data = which.read_bytes()
    head = data[: int(len(data) * cut)]
    fmt = {".log": "pgaudit-stderr", ".csv": "pgaudit-csv", ".json": "pgaudit-json"}[which.suffix]
    events, _rejects, lines = _run(head, fmt)
    assert lines == _line_count(head)
    full, _, _ = _run(data, fmt)
    # Every statement that ended before the last (possibly cut) line is still there.
    last_whole = head.count(b"\n")
    whole = full.filter(pl.col("raw_ref").str.extract(r":(\d+)$").cast(pl.Int64) < last_whole - 3)
    got = set(events["raw_ref"].str.extract(r":(\d+)$").to_list())
    assert set(whole["raw_ref"].str.extract(r":(\d+)$").to_list()) <= got


def test_huge_line_is_rejected_as_too_long() -> None:
    huge = "2026-11-28 07:50:00.123 UTC [42] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,"
    huge += "x" * (MAX_RECORD_CHARS + 10) + ",<none>,1\n"
    ok = "2026-11-28 07:50:01.000 UTC [42] LOG:  AUDIT: SESSION,2,1,READ,SELECT,,,SELECT 1,<none>\n"
    events, rejects, lines = _run((huge + ok).encode(), "pgaudit-stderr")
    assert rejects["reason"].to_list() == ["too_long"]
    assert events["statement"].to_list() == ["SELECT 1"]
    assert lines == 2


def test_garbage_between_good_lines_costs_only_itself() -> None:
    good = (SNAPSHOT / "pgbadger-prefix.csv").read_bytes()
    lines = good.split(b"\n")
    middle = len(lines) // 2
    broken = b"\n".join(
        [*lines[:middle], b'\xff\xfe not csv, "unbalanced', b"garbage", *lines[middle:]]
    )
    path_events, _ = parse_files(
        [SNAPSHOT / "pgbadger-prefix.csv"], Config(), out=None, dead_letter=None
    )
    events, rejects, _ = _run(broken, "pgaudit-csv")
    assert sorted(rejects["reason"].to_list()) == ["bad_csv", "not_utf8"]
    assert events.height == path_events.height
