"""Where a job serves its metrics: ``/metrics`` over HTTP (and, for ``run``, ``/healthz``
and ``/readyz`` beside it), on the port the config gives, its default, or not at all."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

from prometheus_client import start_http_server

from detector.exceptions import MetricsError
from detector.metrics import Metrics
from detector.streaming.health import Watchdog, probe_app

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from detector.config import Config

#: Where ``run`` serves its metrics unless told otherwise.
RUN_PORT: Final = 9717


def serve_metrics(
    config: Config, default_port: int | None, probes: Watchdog | None = None
) -> tuple[Metrics | None, MetricsServer | None]:
    """A job's metrics and their endpoint, as configured (``config.metrics_port``, else the
    job's ``default_port``; ``(None, None)``: none). ``probes``: ``run``'s watchdog, whose
    ``/healthz`` and ``/readyz`` are served beside ``/metrics`` with ``run``'s own metrics.

    Raises
    ------
    MetricsError
        A port the user asked for cannot be bound. The default port taken (another
        detector on this host) is only a warning: the job runs, unmetered.
    """
    port = config.metrics_port_for(default_port)
    if port is None:
        return None, None
    metrics = Metrics(run=probes is not None)
    try:
        return metrics, MetricsServer(metrics, port, config.metrics_addr, probes)
    except MetricsError as exc:
        if config.metrics_port is not None:
            raise
        print(
            f"exfil-detector: warning: {exc}: metrics not served (give each process its "
            "own --metrics-port)",
            file=sys.stderr,
            flush=True,
        )
        return None, None


class MetricsServer:
    """``/metrics`` of ``metrics`` over HTTP, on a thread, until :meth:`close`.

    Parameters
    ----------
    metrics
        What to serve.
    port, addr
        Where (port ``0``: any free port, see :attr:`port`).
    probes
        ``run``'s watchdog: ``/healthz`` and ``/readyz`` answer from it
        (:func:`detector.streaming.health.probe_app`).

    Raises
    ------
    MetricsError
        The address cannot be bound (in use, not this host's).
    """

    def __init__(
        self, metrics: Metrics, port: int, addr: str = "0.0.0.0", probes: Watchdog | None = None
    ) -> None:
        try:
            self._server: WSGIServer
            self._server, self._thread = start_http_server(port, addr, registry=metrics.registry)
        except OSError as exc:
            raise MetricsError(f"cannot serve metrics on {addr}:{port}: {exc.strerror}") from exc
        if probes is not None:  # /healthz and /readyz beside /metrics
            self._server.set_app(probe_app(self._server.get_app(), probes))

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
