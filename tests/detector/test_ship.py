"""``exfil-detector ship`` against a real Kafka broker, and the record keys it relies on.

The detector keeps per-user state per partition, so what matters is checked on what a
consumer reads back: every audit record arrives once, byte for byte, keyed by its user
(session lines written before the user is known included), each key in one partition, and
each key's records in file order. The expected records come from Python's ``csv`` module
and plain line splitting, not from :mod:`streams.kafka.record_keys`.
"""

from __future__ import annotations

import csv
import gzip
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from detector.commands.cli import bundled_sample, main
from paths import DATA
from realdb.kafka import KafkaBroker
from streams.file_source import SourceOptions
from streams.kafka.record_keys import UNPARSED_KEY, keyed_records, plan_files
from streams.pg.stderr import PgauditStderrParser

REAL = DATA / "real"
PG = REAL / "pg"
MARIADB_LOG = REAL / "mariadb" / "server_audit.log"


# -- helpers ----------------------------------------------------------------------------------


def csv_records(path: Path) -> list[tuple[bytes, list[str]]]:
    """``(raw bytes without the final newline, fields)`` of each csvlog record."""
    lines = path.read_bytes().split(b"\n")
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        start = 0
        for row in reader:
            out.append((b"\n".join(lines[start : reader.line_num]), row))
            start = reader.line_num
    return out


def session_users(rows: list[list[str]]) -> dict[str, str]:
    """csvlog session id -> the first user named in it."""
    users: dict[str, str] = {}
    for row in rows:
        if row[1]:
            users.setdefault(row[5], row[1])
    return users


def ship(*args: str) -> int:
    return main(["ship", *args])


