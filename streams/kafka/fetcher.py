"""Fetching, decoding and parsing a topic's partitions in a child process.

A streaming process has two CPU-heavy halves: reading records (kafka-python fetches and
decodes them, the parsers turn them into events) and judging events (the pipeline). On
one interpreter they share the GIL and take turns; :class:`FetcherProcess` moves the
first half into a child process with its own interpreter, and the parent process (which
keeps the consumer-group membership, the pipeline, checkpoints and commits) receives
parsed event frames. Measured on the 2-core bench machine, draining a 1M-record topic:
~42k records/s with both halves in one process, ~52k with the child (``bench/README.md``).

The child owns a consumer *without* a group (the parent's group consumer decides who
reads what: it pauses its own partitions and tells the child) and the partitions' parsers
(:class:`~streams.kafka.records.PartitionStream`). It obeys the parent's commands in
order, between polls:

* ``assign``: read partitions from an offset (``None``: the earliest), with a parser
  (from a checkpoint) or a new one;
* ``revoke``: stop reading partitions; their parsers come back (for their checkpoint);
* ``snapshot``: every parser comes back, as it stands after the last frame sent;
* ``flush``: the parsers of these partitions release what they hold back;
* ``reconnect``: a new consumer (fresh connections and metadata) goes on from where each
  partition's reading stands, parsers kept (the parent's watchdog saw records waiting
  that nobody read);
* ``stop``.

After each poll it sends a :class:`Frame`: per partition read, the events parsed, the
records rejected, the next offset, and for every partition its high watermark. Replies
and frames travel on one pipe in order, so a parser returned by ``snapshot`` or
``revoke`` matches exactly the frames the parent has read before it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final

import polars as pl

from streams.exceptions import FetcherError
from streams.file_source import SourceOptions
from streams.kafka.records import PartitionStream, RecordReject

#: How long the child waits for records in one poll (commands are read between polls).
POLL_MS: Final = 200
#: Frames read from the pipe and not yet handled by the parent, at most.
INBOX_FRAMES: Final = 4
#: How long the parent waits for the child's answer to ``revoke`` or ``snapshot`` (the
#: child answers between polls, each at most ``POLL_MS``): past it the child is hung.
REPLY_SECONDS: Final = 60.0
#: How long the child waits for its old consumer to close at a ``reconnect``.
CLOSE_SECONDS: Final = 10.0


@dataclass(frozen=True)
class PartRead:
    """What one poll read of one partition."""

    partition: int
    events: pl.DataFrame
    rejects: list[RecordReject]
    #: the time up to which the partition delivered everything (``None``: all of it,
    #: after a flush)
    complete: dt.datetime | None
    #: next offset to read, and records read (0 for a flush)
    offset: int
    records: int
    #: the records' Kafka timestamps (ms), when measuring
    stamps: list[int] = field(default_factory=list)
    #: the partition's format (``None``: not detected yet)
    format: str | None = None


@dataclass(frozen=True)
class Frame:
    """One poll's reads, and every assigned partition's high watermark (``None``:
    unknown yet)."""

    reads: list[PartRead]
    highwater: dict[int, int | None]
    #: when the poll that read it started (``time.perf_counter()``: the same clock in
    #: both processes): a measurement counts the child's decoding and parsing from there
    started: float = 0.0


@dataclass(frozen=True)
class FetchSettings:
    """What the child needs to read and parse (picklable)."""

    topic: str
    #: the child's ``KafkaConsumer`` arguments (no group: it is told what to read)
    consumer_args: dict[str, Any]
    source: SourceOptions
    max_record_bytes: int
    measure: bool = False


class FetcherProcess:
    """The parent's handle on the child (see the module's docstring).

    Parameters
    ----------
    settings
        Topic, client settings, parser options.
    on_frame
        Called for each frame read, in order (also while waiting for a reply).
    """

    def __init__(self, settings: FetchSettings, on_frame: Callable[[Frame], None]) -> None:
        self.settings = settings
        self.on_frame = on_frame
        # a fresh interpreter, not multiprocessing's spawn: spawn runs the caller's main
        # module again in the child (any script calling run_stream would have to guard
        # it), and fork would copy polars' and kafka-python's threads' locks
        mine, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._conn = Connection(mine.detach())
        # a thread empties the pipe as messages come: the child does not wait for the
        # parent's loop (which also waits on the group consumer's poll). Bounded: when
        # the pipeline falls behind, the pipe fills and the child stops fetching (a
        # backlog stays in Kafka, not in this process's memory)
        self._inbox: queue.Queue[Any] = queue.Queue(maxsize=INBOX_FRAMES)
        self._stopping = False
        #: why the child is gone, once seen (every later call raises it again)
        self._failure: str | None = None
        self._reader = threading.Thread(target=self._pump, name="fetcher-inbox", daemon=True)
        self._reader.start()
        self._send(("settings", settings))

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._proc.pid

    def assign(self, partitions: dict[int, tuple[int | None, PartitionStream | None]]) -> None:
        """Start reading partitions: offset (``None``: earliest) and parser (``None``: new)."""
        if partitions:
            self._send(("assign", partitions))

    def revoke(self, partitions: set[int]) -> dict[int, PartitionStream]:
        """Stop reading partitions; their parsers, after every frame read so far."""
        if not partitions:
            return {}
        self._send(("revoke", sorted(partitions)))
        return self._reply()

    def snapshot(self, timeout: float = REPLY_SECONDS) -> dict[int, PartitionStream]:
        """Every parser (copies), as it stands after every frame read so far (a child
        that does not answer within ``timeout`` seconds is hung: :class:`FetcherError`)."""
        self._send(("snapshot",))
        return self._reply(timeout)

    def flush(self, partitions: set[int]) -> None:
        """Ask the parsers of ``partitions`` for what they hold back (arrives as a frame)."""
        if partitions:
            self._send(("flush", sorted(partitions)))

    def reconnect(self) -> None:
        """Ask the child for a new consumer, going on from where each partition stands."""
        self._send(("reconnect",))

    def read(self) -> None:
        """Hand the frames arrived so far to ``on_frame`` (not those arriving meanwhile:
        a fast child would keep the caller here)."""
        self._check()
        for _ in range(self._inbox.qsize()):
            self._handle(self._inbox.get_nowait())

    def stop(self) -> None:
        """Stop the child (frames not read yet are dropped: read them first)."""
        # the reader drops what comes from now on, and is let go if the inbox was full
        # (the child may be waiting to send: it would not read the stop)
        self._stopping = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._inbox.get_nowait()
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=10)
        self._conn.close()

    # -- internals ------------------------------------------------------------------------

    def _send(self, message: tuple[Any, ...]) -> None:
        self._check()
        try:
            self._conn.send(message)
        except OSError as exc:
            raise self._fail(f"the fetcher process is gone: {self._why()}") from exc

    def _check(self) -> None:
        """Raise again the failure seen before: the child is gone for every later call."""
        if self._failure is not None:
            raise FetcherError(self._failure)

    def _fail(self, why: str) -> FetcherError:
        self._failure = why
        return FetcherError(why)

    def _pump(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._inbox.put(("gone",))
                return
            if not self._stopping:
                self._inbox.put(message)

    def _reply(self, timeout: float = REPLY_SECONDS) -> dict[int, PartitionStream]:
        self._check()
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._fail(
                    f"the fetcher process did not answer in {timeout:.0f} s (hung)"
                ) from None
            if isinstance(message, tuple) and message[0] == "streams":
                return dict(message[1])
            self._handle(message)

    def _handle(self, message: Any) -> None:
        if isinstance(message, Frame):
            self.on_frame(message)
        elif isinstance(message, tuple) and message[0] == "error":
            raise self._fail(f"the fetcher process failed: {message[1]}")
        elif isinstance(message, tuple) and message[0] == "gone":
            raise self._fail(f"the fetcher process is gone: {self._why()}")
        else:
            raise FetcherError(f"unexpected message from the fetcher process: {message!r:.200}")

    def _why(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=1)  # it may be exiting: its code says why
        code = self._proc.poll()
        return "still running" if code is None else f"exit code {code}"


_CHILD_MAIN: Final = "import sys; from streams.kafka.fetcher import main; main(int(sys.argv[1]))"


def main(fd: int) -> None:
    """The child's entry: its end of the pipe is file descriptor ``fd``."""
    # the parent decides when the child stops: a Ctrl-C or SIGTERM is the parent's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        kind, settings = conn.recv()
        if kind != "settings":
            raise FetcherError(f"the fetcher's first message is {kind!r}, not its settings")
        _Child(conn, settings).run()
    except (EOFError, OSError):
        return  # the parent is gone
    except BaseException as exc:  # handed to the parent, which raises it
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        sys.exit(1)


