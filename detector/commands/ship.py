"""``exfil-detector ship``: publish audit-log files to Kafka, one message per audit record.

For tests, demos and back-fills: it does what a log shipper (Filebeat, Vector, Fluent Bit)
tailing the audit log would do, so the detector's Kafka path can be fed from files. Each
message is one audit record's raw bytes, keyed by its database user
(:mod:`streams.kafka.record_keys`): the detector keeps per-user state per partition, so a user's
records must share one partition and arrive in file order. Hence one idempotent producer
with ``acks="all"`` (idempotence keeps each partition's order across retries), and every
send is checked: a record the broker did not take fails the run, it is never skipped.

The topic must exist: a typo must not create a one-partition topic behind the operator's
back (brokers auto-create on produce by default), so ``ship`` checks it first and creates
it only when asked (``--create-partitions N``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from detector.commands.source_flags import add_source_flags, source_values
from detector.config import load_config
from detector.exceptions import ShipError
from streams.kafka.record_keys import keyed_records, plan_files

if TYPE_CHECKING:
    from detector.config import Config

#: Long enough to batch the records of a busy moment, short enough to keep a paced
#: ``--rate`` run close to its schedule.
LINGER_MS: Final = 5
#: Fewer, larger produce requests: at kafka-python's default (16 KiB) waking its sender
#: for each small batch cost ~40% of a run (180k csvlog records: 12.7k vs 20.5k records/s).
BATCH_BYTES: Final = 256 * 1024
#: How long an unreachable cluster is tried before ``ship`` gives up (kafka-python: 30 s).
BOOTSTRAP_TIMEOUT_MS: Final = 10_000
#: Longer than kafka-python's delivery timeout (120 s), after which every send has settled.
SETTLE_TIMEOUT_S: Final = 150.0
#: kafka-python's error code of a topic the broker does not know.
_UNKNOWN_TOPIC: Final = 3


def _positive_float(text: str) -> float:
    """A ``--rate``: a finite number above 0.

    >>> _positive_float("2.5")
    2.5
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """A partition count: a whole number above 0."""
    value = _positive_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``ship`` subcommand's flags."""
    p = sub.add_parser(
        "ship",
        help="publish audit logs to Kafka: one message per record, keyed by database user",
        description="Publish audit log files (plain or .gz) to a Kafka topic like a log"
        " shipper: one message per audit record (its raw bytes), keyed by the database user"
        " so a user's records share a partition, in file order.",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="audit log files, sent in this order"
    )
    p.add_argument(
        "--bootstrap", required=True, metavar="HOST:PORT", help="Kafka brokers (comma-separated)"
    )
    p.add_argument("--topic", required=True, help="topic to publish to (must exist)")
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        metavar="N",
        help="records per second (default: as fast as the broker takes them)",
    )
    p.add_argument(
        "--create-partitions",
        type=_positive_int,
        default=None,
        metavar="N",
        help="create the topic with N partitions (replication 1) if it does not exist",
    )
    add_source_flags(p)
    p.set_defaults(run=run)


def ensure_topic(client_args: dict[str, Any], topic: str, create_partitions: int | None) -> int:
    """Partitions of ``topic``, created first if missing and ``create_partitions`` is set.

    Raises :class:`ShipError` when the topic is missing and may not be created, or when the
    cluster cannot be reached.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    bootstrap = ",".join(client_args["bootstrap_servers"])
    try:
        admin = KafkaAdminClient(**client_args, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError as exc:
        raise ShipError(f"cannot reach Kafka at {bootstrap}: {_describe(exc)}") from exc
    try:
        (described,) = admin.describe_topics([topic])
        if described["error_code"] == 0:
            return len(described["partitions"])
        if described["error_code"] != _UNKNOWN_TOPIC:  # not authorised, ...
            error = for_code(described["error_code"])()
            raise ShipError(f"cannot use topic {topic!r}: {_describe(error)}")
        if create_partitions is None:
            raise ShipError(
                f"topic {topic!r} does not exist on {bootstrap}; create it, or pass "
                "--create-partitions N to have ship create it"
            )
        # Created by someone else meanwhile: use theirs.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                {topic: {"num_partitions": create_partitions, "replication_factor": 1}},
                wait_for_metadata=True,
            )
        (described,) = admin.describe_topics([topic])
        return len(described["partitions"])
    except KafkaError as exc:
        raise ShipError(f"cannot check topic {topic!r} on {bootstrap}: {_describe(exc)}") from exc
    finally:
        admin.close()


def _describe(exc: BaseException) -> str:
    """One line for an error from kafka-python: its name and its arguments, else the
    broker error's documented meaning (a broker error often comes with no arguments).

    >>> from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    >>> _describe(KafkaTimeoutError("Unable to bootstrap"))
    'KafkaTimeoutError: Unable to bootstrap'
    >>> _describe(MessageSizeTooLargeError(None))[:60]
    'MessageSizeTooLargeError: The server has a configurable maxi'
    """
    detail = " ".join(str(a) for a in exc.args if a not in (None, ""))
    detail = detail or str(getattr(exc, "description", "") or "")
    name = type(exc).__name__
    return f"{name}: {' '.join(detail.split())}" if detail else name


class _Deliveries:
    """Acknowledgements per partition and the first failure, counted by the producer's
    callbacks (on its own thread) as each send settles."""

    def __init__(self) -> None:
        self._settled = threading.Condition()
        self.count = 0
        self.partitions: Counter[int] = Counter()
        self.failure: str | None = None

    def acked(self, metadata: Any) -> None:
        with self._settled:
            self.partitions[metadata.partition] += 1
            self.count += 1
            self._settled.notify_all()

    def failed(self, source: str, line: int, size: int, exc: BaseException) -> None:
        with self._settled:
            if self.failure is None:
                self.failure = (
                    f"delivery failed for the record at {source}:{line} ({size} bytes): "
                    f"{_describe(exc)}"
                )
            self.count += 1
            self._settled.notify_all()

    def wait(self, sent: int, timeout: float) -> bool:
        """Whether all ``sent`` records settled (delivered or failed) within ``timeout``."""
        with self._settled:
            return self._settled.wait_for(lambda: self.count >= sent, timeout)


def _producer(client_args: dict[str, Any], bootstrap: str) -> Any:
    """An idempotent producer that waits for every replica and creates no topic."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(
            **client_args,
            acks="all",
            enable_idempotence=True,
            linger_ms=LINGER_MS,
            compression_type=None,
            allow_auto_create_topics=False,
            batch_size=BATCH_BYTES,
        )
    except KafkaError as exc:
        raise ShipError(f"cannot reach Kafka at {bootstrap}: {_describe(exc)}") from exc