def ship_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``ship`` as a user runs it: what reaches the terminal, kafka-python's logging too."""
    return subprocess.run(
        [sys.executable, "-m", "detector", "ship", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def consume_all(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic``, read from the beginning of each partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        expected = sum(consumer.end_offsets(parts).values())
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 60
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        assert len(records) == expected
        return records
    finally:
        consumer.close()


def by_key(records: list[ConsumerRecord]) -> dict[str, list[ConsumerRecord]]:
    """Records per key, each key's in offset order; checks a key sits in one partition."""
    grouped: dict[str, list[ConsumerRecord]] = defaultdict(list)
    for r in records:
        grouped[r.key.decode()].append(r)
    for key, recs in grouped.items():
        assert len({r.partition for r in recs}) == 1, f"key {key!r} in several partitions"
        recs.sort(key=lambda r: r.offset)
    return grouped


def keys_of(path: Path, **options: str) -> list[tuple[int, str, bytes]]:
    plan = plan_files([path], SourceOptions(**options))
    return [(r.line, r.key, r.value) for r in keyed_records(plan)]


# -- against the real broker ------------------------------------------------------------------


def test_bundled_sample_round_trip(
    kafka_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    sample, topic = bundled_sample(), "ship-sample"
    status = ship(str(sample), "--bootstrap", kafka_broker.bootstrap, "--topic", topic,
                  "--create-partitions", "6")  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    expected = csv_records(sample)
    assert f"shipped {len(expected)} records" in out
    assert "from 1 file(s)" in out

    records = consume_all(kafka_broker.bootstrap, topic)
    assert {r.partition for r in records} == set(range(6))
    assert len(records) == len(expected)
    # Byte for byte: the file is its records joined by newlines.
    assert b"\n".join(raw for raw, _ in expected) + b"\n" == sample.read_bytes()
    per_partition = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_partition[r.partition].append(r.value)
    merged = [v for values in per_partition.values() for v in values]
    assert Counter(merged) == Counter(raw for raw, _ in expected)

    users = session_users([row for _, row in expected])
    want: dict[str, list[bytes]] = defaultdict(list)
    received_lines = 0
    for raw, row in expected:
        want[row[1] or users.get(row[5], row[5])].append(raw)
    grouped = by_key(records)
    # Keyed by the user, in file order within each key.
    assert {k: [r.value for r in recs] for k, recs in grouped.items()} == want
    for r in records:
        (row,) = csv.reader([r.value.decode()])
        if row[1]:
            assert r.key.decode() == row[1]
        if row[13].startswith("connection received: "):
            received_lines += 1
            assert not row[1]
            assert r.key.decode() == users[row[5]]
    assert received_lines > 400


def test_mariadb_server_audit_is_keyed_by_user(
    kafka_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = "ship-mariadb"
    status = ship(str(MARIADB_LOG), "--bootstrap", kafka_broker.bootstrap, "--topic", topic,
                  "--create-partitions", "3", "--format", "mariadb-audit")  # fmt: skip
    assert status == 0, capsys.readouterr().err
    lines = [ln for ln in MARIADB_LOG.read_bytes().split(b"\n") if ln.strip()]
    records = consume_all(kafka_broker.bootstrap, topic)
    assert Counter(r.value for r in records) == Counter(lines)
    grouped = by_key(records)
    assert set(grouped) == {"root", "etl_batch", "officer1", "analyst1"}
    for key, recs in grouped.items():
        assert all(r.value.split(b",")[2].decode() == key for r in recs)
        assert [r.value for r in recs] == [ln for ln in lines if ln.split(b",")[2] == key.encode()]


def test_rate_paces_the_sends(
    kafka_broker: KafkaBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifty = tmp_path / "fifty.csv"
    fifty.write_bytes(b"\n".join(raw for raw, _ in csv_records(bundled_sample())[:50]) + b"\n")
    topic = "ship-rate"
    started = time.monotonic()
    status = ship(str(fifty), "--bootstrap", kafka_broker.bootstrap, "--topic", topic,
                  "--create-partitions", "1", "--rate", "100")  # fmt: skip
    took = time.monotonic() - started
    assert status == 0, capsys.readouterr().err
    assert took >= 0.4
    records = sorted(consume_all(kafka_broker.bootstrap, topic), key=lambda r: r.offset)
    assert len(records) == 50
    # The producer stamps each record when it is sent: 49 gaps of 10 ms.
    span_ms = records[-1].timestamp - records[0].timestamp
    assert 450 <= span_ms < 2000


def test_missing_topic_is_an_error_not_created(kafka_broker: KafkaBroker) -> None:
    topic = "ship-no-such-topic"
    done = ship_cli(str(bundled_sample()), "--bootstrap", kafka_broker.bootstrap, "--topic", topic)
    err = done.stderr
    assert done.returncode == 1
    assert f"topic '{topic}' does not exist" in err
    assert "--create-partitions" in err
    assert len(err.strip().splitlines()) == 1
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, client_id="test-admin")
    try:
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_a_record_the_broker_refuses_fails_the_run(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = "ship-small-messages"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap, client_id="test-admin")
    try:
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1,
                     "configs": {"max.message.bytes": "2000"}}},
            wait_for_metadata=True,
        )  # fmt: skip
    finally:
        admin.close()
    log = tmp_path / "big.log"
    log.write_text(
        "2026-11-28 07:50:00 UTC [7] LOG:  connection authorized: user=eve\n"
        f"2026-11-28 07:50:01 UTC [7] LOG:  AUDIT: SESSION,1,1,READ,SELECT,,,SELECT '{'x' * 5000}'"
        ",<none>,1\n"
    )
    done = ship_cli(str(log), "--bootstrap", kafka_broker.bootstrap, "--topic", topic,
                    "--format", "pgaudit-stderr", "--log-line-prefix", "%t [%p] ")  # fmt: skip
    err = done.stderr
    assert done.returncode == 1
    assert f"delivery failed for the record at {log}:2" in err
    assert "MessageSizeTooLarge" in err
    assert len(err.strip().splitlines()) == 1


# -- record boundaries and keys, no broker ----------------------------------------------------

PREFIX = "%m %c %u@%d [%p] "
STDERR = (
    "2026-11-28 07:50:00.100 UTC 65a1c0de.2a [unknown]@[unknown] [42] LOG:  connection received:"
    " host=10.0.0.5 port=5123\n"
    "2026-11-28 07:50:00.101 UTC 65a1c0de.2a eve@records [42] LOG:  connection authorized:"
    " user=eve database=records\n"
    "2026-11-28 07:50:00.200 UTC 65a1c0de.2a eve@records [42] LOG:  AUDIT: SESSION,1,1,READ,"
    'SELECT,TABLE,public.citizens,"SELECT national_id,\n'
    "\tphone\n"
    '\tFROM citizens",<none>,500\n'
    '2026-11-28 07:50:00.300 UTC 65a1c0de.2b bob@records [43] ERROR:  relation "x" does not exist'
    " at character 15\n"
    "2026-11-28 07:50:00.300 UTC 65a1c0de.2b bob@records [43] STATEMENT:  SELECT * FROM x\n"
    "2026-11-28 07:50:01.000 UTC 65a1c0de.2c [unknown]@[unknown] [44] LOG:  connection received:"
    " host=10.0.0.9 port=6000\n"
    "\n"
    "2026-11-28 07:50:01.500 UTC 65a1c0de.2a eve@records [42] LOG:  disconnection: session time:"
    " 0:00:01.400 user=eve database=records host=10.0.0.5 port=5123\n"
    "this line is not from PostgreSQL\n"
)


@pytest.mark.parametrize("gz", [False, True])
def test_stderr_records_with_continuations_and_a_custom_prefix(tmp_path: Path, gz: bool) -> None:
    path = tmp_path / ("pg.log.gz" if gz else "pg.log")
    path.write_bytes(gzip.compress(STDERR.encode()) if gz else STDERR.encode())
    got = keys_of(path, format="pgaudit-stderr", log_line_prefix=PREFIX)
    lines = STDERR.encode().split(b"\n")
    assert [(line, key) for line, key, _ in got] == [
        (1, "eve"),  # [unknown] until authorised: the session's user
        (2, "eve"),
        (3, "eve"),  # three physical lines
        (6, "bob"),  # the ERROR and its STATEMENT are one message
        (8, "65a1c0de.2c"),  # a session that never got a user: its session id
        (10, "eve"),
        (11, UNPARSED_KEY),  # a stray line: shipped, the detector dead-letters it
    ]
    assert got[2][2] == b"\n".join(lines[2:5])
    assert got[3][2] == b"\n".join(lines[5:7])
    # The hand-made log is one the detector's parser reads as intended.
    parser = PgauditStderrParser(log_line_prefix=PREFIX)
    fed = parser.feed(STDERR, source="pg.log", first_line=1)
    events = pl.concat([fed.events, parser.flush().events])
    reads = events.filter(pl.col("command_class") == "READ")
    assert reads.select("user", "statement").row(0) == (
        "eve",
        "SELECT national_id,\nphone\nFROM citizens",
    )
    assert fed.rejects["line"].to_list() == [11]


def test_a_reused_pid_starts_a_new_session(tmp_path: Path) -> None:
    """Without %c the session is the pid, which comes back: `connection received` starts
    a new session, so a later user's unauthorised line is not keyed by an earlier one."""
    path = tmp_path / "pg.log"
    path.write_text(
        "2026-11-28 07:50:00.100 UTC [42] LOG:  connection received: host=h port=1\n"
        "2026-11-28 07:50:00.101 UTC [42] LOG:  connection authorized: user=eve database=d\n"
        "2026-11-28 07:50:00.200 UTC [42] LOG:  disconnection: session time: 0:00:00.100\n"
        "2026-11-28 07:50:09.100 UTC [42] LOG:  connection received: host=h port=2\n"
        "2026-11-28 07:50:09.101 UTC [42] LOG:  connection authorized: user=bob database=d\n"
        "2026-11-28 07:50:09.200 UTC [42] LOG:  disconnection: session time: 0:00:00.100\n"
        "2026-11-28 07:50:19.100 UTC [42] LOG:  connection received: host=h port=3\n"
        '2026-11-28 07:50:19.101 UTC [42] FATAL:  password authentication failed for user "mal"\n'
        "2026-11-28 07:50:20.000 UTC [17] LOG:  checkpoint starting: time\n"
    )
    got = keys_of(path, format="pgaudit-stderr", log_line_prefix="%m [%p] ")
    # The failed login names its user in the message; a background process keeps its pid.
    assert [key for _, key, _ in got] == ["eve"] * 3 + ["bob"] * 3 + ["mal"] * 2 + ["17"]


def test_csvlog_records_end_where_quotes_balance(tmp_path: Path) -> None:
    """A quoted newline continues a record; a truncated record does not swallow the next."""
    head = '2024-03-04 01:30:22.159 UTC,"{u}","records",13371,"127.0.0.6:60441",6b0a9a0f.343b,'
    tail = (
        ',"SELECT",2024-03-04 01:30:22 UTC,4/2,0,LOG,00000,"{m}",,,,,,,,,"psql","client backend",,0'
    )
    whole = (
        head.format(u="eve") + "3" + tail.format(m='AUDIT: x,""SELECT 1\n2024-01-01 00:00:00"",1')
    )
    cut = head.format(u="eve") + '4,"SELECT",2024-03-04 01:30:22 UTC,4/2,0,LOG,00000,"AUDIT: y'
    other = (
        head.format(u="bob").replace("13371", "9").replace(".343b", ".9")
        + "1"
        + tail.format(m="AUDIT: z")
    )
    path = tmp_path / "pg.csv"
    path.write_text(f"{whole}\n{cut}\n{other}\n")
    got = keys_of(path, format="pgaudit-csv")
    assert [(line, key) for line, key, _ in got] == [(1, "eve"), (3, "eve"), (4, "bob")]
    assert got[0][2].decode() == whole


@pytest.mark.parametrize("prefix", ["default", "debian", "pgbadger"])
def test_real_logs_key_alike_in_every_postgres_format(prefix: str) -> None:
    """One server run logged as csvlog, jsonlog and stderr: the same records, the same keys
    (the default prefix has no %u: users come from `connection authorized`)."""
    csv_file = PG / f"{prefix}-prefix.csv"
    keys = {ext: [k for _, k, _ in keys_of(PG / f"{prefix}-prefix.{ext}")] for ext in
            ("csv", "json", "log")}  # fmt: skip
    expected = csv_records(csv_file)
    assert [v for _, _, v in keys_of(csv_file)] == [raw for raw, _ in expected]
    assert keys["csv"] == keys["json"] == keys["log"]
    users = session_users([row for _, row in expected])
    assert keys["csv"] == [row[1] or users.get(row[5], row[5]) for _, row in expected]
    assert UNPARSED_KEY not in keys["csv"]