class _Child:
    def __init__(self, conn: Connection, settings: FetchSettings) -> None:
        from kafka import KafkaConsumer, TopicPartition

        from streams.kafka.decode import install

        install()
        self.conn, self.settings, self.tp = conn, settings, TopicPartition
        self.consumer = KafkaConsumer(**settings.consumer_args)
        self.streams: dict[int, PartitionStream] = {}
        #: next offset to read per partition (as assigned, then as read)
        self.offsets: dict[int, int | None] = {}
        #: the high watermarks of the last frame sent
        self.sent_highwater: dict[int, int | None] = {}

    def run(self) -> None:
        while True:
            # commands first; without partitions, wait for one
            while self.conn.poll(0 if self.streams else POLL_MS / 1000):
                if not self._command(self.conn.recv()):
                    self.consumer.close()
                    return
            if self.streams:
                self._poll()

    def _command(self, message: tuple[Any, ...]) -> bool:
        kind = message[0]
        if kind == "assign":
            seeks = {}
            for p, (offset, stream) in message[1].items():
                self.streams[p] = stream or PartitionStream(
                    self.settings.topic,
                    p,
                    self.settings.source,
                    max_record_bytes=self.settings.max_record_bytes,
                )
                seeks[p] = self.offsets[p] = offset
            self._assign()
            self._seek(seeks)
        elif kind == "revoke":
            gone = {p: self.streams.pop(p) for p in message[1] if p in self.streams}
            for p in message[1]:
                self.offsets.pop(p, None)
            self._assign()
            self.conn.send(("streams", gone))
        elif kind == "snapshot":
            self.conn.send(("streams", self.streams))  # pickled: copies
        elif kind == "flush":
            reads = []
            for p in message[1]:
                stream = self.streams.get(p)
                if stream is not None:
                    events, rejects = stream.flush()
                    at = self.offsets.get(p)
                    reads.append(PartRead(p, events, rejects, None, -1 if at is None else at, 0))
            self.conn.send(Frame(reads, self._highwater()))
        elif kind == "reconnect":
            self._reconnect()
        elif kind == "stop":
            return False
        return True

    def _seek(self, offsets: dict[int, int | None]) -> None:
        for p, offset in offsets.items():
            tp = self.tp(self.settings.topic, p)
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)

    def _reconnect(self) -> None:
        """A new consumer from where every partition stands. The old one closes on a
        thread of its own: a wedged client must not wedge the child too."""
        from kafka import KafkaConsumer

        old = self.consumer
        closing = threading.Thread(target=old.close, name="old-consumer", daemon=True)
        closing.start()
        closing.join(CLOSE_SECONDS)
        self.consumer = KafkaConsumer(**self.settings.consumer_args)
        self._assign()
        self._seek({p: self.offsets.get(p) for p in self.streams})

    def _assign(self) -> None:
        self.consumer.assign([self.tp(self.settings.topic, p) for p in sorted(self.streams)])

    def _poll(self) -> None:
        started = time.perf_counter()
        polled = self.consumer.poll(timeout_ms=POLL_MS)
        reads = []
        for tp, records in sorted(polled.items(), key=lambda kv: kv[0].partition):
            stream = self.streams.get(tp.partition)
            if stream is None or not records:
                continue
            events, rejects = stream.feed(records)
            offset = records[-1].offset + 1
            self.offsets[tp.partition] = offset
            stamps = [r.timestamp for r in records] if self.settings.measure else []
            reads.append(
                PartRead(
                    tp.partition,
                    events,
                    rejects,
                    stream.high_,
                    offset,
                    len(records),
                    stamps,
                    stream.format_,
                )
            )
        highwater = self._highwater()
        if reads or highwater != self.sent_highwater:  # an idle child stays quiet
            self.conn.send(Frame(reads, highwater, started))
            self.sent_highwater = highwater

    def _highwater(self) -> dict[int, int | None]:
        return {p: self.consumer.highwater(self.tp(self.settings.topic, p)) for p in self.streams}
