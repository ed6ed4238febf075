"""What a ``run`` process sends to Kafka: alerts (keyed by user, the JSON of ``replay``'s
alert file) and dead letters (the original bytes, the reason and where the record was in
headers), and the acknowledgement every checkpoint waits for before it saves anything."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from detector.alerts import Alert
from detector.exceptions import StreamingError
from detector.metrics import Metrics
from detector.streaming.options import RunSummary, StreamOptions
from streams.kafka.records import RecordReject


class Delivery:
    """The producer's side of a ``run`` process.

    Parameters
    ----------
    producer
        A ``KafkaProducer``.
    options
        The alerts and dead-letter topics (``None``: counted, not sent) and the audit
        topic (named in dead letters).
    summary
        Where alerts sent and dead letters are counted.
    metrics
        Where dead letters sent are counted too.
    """

    def __init__(
        self,
        producer: Any,
        options: StreamOptions,
        summary: RunSummary,
        metrics: Metrics | None = None,
    ) -> None:
        self.producer = producer
        self.options = options
        self.summary = summary
        self.metrics = metrics
        self.pending: list[Any] = []

    def alerts(self, alerts: list[Alert]) -> None:
        """Send alerts created or updated (a new revision replaces the last under its id)."""
        topic = self.options.alerts_topic
        for alert in alerts:
            self.summary.alerts_sent += 1
            if topic is not None:
                value = json.dumps(alert.to_json(), ensure_ascii=False).encode()
                self.pending.append(self.producer.send(topic, key=alert.user.encode(), value=value))

    def dead_letters(self, rejects: list[RecordReject]) -> None:
        """Count rejected records by reason and send them to the dead-letter topic."""
        for r in rejects:
            self.summary.dead_letters[r.reason] = self.summary.dead_letters.get(r.reason, 0) + 1
            if self.options.dlq_topic is not None:
                headers = [
                    ("reason", r.reason.encode()),
                    ("source_topic", self.options.topic.encode()),
                    ("source_partition", str(r.partition).encode()),
                    ("source_offset", str(r.offset).encode()),
                ]
                self.pending.append(
                    self.producer.send(self.options.dlq_topic, value=r.value, headers=headers)
                )
        if self.metrics is not None and self.options.dlq_topic is not None:
            self.metrics.dead_lettered(Counter(r.reason for r in rejects))

    def acknowledge(self) -> None:
        """Wait until every alert and dead letter sent so far is acknowledged.

        Raises
        ------
        StreamingError
            One was not: nothing may be checkpointed or committed past it.
        """
        from kafka.errors import KafkaError

        try:
            self.producer.flush()
            for future in self.pending:
                future.get(timeout=30)
        except KafkaError as exc:
            raise StreamingError(f"an alert or dead letter was not acknowledged: {exc}") from exc
        self.pending = []

    def close(self) -> None:
        self.producer.close()