def _send_all(
    producer: Any, topic: str, plan: Any, rate: float | None, deliveries: _Deliveries
) -> tuple[int, int]:
    """Every keyed record of ``plan`` sent (at most ``rate`` per second), until one fails;
    the records and bytes sent."""
    from kafka.errors import KafkaError

    sent = sent_bytes = 0
    due = time.monotonic()
    for record in keyed_records(plan):
        if deliveries.failure is not None:
            break
        if rate is not None:
            # Each send is due 1/rate after the previous one was due, so oversleeping a
            # little does not slow the run; a stall (the first send waits for the
            # topic's metadata) is not caught up with a burst: never faster than rate.
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            due = max(due, now) + 1 / rate
        try:
            future = producer.send(topic, key=record.key.encode(), value=record.value)
        except KafkaError as exc:
            raise ShipError(
                f"cannot send the record at {record.source}:{record.line} "
                f"({len(record.value)} bytes): {_describe(exc)}"
            ) from exc
        future.add_callback(deliveries.acked)
        future.add_errback(deliveries.failed, record.source, record.line, len(record.value))
        sent += 1
        sent_bytes += len(record.value)
    return sent, sent_bytes


def run_ship(
    paths: Sequence[Path],
    config: Config,
    *,
    bootstrap: str,
    topic: str,
    rate: float | None = None,
    create_partitions: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Publish ``paths`` to ``topic``; print one summary line (to ``out``, default stdout).
    Returns the exit status.

    Raises :class:`ShipError` (exit status 1) when the topic is missing or a record is not
    delivered; config and input errors raise their own project errors.
    """
    from kafka.errors import KafkaError

    started = time.monotonic()
    client_args = config.kafka_settings(bootstrap).client_args()
    # Formats are resolved before any network work: a file we cannot read fails first.
    plan = plan_files(paths, config.source_options())
    partitions = ensure_topic(client_args, topic, create_partitions)
    if create_partitions is not None and partitions != create_partitions:
        print(
            f"exfil-detector: note: topic {topic!r} exists with {partitions} partitions",
            file=sys.stderr,
        )
    producer = _producer(client_args, bootstrap)
    deliveries = _Deliveries()
    try:
        sent, sent_bytes = _send_all(producer, topic, plan, rate, deliveries)
        # flush() only hurries the sends along: it can raise on a failed batch
        # ("Future not done" in kafka-python 3.0.12) before its records' errbacks have
        # run, so what settles the run is every record's own callback.
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=SETTLE_TIMEOUT_S)
        settled = deliveries.wait(sent, SETTLE_TIMEOUT_S)
    finally:
        producer.close(timeout=SETTLE_TIMEOUT_S)
    acked = sum(deliveries.partitions.values())
    if deliveries.failure is not None:
        raise ShipError(f"{deliveries.failure} ({acked} of {sent} records sent were delivered)")
    if not settled or acked != sent:
        raise ShipError(f"only {acked} of {sent} records were acknowledged by {topic!r}")
    elapsed = time.monotonic() - started
    counts = " ".join(f"{p}:{n}" for p, n in sorted(deliveries.partitions.items()))
    print(
        f"shipped {sent} records ({sent_bytes} bytes) from {len(paths)} file(s) to {topic!r}; "
        f"per partition {counts or '-'}; {elapsed:.2f} s, {sent / max(elapsed, 1e-9):.0f} "
        "records/s",
        file=out or sys.stdout,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """``ship``: the flags into the config, then :func:`run_ship`; records not delivered
    exit 1, like a failed shipper."""
    try:
        return run_ship(
            args.paths,
            load_config(args.config, source_values(args)),
            bootstrap=args.bootstrap,
            topic=args.topic,
            rate=args.rate,
            create_partitions=args.create_partitions,
        )
    except ShipError as exc:
        print(f"exfil-detector: error: {exc}", file=sys.stderr)
        return 1
