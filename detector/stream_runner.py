"""The ``run`` job's engine: audit records from Kafka through the replay pipeline, alerts
to Kafka (the CLI glue is :mod:`detector.run_command`).

``exfil-detector run --bootstrap HOST:PORT --topic db-audit`` consumes raw audit records
(any format ``replay`` reads, one record per message) or canonical JSON events, keyed by
database user, and feeds them in micro-batches through exactly the pipeline ``replay``
uses (:class:`detector.pipeline.Pipeline`). Each partition has its own parser
(:class:`streams.kafka_records.PartitionStream`); their events are merged in event-time
order (:class:`streams.partition_merge.EventTimeMerge`) so a topic consumed at uneven
speeds is judged as the file it was shipped from.

Delivery (at-least-once, in this order at every checkpoint):

1. alerts created or updated so far are produced to ``--alerts-topic`` (keyed by user,
   the JSON of ``replay``'s alert file) and dead letters to ``--dlq-topic``; the producer
   is flushed and every send acknowledged;
2. each partition's checkpoint (its next offset, parser, queued events and its users'
   share of the detector: :mod:`detector.stream_checkpoint`) is saved atomically to
   ``--state-dir``;
3. those offsets are committed to the consumer group.

A crash between 1 and 3 re-reads records whose alerts are already out; alert ids are
deterministic, so the re-sent alert is the same alert (same id, same or later revision),
never a duplicate. A partition's checkpoint wins over the group's offset (it matches the
saved state). On a rebalance, partitions leaving are judged, checkpointed and committed
before they go; a partition arriving resumes from its checkpoint, its users' baselines,
open windows and alerts included (the processes of a group share the state dir). Records
the detector cannot use go to the dead-letter topic with their reason (header
``reason``), partition and offset, and original bytes; they never block a partition.

Stopping: SIGTERM/SIGINT finish the batch, checkpoint and commit. ``--until-idle S`` stops
once every partition has been caught up for S seconds (tests, back-fills); then, without
``--state-dir`` or with ``--close-at-end``, every window is closed like ``replay`` does.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import polars as pl

from detector.alerts import Alert, write_jsonl
from detector.config import Config
from detector.exceptions import StreamingError
from detector.pipeline import Pipeline
from detector.pipeline_worker import PipelineWorker
from detector.stream_clients import checkpoint_store, clients
from detector.stream_options import RunSummary, StopSignal, StreamOptions
from detector.stream_partitions import OwnedPartitions
from detector.threat_rules import load_rules
from streams.kafka_records import RecordReject
from streams.kafka_settings import KafkaSettings


class _Runner:
    """One consumer, one producer, one pipeline; the loop of :func:`run_stream`."""

    def __init__(
        self, config: Config, settings: KafkaSettings, options: StreamOptions, stop: StopSignal
    ) -> None:
        from kafka import TopicPartition

        self.tp = TopicPartition
        self.config, self.options, self.stop = config, options, stop
        store, key = checkpoint_store(config, settings, options)
        self.pipeline = Pipeline(config, config.load_catalog(), load_rules(), id_key=key)
        self.state = OwnedPartitions(
            options.topic,
            self.pipeline.state,
            store,
            config.source_options(),
            options.max_record_bytes,
        )
        self.consumer, self.producer = clients(settings, options)
        self.summary = RunSummary()
        self.started = time.perf_counter()
        self.worker = PipelineWorker(
            self.pipeline, self._send_alerts, self._judged if options.measure else None
        )
        self.pending_sends: list[Any] = []
        self.idle_since: dict[int, float] = {}
        self.last_checkpoint = time.monotonic()
        self.seeked: set[int] = set()
        #: partitions the group gave this process, until revoked or lost (the consumer's
        #: own assignment still lists revoked ones while a rebalance goes on: the loop
        #: would claim and load them again)
        self.owned: set[int] = set()
        #: partitions lost to a newer owner, skipped until the next assignment
        self.fenced: set[int] = set()
        self.consumer.subscribe([options.topic], listener=self._listener())

    def _listener(self) -> Any:
        from kafka import AsyncConsumerRebalanceListener

        runner = self

        class Handover(AsyncConsumerRebalanceListener):  # type: ignore[misc]
            # kafka-python 3 runs listeners on the consumer's IO loop, where a blocking
            # commit() raises: the commit is awaited on the loop instead
            async def on_partitions_revoked(self, revoked: Any) -> None:
                offsets = runner._revoke({tp.partition for tp in revoked})
                if offsets:
                    coordinator = runner.consumer._coordinator
                    await coordinator._commit_offsets_sync_async(offsets)

            async def on_partitions_lost(self, lost: Any) -> None:
                runner._lose({tp.partition for tp in lost})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                # each is claimed and seeked to its checkpoint's offset by the loop
                runner.owned |= {tp.partition for tp in assigned}
                runner.fenced.clear()
                _log(f"partitions assigned {sorted(tp.partition for tp in assigned)}")

        return Handover()

    def _revoke(self, partitions: set[int]) -> dict[Any, Any]:
        """Partitions leaving this consumer (a rebalance): send the alerts, checkpoint
        them with their parsers, queued events and users' state (taken out of this
        process); the offsets to commit before they go, so their next owner goes on
        exactly from there, with the same baselines."""
        from kafka.structs import OffsetAndMetadata

        self.owned -= partitions
        for p in partitions:  # read nothing here yet or not: claimed anew if they come back
            self.idle_since.pop(p, None)
            self.seeked.discard(p)
        partitions &= set(self.state.partitions) | set(self.state.offsets)
        if not partitions:
            return {}
        self.worker.drain()  # the batches judged so far are in the state that leaves
        if self.state.store is None:
            # no checkpoint to carry a parser's held-back records or the events queued
            # behind other partitions: judge them now (their users start cold elsewhere)
            for p in partitions:
                stream = self.state.partitions.get(p)
                if stream is not None:
                    events, rejects = stream.flush()
                    self.state.merge.add(p, events, None)
                    self._dead_letters(rejects)
            self._judge(self.state.merge.drop(partitions))
            self.worker.drain()
        self._acknowledge()
        leaving = self.state.leave(partitions)
        _log(f"partitions revoked {sorted(partitions)}")
        self._fenced(leaving.fenced)
        return {
            self.tp(self.options.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in leaving.offsets.items()
        }

    def _lose(self, partitions: set[int]) -> None:
        """Partitions the group gave away while this process was evicted (heartbeats
        missed past the session timeout): forgotten, nothing saved, nothing committed;
        their next owner resumes from their last checkpoint."""
        self.owned -= partitions
        self.worker.drain()  # no batch in flight re-creates their users' state after
        self.state.lose(partitions)
        for p in partitions:
            self.idle_since.pop(p, None)
            self.seeked.discard(p)
        _log(f"partitions lost {sorted(partitions)} (evicted from the group)")

    def _fenced(self, partitions: set[int]) -> None:
        """Partitions whose checkpoint a newer owner saved: this process lost them (it
        was evicted and does not know yet); their records are skipped until the group
        assigns partitions again."""
        if partitions:
            self.fenced |= partitions
            _log(f"partitions {sorted(partitions)} claimed by another process: forgotten")

    def _share(self, assigned: set[int]) -> None:
        """This process's share of the alert budget: its partitions of the topic's."""
        total = self.consumer.partitions_for_topic(self.options.topic)
        if assigned and total:
            share = min(1.0, len(assigned) / len(total))
            if share != self.pipeline.budget_share:
                self.worker.drain()  # batches judged before the change keep the old share
                self.pipeline.budget_share = share

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = self.started
        seeked = self.seeked
        while not self.stop.event.is_set():
            turn = time.perf_counter() - started
            polled = self.consumer.poll(timeout_ms=200)
            assigned = self.owned - self.fenced
            self._share(assigned)
            moved = set()
            arriving = assigned - seeked
            if arriving:
                self.worker.drain()  # arriving users' state joins the pipeline's
            # the checkpoints' offsets match their state
            for p, offset in self.state.take_over(arriving).items():
                self.consumer.seek(self.tp(self.options.topic, p), offset)
                moved.add(p)
            seeked |= arriving
            stamps: list[int] = []
            for tp, records in sorted(polled.items(), key=lambda kv: kv[0].partition):
                # a moved partition's records were fetched before the seek: read again
                if tp.partition not in moved and tp.partition in assigned:
                    self._consume(tp.partition, records)
                    if self.options.measure:
                        stamps += [r.timestamp for r in records]
            idle = self._idle(assigned)
            if self.options.measure:
                self._measure(stamps, assigned, started, turn)
            self._judge(self.state.merge.release(sorted(assigned)), stamps)
            if time.monotonic() - self.last_checkpoint >= self.options.checkpoint_seconds:
                self._checkpoint()
            until = self.options.until_idle
            if until is not None and assigned and idle >= until:
                break
        self._finish()
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _measure(self, stamps: list[int], assigned: set[int], started: float, turn: float) -> None:
        behind = 0
        for p in assigned:
            high = self.consumer.highwater(self.tp(self.options.topic, p))
            if high is not None:
                behind += max(0, high - self.state.offsets.get(p, 0))
        now = time.perf_counter() - started
        self.summary.lag.append((now, behind))
        if stamps and self.summary.busy is None:
            # from the start of the first turn that read (its poll decoded them) to the
            # end of the last batch judged (:meth:`_judged`)
            self.summary.busy = (turn, now)

    def _judged(self, stamps: list[int], ended: float) -> None:
        """The worker judged the batch of a turn that read records with these stamps."""
        now_ms = time.time() * 1000.0
        self.summary.latency_ms += [now_ms - t for t in stamps]
        if self.summary.busy is not None:
            self.summary.busy = (self.summary.busy[0], ended - self.started)

    def _consume(self, partition: int, records: Sequence[Any]) -> None:
        stream = self.state.stream(partition)
        events, rejects = stream.feed(records)
        self.summary.records += len(records)
        self.summary.events += events.height
        self.state.merge.add(partition, events, stream.high_)
        self.state.offsets[partition] = records[-1].offset + 1
        self.idle_since.pop(partition, None)
        self._dead_letters(rejects)

    def _idle(self, assigned: set[int]) -> float:
        """Flush partitions caught up for ``idle_flush_seconds`` (their held-back records
        go, and they stop holding the others back); how long all have been caught up."""
        from kafka.errors import KafkaError

        now = time.monotonic()
        for p in assigned:
            tp = self.tp(self.options.topic, p)
            # the fetcher's last high watermark against what we consumed; the consumer's
            # position only for a partition we have read nothing of (it blocks and
            # raises while the broker is down)
            high = self.consumer.highwater(tp)
            read = self.state.offsets.get(p)
            if read is None and high is not None:
                try:
                    read = self.consumer.position(tp)
                except KafkaError:
                    read = None
            if high is None or read is None or read < high:
                self.idle_since.pop(p, None)
                continue
            since = self.idle_since.setdefault(p, now)
            flushed = p in self.state.merge.complete_ and self.state.merge.complete_[p] is None
            if now - since >= self.options.idle_flush_seconds and not flushed:
                events, rejects = self.state.stream(p).flush()
                self.state.merge.add(p, events, None)
                self._dead_letters(rejects)
        if not assigned or any(p not in self.idle_since for p in assigned):
            return 0.0
        return now - max(self.idle_since[p] for p in assigned)

    def _judge(self, events: pl.DataFrame | None, stamps: list[int] | None = None) -> None:
        """Hand a batch to the pipeline's thread (``stamps``: of the records read in this
        turn, measured when it is judged)."""
        if events is None or events.is_empty():
            if stamps:
                self.worker.submit(None, None, stamps)
            return
        parts = events["_partition"]
        self.worker.submit(events.drop("_partition"), parts, stamps or [])

    def _send_alerts(self, alerts: list[Alert]) -> None:
        topic = self.options.alerts_topic
        for alert in alerts:
            self.summary.alerts_sent += 1
            if topic is not None:
                value = json.dumps(alert.to_json(), ensure_ascii=False).encode()
                self.pending_sends.append(
                    self.producer.send(topic, key=alert.user.encode(), value=value)
                )

    def _dead_letters(self, rejects: list[RecordReject]) -> None:
        for r in rejects:
            self.summary.dead_letters[r.reason] = self.summary.dead_letters.get(r.reason, 0) + 1
            if self.options.dlq_topic is not None:
                headers = [
                    ("reason", r.reason.encode()),
                    ("source_topic", self.options.topic.encode()),
                    ("source_partition", str(r.partition).encode()),
                    ("source_offset", str(r.offset).encode()),
                ]
                self.pending_sends.append(
                    self.producer.send(self.options.dlq_topic, value=r.value, headers=headers)
                )

    def _acknowledge(self) -> None:
        """Every alert and dead letter sent so far acknowledged by the broker."""
        from kafka.errors import KafkaError

        try:
            self.producer.flush()
            for future in self.pending_sends:
                future.get(timeout=30)
        except KafkaError as exc:
            raise StreamingError(f"an alert or dead letter was not acknowledged: {exc}") from exc
        self.pending_sends = []

    def _checkpoint(self) -> None:
        """Alerts and dead letters out, then every partition's checkpoint saved, then
        their offsets committed."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        self.worker.drain()
        self._acknowledge()
        self._fenced(self.state.save_all())
        if self.state.offsets:
            offsets = {
                self.tp(self.options.topic, p): OffsetAndMetadata(o, "", -1)
                for p, o in self.state.offsets.items()
            }
            try:
                self.consumer.commit(offsets)
            except KafkaError as exc:
                # the checkpoints have these offsets: the next owner seeks there anyway
                print(f"exfil-detector: offsets not committed: {exc}", file=sys.stderr)
        self.summary.checkpoints += 1
        self.last_checkpoint = time.monotonic()

    def _finish(self) -> None:
        close = self.options.close_at_end
        if close or (close is None and self.options.state_dir is None):
            # end of input, no state to continue from: close everything, like replay
            for stream in self.state.partitions.values():
                events, rejects = stream.flush()
                self.state.merge.add(stream.partition, events, None)
                self._dead_letters(rejects)
            self._judge(self.state.merge.drain())
            self.worker.drain()
            self._send_alerts(self.pipeline.finish())
        self.worker.close()
        self._checkpoint()
        # before leaving the group: leaving revokes the partitions, and their users'
        # state (alerts included) leaves this process with them
        self.summary.alerts = self.pipeline.alerts()
        self.summary.counts = dict(self.pipeline.state.counts)
        self.summary.counts["late_events"] = self.pipeline.state.late_events
        self.consumer.close(autocommit=False)
        self.producer.close()
        if self.state.store is not None:
            self.state.store.close()


def _log(message: str) -> None:
    print(f"exfil-detector: {message}", file=sys.stderr, flush=True)


def run_stream(
    config: Config, settings: KafkaSettings, options: StreamOptions, stop: StopSignal | None = None
) -> RunSummary:
    """Consume until stopped (signal, or ``until_idle``); the run's summary."""
    stop = stop or StopSignal()
    summary = _Runner(config, settings, options, stop).run()
    if options.alerts_out is not None:
        options.alerts_out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(summary.alerts, options.alerts_out)
    return summary
