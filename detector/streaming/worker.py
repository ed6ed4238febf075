"""The pipeline on its own thread, so ``run`` reads the next records while it judges.

A streaming process spends its time in two halves: fetching, decoding and parsing
records (kafka-python and the parsers: mostly Python) and judging them (the pipeline:
mostly polars, which releases the GIL while it computes). On one thread the halves take
turns; :class:`PipelineWorker` runs the pipeline's batches on a second thread, one at a
time and in the order given, so the next poll overlaps the previous batch's judgment.
Measured on the 2-core bench machine, draining a 1M-record topic with the fast decoder:
35,400 -> 39,500 records/s (``bench/README.md``).

Only the worker touches the pipeline's state between :meth:`PipelineWorker.submit` and
:meth:`PipelineWorker.drain`: whoever reads or changes it from another thread
(checkpoints, partitions arriving or leaving, the alert budget's share, the end of the
run) drains first. The batches and their order are the loop's, so alerts are exactly
those of judging on the loop's own thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from detector.alerts import Alert
from detector.exceptions import StreamingError
from detector.pipeline import Pipeline


@dataclass(frozen=True)
class _Batch:
    events: pl.DataFrame | None
    parts: pl.Series | None
    #: Kafka timestamps (ms) of the records read in the turn that made this batch
    stamps: list[int]


class PipelineWorker:
    """Judge batches on a background thread, in order, one queued at most.

    Parameters
    ----------
    pipeline
        The process's pipeline; while batches are pending, only the worker uses it.
    on_alerts
        Called on the worker's thread with each batch's new or updated alerts (must be
        thread-safe: the runner hands them to the Kafka producer).
    on_judged
        Called on the worker's thread after each batch with its records' timestamps and
        the time it ended (``time.perf_counter()``): latency measurements.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        on_alerts: Callable[[list[Alert]], None],
        on_judged: Callable[[list[int], float], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.on_alerts = on_alerts
        self.on_judged = on_judged
        # one batch waiting while one is judged: the loop runs at most one turn ahead
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(
        self, events: pl.DataFrame | None, parts: pl.Series | None, stamps: list[int]
    ) -> None:
        """Queue a batch (``events`` may be ``None``: only ``stamps`` to measure);
        blocks while the previous one still waits."""
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="pipeline", daemon=True)
            self._thread.start()
        self._queue.put(_Batch(events, parts, stamps))

    def drain(self) -> None:
        """Return once every batch submitted is judged (and its alerts handed on)."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Drain and stop the thread."""
        self.drain()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise StreamingError(f"the pipeline failed: {self._error}") from self._error

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._error is None:
                    self._judge(batch)
            except BaseException as exc:  # handed to the loop's thread at its next call
                self._error = exc
            finally:
                self._queue.task_done()

    def _judge(self, batch: _Batch) -> None:
        if batch.events is not None and not batch.events.is_empty():
            self.on_alerts(self.pipeline.process(batch.events, batch.parts))
        if self.on_judged is not None and batch.stamps:
            self.on_judged(batch.stamps, time.perf_counter())
