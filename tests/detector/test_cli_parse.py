"""``exfil-detector parse`` and ``demo`` end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from paths import DATA
from streams.schema import EVENT_SCHEMA

SNAPSHOT = DATA / "real" / "pg"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args], capture_output=True, text=True, check=False
    )


def test_parse_writes_the_canonical_table_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "events.parquet"
    done = _cli(
        "parse",
        str(SNAPSHOT / "default-prefix.log"),
        str(SNAPSHOT / "debian-prefix.csv"),
        str(SNAPSHOT / "pgbadger-prefix.json"),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    events = pl.read_parquet(out)
    assert events.schema == EVENT_SCHEMA
    assert events.filter(pl.col("event_kind") == "statement").height == 3 * 36
    assert set(events["source_format"]) == {"pgaudit-stderr", "pgaudit-csv", "pgaudit-json"}
    for label in ("lines read", "statements", "rejected", "time span", "throughput"):
        assert label in done.stdout
    assert "2026-" in done.stdout


def test_rejects_are_counted_by_reason_and_dead_lettered(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    good = (SNAPSHOT / "default-prefix.log").read_bytes()
    log.write_bytes(good + b"this is not a log line\n\xff\xfe\n")
    out, dlq = tmp_path / "e.parquet", tmp_path / "dead.jsonl"
    done = _cli("parse", str(log), "--format", "pgaudit-stderr", "--log-line-prefix", "%m [%p] ",
                "--out", str(out), "--dead-letter", str(dlq))  # fmt: skip
    assert done.returncode == 0, done.stderr
    dead = [json.loads(x) for x in dlq.read_text().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["bad_prefix", "not_utf8"]
    assert {d["line"] for d in dead} == {good.count(b"\n") + 1, good.count(b"\n") + 2}
    assert "bad_prefix" in done.stdout and "not_utf8" in done.stdout


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\nworld\n")
    done = _cli("parse", str(junk), "--out", str(tmp_path / "o.parquet"))
    assert done.returncode == 2
    assert "cannot tell the format" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    done = _cli("parse", str(tmp_path / "nope.log"), "--out", str(tmp_path / "o.parquet"))
    assert done.returncode == 2 and "cannot open" in done.stderr


def test_analyse_adds_sql_columns_and_sizes_whole_table_exports(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[tables."public.citizens"]\nrows = 1200000\n')
    key = tmp_path / "id.key"
    key.write_text("a-secret-of-at-least-16-bytes")
    out = tmp_path / "e.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "detector", "parse", str(SNAPSHOT / "debian-prefix.csv"),
         "--catalog", str(catalog), "--out", str(out)],
        capture_output=True, text=True, check=False,
        env={**__import__("os").environ, "EXFIL_ID_HASH_KEY_FILE": str(key)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = pl.read_parquet(out)
    dump = events.filter(pl.col("statement") == "COPY citizens TO STDOUT")
    assert dump.select("rows", "rows_estimate", "rows_estimate_source", "is_export").row(0) == (
        None, 1_200_000, "catalog", True
    )  # fmt: skip
    lookups = events.filter(pl.col("subject_count") > 0)
    assert lookups.height >= 5
    # Only keyed hashes of the ID numbers, never the numbers themselves.
    assert lookups["subject_keys"].dtype == pl.List(pl.UInt64)
