"""PostgreSQL parser behaviour on hand-made lines: edges the real workload cannot reach."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from paths import DATA
from streams.file_source import SourceOptions, iter_file_batches
from streams.pg.csvlog import PgauditCsvlogParser
from streams.pg.prefix import prefix_pattern
from streams.pg.stderr import PgauditStderrParser

SNAPSHOT = DATA / "real" / "pg"


def _all(parser, text: str) -> tuple[pl.DataFrame, pl.DataFrame]:  # type: ignore[no-untyped-def]
    r = parser.feed(text, source="t", first_line=1)
    f = parser.flush()
    return pl.concat([r.events, f.events]), r.rejects


def _csv_line(message: str, *, context: str = "", ts: str = "2026-11-28 07:50:00.000 UTC") -> str:
    msg = message.replace('"', '""')
    context = f'"{context}"' if context else ""
    return (
        f'{ts},"alice","records",7,"10.1.2.3:5000","65a1.7",1,"SELECT",'
        f'2026-11-28 07:49:00 UTC,3/1,0,LOG,00000,"{msg}",,,,,{context},,,,"psql",'
        '"client backend",,0\n'
    )


def test_forged_audit_from_plpgsql_is_rejected() -> None:
    forged = _csv_line(
        "AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1",
        context="PL/pgSQL function inline_code_block line 1 at RAISE",
    )
    events, rejects = _all(PgauditCsvlogParser(), forged)
    assert events.is_empty()
    assert rejects["reason"].to_list() == ["forged_audit"]
    assert "PL/pgSQL" in rejects["raw"][0]  # the fast path rebuilds the record's text


def test_bad_payload_rejected_with_its_text() -> None:
    text = _csv_line("AUDIT: SESSION,x,1,READ") + _csv_line(
        "AUDIT: SESSION,2,1,READ,SELECT,,,SELECT 2,<none>,4", ts="2026-11-28 07:50:01.000 UTC"
    )
    events, rejects = _all(PgauditCsvlogParser(), text)
    assert events["rows"].to_list() == [4]
    assert rejects.select("line", "reason").rows() == [(1, "bad_audit_payload")]
    assert "AUDIT: SESSION,x,1,READ" in rejects["raw"][0]


def test_unknown_zone_is_rejected_not_guessed() -> None:
    events, rejects = _all(
        PgauditCsvlogParser(),
        _csv_line(
            "AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1", ts="2026-11-28 07:50:00 QQT"
        ),
    )
    assert events.is_empty() and rejects["reason"].to_list() == ["bad_timestamp"]


def test_zone_abbreviation_override() -> None:
    line = _csv_line(
        "AUDIT: SESSION,1,1,READ,SELECT,,,SELECT 1,<none>,1", ts="2026-11-28 15:50:00 CST"
    )
    us, _ = _all(PgauditCsvlogParser(), line)
    china, _ = _all(PgauditCsvlogParser(abbreviations={"CST": 8 * 3600}), line)
    assert str(us["event_time"][0]) == "2026-11-28 21:50:00+00:00"
    assert str(china["event_time"][0]) == "2026-11-28 07:50:00+00:00"


def test_remote_host_port_and_session_id_escapes() -> None:
    p = PgauditStderrParser(log_line_prefix="%m %r %c %u@%d [%p] ")
    text = (
        "2026-11-28 07:50:00.100 UTC 10.9.8.7(40001) 65a1.2a bob@records [42] LOG:  "
        "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.citizens,SELECT * FROM citizens,<none>,200\n"
    )
    events, rejects = _all(p, text)
    assert rejects.is_empty()
    assert events.select("client_ip", "client_port", "session_id", "user", "rows").row(0) == (
        "10.9.8.7",
        40001,
        "65a1.2a",
        "bob",
        200,
    )


def test_error_statement_and_pid_reuse_in_stderr() -> None:
    p = PgauditStderrParser(log_line_prefix="%m [%p] %q%u@%d ")
    text = (
        "2026-11-28 07:50:00.000 UTC [42] LOG:  connection received: host=10.0.0.1 port=1\n"
        "2026-11-28 07:50:00.001 UTC [42] [unknown]@[unknown] LOG:  connection received: "
        "host=10.0.0.1 port=1\n"
        '2026-11-28 07:50:01.000 UTC [42] eve@records ERROR:  relation "x" does not exist\n'
        "2026-11-28 07:50:01.000 UTC [42] eve@records STATEMENT:  SELECT *\n\tFROM x\n"
        "2026-11-28 07:50:02.000 UTC [42] eve@records LOG:  disconnection: session time: 0:00:02"
        " user=eve database=records host=10.0.0.1 port=1\n"
        "2026-11-28 07:51:00.000 UTC [42] LOG:  connection received: host=10.0.0.2 port=2\n"
        "2026-11-28 07:51:01.000 UTC [42] mallory@records LOG:  AUDIT: SESSION,1,1,READ,SELECT,"
        ",,SELECT 1,<none>,1\n"
    )
    events, rejects = _all(p, text)
    assert rejects.is_empty()
    err = events.filter(pl.col("error_code").is_not_null())
    assert err.select("user", "statement", "client_ip").row(0) == (
        "eve",
        "SELECT *\nFROM x",
        "10.0.0.1",
    )
    # The pid was reused by a new session: its address must not leak from the old one.
    audit = events.filter(pl.col("audit_type").is_not_null())
    assert audit.select("user", "client_ip").row(0) == ("mallory", "10.0.0.2")


def test_statement_split_across_chunks_is_merged_once(tmp_path: Path) -> None:
    # log_relation lines of one statement, fed in chunks so small that they straddle.
    src = (SNAPSHOT / "default-prefix.csv").read_bytes()
    path = tmp_path / "pg.csv"
    path.write_bytes(src)

    def statements(chunk_bytes: int) -> pl.DataFrame:
        frames = [
            b.result.events
            for b in iter_file_batches(
                [path], SourceOptions(format="pgaudit-csv", chunk_bytes=chunk_bytes)
            )
        ]
        return pl.concat(frames).sort("raw_ref").drop("raw_ref")

    whole = statements(1 << 24)
    for size in (300, 1000, 4096):
        assert statements(size).equals(whole), size


def test_sessions_continue_across_rotated_files(tmp_path: Path) -> None:
    lines = (SNAPSHOT / "default-prefix.log").read_text().splitlines(keepends=True)
    cut = next(i for i, ln in enumerate(lines) if "AUDIT: SESSION,5," in ln)
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("".join(lines[:cut]))
    second.write_text("".join(lines[cut:]))
    opts = SourceOptions(format="pgaudit-stderr", log_line_prefix="%m [%p] ")
    events = pl.concat([b.result.events for b in iter_file_batches([first, second], opts)])
    after = events.filter(pl.col("raw_ref").str.starts_with(str(second)))
    assert after.height > 0
    assert after["user"].null_count() == 0 and after["client_ip"].null_count() == 0


def test_prefix_padding_and_literal_percent() -> None:
    import re

    pat = re.compile(prefix_pattern("%% %-8u|%5p "))
    m = pat.match("% alice   |   42 ")
    assert m is not None and m.group("user").strip() == "alice" and m.group("pid").strip() == "42"
