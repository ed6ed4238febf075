"""Helpers of the tests against a real broker: a csvlog cut into keyed records, topics,
producing and reading back."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from realdb.kafka import KafkaBroker
from streams.file_source import SourceOptions, make_parser


def sample_records(path: Path) -> list[tuple[str, str]]:
    """(key, record) of a csvlog in file order, keyed by the session's user."""
    start = make_parser("pgaudit-csv", None, SourceOptions()).record_start
    records: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if start.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    users: dict[str, str] = {}
    fields = [next(csv.reader(io.StringIO(r))) for r in records]
    for f in fields:
        if f[1] and f[1] != "[unknown]":
            users.setdefault(f[5], f[1])
    return [(users.get(f[5], f[5]), r) for f, r in zip(fields, records, strict=True)]


def topic(broker: KafkaBroker, partitions: int = 6) -> str:
    name = f"audit-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def produce(broker: KafkaBroker, topic: str, records: list[tuple[str | None, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", max_in_flight_requests_per_connection=1
    )
    for key, value in records:
        producer.send(topic, key=None if key is None else key.encode(), value=value)
    producer.flush()
    producer.close()


def read_all(broker: KafkaBroker, topic: str, expected: int) -> list[object]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        return list(consumer)[: expected + 1000]
    finally:
        consumer.close()


def probe(port: int, path: str) -> tuple[int, dict[str, object]]:
    """A ``run`` process's ``/healthz`` or ``/readyz``: status and JSON (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except OSError:
        return 0, {}


def _json(body: bytes) -> dict[str, object]:
    """A probe's answer; another server on the port (free_port's race: it was free when
    chosen) answers something else, said as the reason."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {"reason": f"not a probe's answer: {body[:80]!r}"}
    return answer if isinstance(answer, dict) else {"reason": f"not a probe's answer: {answer!r}"}


def wait_ready(
    proc: subprocess.Popen[str], port: int, ready: bool, want: str, seconds: float = 90
) -> None:
    """Until the ``run`` process's ``/readyz`` answers ``ready`` with a reason containing
    ``want`` (tests wait on what the process says, not on sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        status, body = probe(port, "/readyz")
        if (status == 200) is ready and want in str(body.get("reason")):
            return
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=30)
            raise AssertionError(
                f"exited {proc.returncode} waiting for {want!r}: {(err or '')[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz never said {want!r}: {body}")
        time.sleep(0.2)
