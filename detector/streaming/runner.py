"""The ``run`` job's engine: audit records from Kafka through the replay pipeline, alerts
to Kafka (the CLI glue is :mod:`detector.commands.run`).

``exfil-detector run --bootstrap HOST:PORT --topic db-audit`` consumes raw audit records
(any format ``replay`` reads, one record per message) or canonical JSON events, keyed by
database user, and feeds them in micro-batches through exactly the pipeline ``replay``
uses (:class:`detector.pipeline.Pipeline`). Each partition has its own parser
(:class:`streams.kafka.records.PartitionStream`); their events are merged in event-time
order (:class:`streams.kafka.partition_merge.EventTimeMerge`) so a topic consumed at uneven
speeds is judged as the file it was shipped from.

Two processes, two threads: a child process (:mod:`streams.kafka.fetcher`) fetches,
decodes and parses the partitions this process owns and sends their events; this process
holds the group membership (its own consumer reads nothing), merges, judges on the
pipeline's thread (:mod:`detector.streaming.worker`), checkpoints and commits.

Delivery (at-least-once, in this order at every checkpoint):

1. alerts created or updated so far are produced to ``--alerts-topic`` (keyed by user,
   the JSON of ``replay``'s alert file) and dead letters to ``--dlq-topic``; the producer
   is flushed and every send acknowledged;
2. each partition's checkpoint (its next offset, parser, queued events and its users'
   share of the detector: :mod:`detector.streaming.checkpoints`) is saved atomically to
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

Never stalled silently: a watchdog (:mod:`detector.streaming.health`, driven from
:mod:`detector.streaming.guard`) rejoins the group after the session timeout out of it,
reconnects the fetcher when a partition reads nothing while records wait, and gives up
with :class:`~detector.exceptions.StreamUnhealthy` (exit status 3) when that does not
help; ``/healthz`` and ``/readyz`` are served beside ``/metrics``.

Stopping: SIGTERM/SIGINT finish the batch, checkpoint and commit. ``--until-idle S`` stops
once every partition has been caught up for S seconds (tests, back-fills); then, without
``--state-dir`` or with ``--close-at-end``, every window is closed like ``replay`` does.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import polars as pl

from detector.alerts import write_jsonl
from detector.config import Config
from detector.exceptions import StreamUnhealthy
from detector.metrics import Metrics
from detector.metrics_server import RUN_PORT, serve_metrics
from detector.pipeline import Pipeline
from detector.rules.schema import load_rules
from detector.streaming.clients import checkpoint_store, fetch_args, producer
from detector.streaming.delivery import Delivery
from detector.streaming.group import GroupMember
from detector.streaming.guard import Guarded
from detector.streaming.health import Watchdog
from detector.streaming.idleness import Idleness
from detector.streaming.options import RunSummary, StopSignal, StreamOptions
from detector.streaming.partitions import OwnedPartitions
from detector.streaming.rebalance import Rebalancing
from detector.streaming.worker import PipelineWorker
from streams.exceptions import FetcherError
from streams.kafka.fetcher import REPLY_SECONDS, FetcherProcess, FetchSettings, Frame
from streams.kafka.settings import KafkaSettings


class _Runner(Rebalancing, Guarded, Idleness):
    """One consumer, one producer, one pipeline; the loop of :func:`run_stream`.

    Each part declares what it calls on the others as a stub; the order puts every
    method that works before the stubs that name it.
    """

    def __init__(
        self,
        config: Config,
        settings: KafkaSettings,
        options: StreamOptions,
        stop: StopSignal,
        metrics: Metrics | None,
        watchdog: Watchdog,
    ) -> None:
        from kafka import TopicPartition

        self.tp = TopicPartition
        self.config, self.options, self.stop = config, options, stop
        store, key = checkpoint_store(config, settings, options)
        self.pipeline = Pipeline(config, config.load_catalog(), load_rules(), id_key=key)
        self.state = OwnedPartitions(options.topic, self.pipeline.state, store)
        self.group = GroupMember(settings, options, self._revoke, self._lose, self._assigned)
        self.summary = RunSummary()
        self.metrics = metrics
        self.watchdog = watchdog
        #: whether the process was in its group at the last turn
        self.member = False
        #: since when it has been in its group with no partition (``--until-idle``)
        self.empty_since: float | None = None
        self.last_end_check = 0.0
        self.pipeline.metrics = metrics
        self.delivery = Delivery(producer(settings), options, self.summary, self.metrics)
        # the records are read and parsed in a child process (its own interpreter: the
        # pipeline keeps this one's); this process's consumer holds the group membership
        self.fetcher = FetcherProcess(
            FetchSettings(
                options.topic,
                fetch_args(settings, options),
                config.source_options(),
                options.max_record_bytes,
                options.measure,
            ),
            self._on_frame,
        )
        #: each partition's last high watermark the fetcher saw
        self.highwater: dict[int, int | None] = {}
        #: partitions asked to flush their parsers, until the answer arrives
        self.flushing: set[int] = set()
        #: Kafka timestamps of the records read since the last turn (measuring)
        self.stamps: list[int] = []
        #: when the fetcher started the first poll that read records (s since the start)
        self.first_read: float | None = None
        self.started = time.perf_counter()
        self.worker = PipelineWorker(
            self.pipeline, self.delivery.alerts, self._judged if options.measure else None
        )
        self.idle_since: dict[int, float] = {}
        self.blocking: set[int] = set()
        self.last_checkpoint = time.monotonic()
        #: anything read, judged or moved since the last checkpoint
        self.changed = True
        self.seeked: set[int] = set()
        #: partitions the group gave this process, until revoked or lost (the consumer's
        #: own assignment still lists revoked ones while a rebalance goes on: the loop
        #: would claim and load them again)
        self.owned: set[int] = set()
        #: partitions lost to a newer owner, skipped until the next assignment
        self.fenced: set[int] = set()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> RunSummary:
        started = self.started
        try:
            try:
                self._loop(started)
            except FetcherError as exc:  # gone or hung: a restart is the remedy
                raise StreamUnhealthy(str(exc)) from exc
        except StreamUnhealthy as exc:
            self._give_up(exc)
            raise
        self._finish()
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _loop(self, started: float) -> None:
        while not self.stop.event.is_set():
            turn = time.perf_counter() - started
            self.group.poll()  # the fetcher's frames queue meanwhile
            assigned = self.owned - self.fenced
            self._watch(assigned)
            if self.group.joining():
                # heartbeats stay off from a join's start until kafka-python completes it
                # in a poll: a turn judging or checkpointing meanwhile outlasted the
                # session timeout under load, and the broker expired the member right
                # after its join. Until then nothing else is done (the fetcher's frames
                # wait: when they fill its pipe, it stops fetching)
                continue
            assigned = self.owned - self.fenced  # a rejoin hands every partition over
            self._share(assigned)
            self._arrive(assigned - self.seeked)
            self.fetcher.read()  # the frames arrived so far
            idle = self._idle(assigned)
            if self.metrics is not None:
                self.metrics.partition_lag(self._behind(assigned))
            stamps, self.stamps = self.stamps, []
            if self.options.measure:
                self._measure(stamps, assigned, started, turn)
            self._judge(self.state.merge.release(sorted(assigned)), stamps)
            if time.monotonic() - self.last_checkpoint >= self.options.checkpoint_seconds:
                self._checkpoint(if_changed=True)
            until = self.options.until_idle
            if until is not None and idle >= until and self._caught_up(assigned):
                break

    def _arrive(self, partitions: set[int]) -> None:
        """Partitions the group gave this process: claimed and resumed together from their
        checkpoints (else from the group's committed offset, else the earliest), then read
        by the fetcher from there."""
        if not partitions:
            return
        self.changed = True
        self.worker.drain()  # arriving users' state joins the pipeline's
        offsets = self.state.take_over(partitions)
        starts: dict[int, tuple[int | None, Any]] = {}
        for p in sorted(partitions):
            offset = offsets.get(p)
            if offset is None:
                offset = self._group_offset(p)
                self.state.offsets[p] = offset
            starts[p] = (offset, self.state.partitions.get(p))
        self.seeked |= partitions
        self.fetcher.assign(starts)

    def _on_frame(self, frame: Frame) -> None:
        """What the fetcher read: events into the merge, offsets, dead letters."""
        self.changed = self.changed or bool(frame.reads)
        for read in frame.reads:
            p = read.partition
            if p not in self.seeked or p in self.fenced:
                continue  # read before it left
            if read.records:
                self._records_read(p)
            self.state.merge.add(p, read.events, read.complete)
            if read.records:
                if self.first_read is None:
                    self.first_read = frame.started - self.started
                self.summary.records += read.records
                self.state.offsets[p] = read.offset
                self.watchdog.read([p])
                self.stamps += read.stamps
            else:  # a flush
                self.flushing.discard(p)
            self.summary.events += read.events.height
            self.delivery.dead_letters(read.rejects)
            if self.metrics is not None:
                reasons = Counter(r.reason for r in read.rejects)
                self.metrics.parsed(read.format or "unknown", read.records, reasons)
        self.highwater.update(frame.highwater)

    def _behind(self, assigned: set[int]) -> dict[int, int]:
        """Records not read yet per partition whose high watermark is known."""
        offsets = self.state.offsets
        return {
            p: max(0, high - offsets.get(p, 0))
            for p in assigned
            if (high := self.highwater.get(p)) is not None
        }

    def _judge(self, events: pl.DataFrame | None, stamps: list[int] | None = None) -> None:
        """Hand a batch to the pipeline's thread (``stamps``: of the records read in this
        turn, measured when it is judged)."""
        if events is None or events.is_empty():
            if stamps:
                self.worker.submit(None, None, stamps)
            return
        parts = events["_partition"]
        self.worker.submit(events.drop("_partition"), parts, stamps or [])

    def _checkpoint(self, reply: float = REPLY_SECONDS, *, if_changed: bool = False) -> None:
        """Alerts and dead letters out, then every partition's checkpoint saved, then
        their offsets committed (``reply``: how long the fetcher may take to answer;
        ``if_changed``: nothing to do when nothing was read, judged or moved since the
        last one: an idle detector stays idle, its checkpoints as current as they were)."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        if if_changed and not self.changed:
            self.last_checkpoint = time.monotonic()
            if self.metrics is not None:
                self.metrics.checkpoint_current()
            return
        # frames handled while the snapshot is awaited are in this checkpoint; those
        # after it mark the next one
        self.changed = False
        began = time.perf_counter()
        # the parsers as of the last frame read (the frames before the answer go to the
        # merge), then the batches released so far judged: state and offsets agree
        streams = self.fetcher.snapshot(reply)
        self.state.partitions.update({p: s for p, s in streams.items() if p in self.seeked})
        self.worker.drain()
        self.delivery.acknowledge()
        self._fenced(self.state.save_all())
        if self.state.offsets:
            offsets = {
                self.tp(self.options.topic, p): OffsetAndMetadata(o, "", -1)
                for p, o in self.state.offsets.items()
            }
            try:
                self.group.consumer.commit(offsets)
            except KafkaError as exc:
                # the checkpoints have these offsets: the next owner seeks there anyway
                print(f"exfil-detector: offsets not committed: {exc}", file=sys.stderr)
        self.summary.checkpoints += 1
        self.last_checkpoint = time.monotonic()
        if self.metrics is not None:
            self.metrics.checkpointed(time.perf_counter() - began)

    def _finish(self) -> None:
        close = self.options.close_at_end
        if close or (close is None and self.options.state_dir is None):
            # end of input, no state to continue from: close everything, like replay
            self.fetcher.flush(set(self.seeked))
            self.fetcher.snapshot()  # answered after the flush's frame: it is in
            self._judge(self.state.merge.drain())
            self.worker.drain()
            self.delivery.alerts(self.pipeline.finish())
        self.worker.close()
        self._checkpoint()
        # before leaving the group: leaving revokes the partitions, and their users'
        # state (alerts included) leaves this process with them
        self.summary.alerts = self.pipeline.alerts()
        self.summary.counts = dict(self.pipeline.state.counts)
        self.summary.counts["late_events"] = self.pipeline.state.late_events
        self.group.close()
        self.fetcher.stop()
        self.delivery.close()
        if self.state.store is not None:
            self.state.store.close()


def run_stream(
    config: Config, settings: KafkaSettings, options: StreamOptions, stop: StopSignal | None = None
) -> RunSummary:
    """Consume until stopped (signal, or ``until_idle``); the run's summary."""
    stop = stop or StopSignal()
    watchdog = Watchdog(options.health_bounds())
    metrics, server = serve_metrics(config, RUN_PORT, watchdog)
    try:
        runner = _Runner(config, settings, options, stop, metrics, watchdog)
        try:
            summary = runner.run()
        finally:
            runner.fetcher.stop()  # also when the run failed (done already otherwise)
    finally:
        if server is not None:
            server.close()
    if options.alerts_out is not None:
        options.alerts_out.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(summary.alerts, options.alerts_out)
    return summary
